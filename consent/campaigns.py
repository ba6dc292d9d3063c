"""Re-consent campaigns: which tenants need to consent again, and where each one is.

A tenant needs re-consent when its latest definitive verification found a role missing
from its token: the consent predates a permission the app now requests and its profile
requires (diagnosis `role_missing`). A member's state is read from what happened since the
campaign began, never stored, so it cannot go stale:

- verified: a verification finished after the campaign began and passed (it left the
  campaign);
- reconsented: its invitation was used, the verification has not passed yet;
- declined: a consent attempt through its invitation came back declined from Microsoft;
- expired: its invitation expired unused;
- pending: waiting for the customer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.db.models import OuterRef, Subquery

from consent.models import Campaign, CampaignMember, ConsentTicket, Invitation
from tenants.models import Tenant, Verification

ROLE_MISSING = "role_missing"
State = CampaignMember.State


def covered() -> set[int]:
    """Tenants (pks) a campaign already asked, whose invitation is still usable: asking
    them again would send a second link for the same consent."""
    return set(
        CampaignMember.objects.filter(invitation__in=Invitation.objects.usable()).values_list(
            "tenant_id", flat=True
        )
    )


def needing_reconsent(
    access_profile: str = "", *, uncovered: bool = False
) -> list[tuple[Tenant, list[str]]]:
    """Tenants whose consent lacks a permission their profile requires, with the
    `resource:permission` pairs missing (from their latest definitive verification); with
    `uncovered`, only those no campaign has an invitation waiting for."""
    latest = (
        Verification.objects.filter(tenant=OuterRef("pk"), state=Verification.State.DONE)
        .exclude(outcome__in=("transient", "platform_error", "cancelled"))
        .order_by("-finished_at", "-pk")
        .values("pk")[:1]
    )
    tenants = Tenant.objects.filter(
        status=Tenant.Status.INCOMPLETE, diagnosis=ROLE_MISSING
    ).annotate(latest=Subquery(latest))
    if access_profile:
        tenants = tenants.filter(access_profile=access_profile)
    if uncovered:
        tenants = tenants.exclude(pk__in=covered())
    tenants = list(tenants.order_by("display_name", "tenant_id"))
    results = dict(
        Verification.objects.filter(pk__in=[t.latest for t in tenants if t.latest]).values_list(
            "pk", "results"
        )
    )
    found = []
    for tenant in tenants:
        missing = [
            f"{resource}:{role}"
            for resource, result in (results.get(tenant.latest) or {}).items()
            if isinstance(result, dict)
            for role in result.get("roles_missing") or []
        ]
        if missing:
            found.append((tenant, missing))
    return found


def banners() -> list[dict[str, object]]:
    """For the dashboard: per access profile, how many tenants need re-consent, for which
    permissions, and how many of them a campaign's invitation is already waiting for."""
    waiting = covered()
    counts: Counter[str] = Counter()
    in_campaign: Counter[str] = Counter()
    permissions: dict[str, set[str]] = {}
    for tenant, missing in needing_reconsent():
        counts[tenant.access_profile] += 1
        in_campaign[tenant.access_profile] += tenant.pk in waiting
        permissions.setdefault(tenant.access_profile, set()).update(
            p.split(":", 1)[1] for p in missing
        )
    return [
        {
            "profile": profile,
            "tenants": n,
            "in_campaign": in_campaign[profile],
            "to_ask": n - in_campaign[profile],
            "permissions": sorted(permissions[profile]),
        }
        for profile, n in sorted(counts.items())
    ]


@dataclass(frozen=True)
class Row:
    member: CampaignMember
    state: str

    @property
    def state_label(self) -> str:
        return State(self.state).label


def progress(campaign: Campaign) -> tuple[list[Row], Counter[str]]:
    """Each member with its state, and the count per state."""
    members = list(
        campaign.members.select_related("tenant", "invitation").order_by(
            "tenant__display_name", "tenant__tenant_id"
        )
    )
    passed = set(
        Verification.objects.filter(
            tenant__in=[m.tenant_id for m in members],
            outcome=Verification.Outcome.VERIFIED,
            finished_at__gt=campaign.created_at,
        ).values_list("tenant_id", flat=True)
    )
    declined = set(
        ConsentTicket.objects.filter(
            invitation__in=[m.invitation_id for m in members if m.invitation_id],
            result=ConsentTicket.Result.DECLINED,
        ).values_list("invitation_id", flat=True)
    )
    rows = []
    for member in members:
        invitation = member.invitation
        if member.tenant_id in passed:
            state = State.VERIFIED
        elif invitation is not None and invitation.status == Invitation.Status.USED:
            state = State.RECONSENTED
        elif member.invitation_id in declined:
            state = State.DECLINED
        elif invitation is None or not invitation.is_usable:
            state = State.EXPIRED
        else:
            state = State.PENDING
        rows.append(Row(member, state))
    return rows, Counter(row.state for row in rows)


def to_remind(rows: list[Row]) -> list[Invitation]:
    """The invitations of the members still waiting for the customer, that have a contact
    email to remind."""
    return [
        row.member.invitation
        for row in rows
        if row.state == State.PENDING
        and row.member.invitation is not None
        and row.member.invitation.contact_email
    ]
