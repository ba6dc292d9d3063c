"""What the tenants domain tells the notifications app: a tenant onboarded, its status
changed, it went stale. Called inside the transaction of the change, so the event exists
exactly when the change does.

Which status a tenant had *before* is the last one announced about it (its newest
`tenant.onboarded` / `tenant.status_changed` event), not the row's: a re-consent puts the
row back to "consent reported" for a while, and confirming the status the tenant had before
is no news. A tenant never announced is onboarded by its first definitive verification.
Platform errors change no tenant's status (DESIGN.md), so a platform fault across the fleet
is one `platform.alert_opened` (PlatformAlert) and no tenant event at all.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from audit.log import record
from audit.models import AuditEvent
from notifications.events import emit
from notifications.models import TENANT_ONBOARDED, TENANT_STALE, TENANT_STATUS_CHANGED, Event
from tenants.models import PlatformAlert, Tenant, Verification
from tenants.verification import diagnosis

DEFINITIVE = frozenset({Tenant.Status.VERIFIED, Tenant.Status.INCOMPLETE, Tenant.Status.NO_ACCESS})


def tenant_url(tenant: Tenant) -> str:
    return settings.PORTAL_BASE_URL + reverse("console:detail", kwargs={"tenant_code": tenant.code})


def data(tenant: Tenant, verification: Verification | None, previous: str) -> dict[str, object]:
    """The `data` of a tenant event: plain text, nothing the tenant page does not show."""
    explained = {"key": "", "title": "", "remediation": ""}
    if verification is not None:
        explanation = diagnosis.describe(verification)
        explained = {
            "key": explanation.key,
            "title": explanation.title,
            "remediation": "\n".join(explanation.remediation),
        }
    return {
        "tenant_id": str(tenant.tenant_id),
        "customer_name": tenant.display_name,
        "previous_status": previous,
        "status": tenant.status,
        "diagnosis": explained,
        "url": tenant_url(tenant),
    }


def last_announced(tenant: Tenant) -> str | None:
    event = (
        Event.objects.filter(
            tenant_id=tenant.tenant_id, type__in=(TENANT_ONBOARDED, TENANT_STATUS_CHANGED)
        )
        .order_by("-timestamp", "-pk")
        .values_list("data", flat=True)
        .first()
    )
    return None if event is None else str(event.get("status"))


def verification_finished(
    verification: Verification, tenant: Tenant, before: str, *, first_check: bool = False
) -> None:
    """Announce what this verification changed, if anything. `first_check`: the tenant had
    never been checked before this verification, so nothing was ever announced about it
    (every announcement comes from a check): no need to look."""
    status = tenant.status
    if status not in DEFINITIVE:
        return
    if before == Tenant.Status.CONSENT_REPORTED:
        previous = None if first_check else last_announced(tenant)
        if previous is None:
            record(
                TENANT_ONBOARDED,
                AuditEvent.Outcome.SUCCESS,
                actor="system",
                tenant_id=tenant.tenant_id,
                detail={"status": status, "verification": verification.code},
            )
            emit(
                TENANT_ONBOARDED,
                data(tenant, verification, before),
                tenant_id=tenant.tenant_id,
                access_profile=tenant.access_profile,
            )
            return
        before = previous
    if before != status:
        emit(
            TENANT_STATUS_CHANGED,
            data(tenant, verification, before),
            tenant_id=tenant.tenant_id,
            access_profile=tenant.access_profile,
        )


def announce_stale() -> int:
    """`tenant.stale` once per stale spell, for tenants stale for longer than
    VERIFY_STALE_INTERVAL; kept but not sent while a platform alert is open (the fault is
    the MSSP's, and told once already). Returns how many were recorded."""
    cutoff = timezone.now() - timedelta(seconds=settings.VERIFY_STALE_INTERVAL)
    stale = list(Tenant.objects.active().filter(stale_since__lt=cutoff))
    keys = {
        tenant.pk: f"{TENANT_STALE}:{tenant.tenant_id}:{int(tenant.stale_since.timestamp())}"
        for tenant in stale
    }
    told = set(
        Event.objects.filter(dedupe_key__in=keys.values()).values_list("dedupe_key", flat=True)
    )
    suppressed = PlatformAlert.objects.open().exists()
    recorded = 0
    for tenant in stale:
        if keys[tenant.pk] in told:
            continue
        latest = tenant.verifications.filter(state=Verification.State.DONE).first()
        with transaction.atomic():
            event = emit(
                TENANT_STALE,
                {
                    **data(tenant, latest, tenant.status),
                    "stale_since": tenant.stale_since.isoformat(),
                },
                tenant_id=tenant.tenant_id,
                access_profile=tenant.access_profile,
                dedupe_key=keys[tenant.pk],
                suppressed=suppressed,
            )
            if event is not None:
                record(
                    TENANT_STALE,
                    AuditEvent.Outcome.FAILURE,
                    actor="system",
                    tenant_id=tenant.tenant_id,
                    detail={"stale_since": tenant.stale_since.isoformat(), "sent": not suppressed},
                )
                recorded += 1
    return recorded
