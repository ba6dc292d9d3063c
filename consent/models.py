from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import models, transaction
from django.db.models import F, Q
from django.dispatch import receiver
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from audit.log import record
from audit.models import AuditEvent
from consent import links
from mssp_portal import clouds
from notifications.delivery import send_email
from notifications.events import emit
from notifications.models import INVITATION_EXPIRED_UNUSED
from tenants import profiles
from tenants.models import Tenant, TenantGroup
from tenants.signals import scheduler_ticked, tenant_offboarded

# What `issue_ticket` hands out: token_urlsafe(32) is 43 base64url characters. The callback
# refuses anything else before it looks a ticket up.
STATE_PATTERN = re.compile(r"\A[A-Za-z0-9_-]{43}\Z")


class TooManyOpenTickets(Exception):
    """The invitation holds CONSENT_OPEN_TICKETS_LIMIT unused, unexpired tickets: no more
    until one expires (`retry_after` seconds), so a leaked link cannot fill the table."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many open consent tickets; retry in {retry_after} s")
        self.retry_after = retry_after


class InvitationNotSent(Exception):
    """The invitation email was not sent; the message says why and what to do instead."""


class InvitationRefused(ValueError):
    """An invitation the rules do not allow; its message says why and what to do instead."""


class InvitationQuerySet(models.QuerySet["Invitation"]):
    def usable(self) -> InvitationQuerySet:
        """Open and not yet expired: the customer can still start consent from it."""
        return self.filter(status=Invitation.Status.OPEN, expires_at__gt=timezone.now())

    def for_tenant(self, tenant: Tenant) -> InvitationQuerySet:
        """Invitations that became this tenant or are bound to it."""
        return self.filter(Q(tenant=tenant) | Q(expected_tenant_id=tenant.tenant_id))

    def to_send_again(self, tenant: Tenant) -> Invitation | None:
        """The newest usable invitation bound to this tenant: the link to send the customer
        again (re-consent), or None when there is none."""
        return (
            self.usable()
            .filter(expected_tenant_id=tenant.tenant_id)
            .order_by("-created_at")
            .first()
        )

    def reconsent_for(self, tenant: Tenant, *, actor: str) -> Invitation:
        """A re-consent invitation bound to this onboarded tenant, with its profile and its
        contact (audited by `create_invitation`). Raises InvitationRefused as it does."""
        return self.create_invitation(
            customer_name=tenant.display_name or tenant.primary_domain or str(tenant.tenant_id),
            expected_tenant_id=tenant.tenant_id,
            expected_domain=tenant.primary_domain,
            access_profile=tenant.access_profile,
            days=settings.INVITATION_DEFAULT_DAYS,
            actor=actor,
            tenant=tenant,
            contact_name=tenant.contact_name,
            contact_email=tenant.contact_email,
        )

    def refusal(self, expected_tenant_id: uuid.UUID | None, tenant: Tenant | None = None) -> str:
        """Why an invitation for `expected_tenant_id` may not be created, or "" when it may.

        The rules: every invitation names its tenant (a link that any tenant could accept
        is one forward away from onboarding a stranger); never the MSSP's own home tenant;
        at most one usable invitation per tenant; and an onboarded tenant is invited again
        only for re-consent from its own page (`tenant`), which keeps its access profile.
        """
        if expected_tenant_id is None:
            return (
                "Give the customer's tenant ID or a domain they verified: an invitation is "
                "accepted only from the tenant it names."
            )
        if str(expected_tenant_id).lower() == str(settings.ENTRA_HOME_TENANT_ID).lower():
            return (
                f"{expected_tenant_id} is the home tenant (the MSSP's own), not a customer's: "
                "it needs no consent."
            )
        open_one = self.usable().filter(expected_tenant_id=expected_tenant_id).first()
        if open_one is not None:
            return (
                f"An open invitation for tenant {expected_tenant_id} exists already "
                f"({open_one.customer_name}, valid until {open_one.expires_at:%Y-%m-%d}): send "
                "its link again, or revoke it first."
            )
        onboarded = Tenant.objects.active().filter(tenant_id=expected_tenant_id).first()
        if onboarded is not None and tenant is None:
            return (
                f"Tenant {expected_tenant_id} is onboarded already "
                f"({onboarded.get_status_display().lower()}). To ask its administrator for "
                "consent again, use “Create re-consent invitation” on the tenant's page."
            )
        return ""

    def create_invitation(
        self,
        *,
        customer_name: str,
        access_profile: str,
        days: int,
        actor: str,
        expected_tenant_id: uuid.UUID | None = None,
        expected_domain: str = "",
        tenant: Tenant | None = None,
        contact_name: str = "",
        contact_email: str = "",
        tenant_groups: list[TenantGroup] | None = None,
    ) -> Invitation:
        """Create an invitation and audit it (`invitation.created`). The one way to create
        one: the console, `create_invitation` and re-consent all come here. Raises
        InvitationRefused, with nothing written, when `refusal` says no."""
        with transaction.atomic():
            refused = self.refusal(expected_tenant_id, tenant)
            if refused:
                raise InvitationRefused(refused)
            invitation = self.create(
                customer_name=customer_name,
                expected_tenant_id=expected_tenant_id,
                expected_domain=expected_domain,
                access_profile=access_profile,
                expires_at=timezone.now() + timedelta(days=days),
                created_by=actor,
                tenant=tenant,
                contact_name=contact_name,
                contact_email=contact_email,
            )
            if tenant_groups:
                invitation.tenant_groups.set(tenant_groups)
            record(
                "invitation.created",
                AuditEvent.Outcome.SUCCESS,
                actor=actor,
                tenant_id=expected_tenant_id,
                detail={
                    "invitation": invitation.code,
                    "customer": customer_name,
                    "access_profile": access_profile,
                    "kind": "re-consent" if tenant is not None else "new",
                    **(
                        {"groups": ",".join(sorted(g.name for g in tenant_groups))}
                        if tenant_groups
                        else {}
                    ),
                },
            )
        return invitation

    def revoke_open_for(self, tenant: Tenant, *, actor: str, reason: str) -> int:
        """Revoke every open invitation of this tenant (each audited); returns how many."""
        revoked = 0
        for invitation in self.for_tenant(tenant).filter(status=Invitation.Status.OPEN):
            revoked += invitation.revoke(actor=actor, reason=reason)
        return revoked


class Invitation(models.Model):
    """An admin's request to one customer: "grant our app consent in your tenant"."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        USED = "used", "Used"
        REVOKED = "revoked", "Revoked"

    # The customer's link carries this: 122 random bits, and it is all the link reveals.
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    customer_name = models.CharField(max_length=200)
    # Consent is accepted only from this tenant. An expected domain is resolved to its tenant
    # id when the invitation is created, so the binding is always to a GUID.
    expected_tenant_id = models.UUIDField(null=True, blank=True)
    expected_domain = models.CharField(max_length=253, blank=True)
    access_profile = models.CharField(
        max_length=64, choices=profiles.CHOICES, default=profiles.DEFAULT_PROFILE
    )
    # The customer's administrator to send the link to (optional); copied to the tenant at
    # consent.
    contact_name = models.CharField(max_length=200, blank=True)
    contact_email = models.EmailField(max_length=254, blank=True)
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_by = models.CharField(max_length=254)
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)
    # The last time the portal emailed the link to the contact, and who had it sent.
    emailed_at = models.DateTimeField(null=True, blank=True)
    emailed_by = models.CharField(max_length=254, blank=True)
    emails_sent = models.PositiveIntegerField(default=0)
    # The groups the tenant lands in when its consent is recorded.
    tenant_groups = models.ManyToManyField(TenantGroup, blank=True, related_name="invitations")
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.SET_NULL, related_name="invitations"
    )

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The invitations list: by status, soonest expiry first.
            models.Index(fields=["status", "expires_at"], name="invitation_status_idx"),
            # Every look-up by the tenant an invitation is bound to: the consent callback's
            # revoking of the other open links, the link to send again, the rule of one
            # usable invitation per tenant, imports and staff scoping. Without it each was
            # a scan of every invitation ever made.
            models.Index(fields=["expected_tenant_id"], name="invitation_expected_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_name} ({self.get_status_display()})"

    @property
    def profile(self) -> profiles.AccessProfile:
        return profiles.get(self.access_profile)

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return self.status == self.Status.OPEN and not self.is_expired

    @property
    def display_status(self) -> str:
        if self.status == self.Status.OPEN and self.is_expired:
            return "Expired"
        return self.get_status_display()

    def mark_used(self, tenant: Tenant, *, actor: str) -> None:
        """Consent from this invitation was recorded for `tenant` (keeps the first time);
        the tenant joins the invitation's groups (each audited)."""
        self.status = self.Status.USED
        self.tenant = tenant
        self.used_at = self.used_at or timezone.now()
        self.save(update_fields=["status", "tenant", "used_at"])
        for group in self.tenant_groups.all():
            group.assign([tenant], actor=actor)

    def send_email(self, *, actor: str) -> None:
        """Email the link to the invitation's contact (Django's mail framework, EMAIL_URL),
        record when and by whom, and audit it (`invitation.emailed`). Raises InvitationNotSent,
        recording nothing as sent, when there is nobody to send it to, the link no longer
        works, or the mail server does not take the message."""
        if not self.contact_email:
            raise InvitationNotSent(
                "This invitation has no contact email: copy its link and send it yourself, or "
                "create the invitation again with the customer administrator's email."
            )
        if not self.is_usable:
            raise InvitationNotSent(
                f"This invitation is {self.display_status.lower()}: its link does not work any "
                "more, so it is not sent. Create a new invitation for this customer."
            )
        context = {
            "invitation": self,
            "profile": self.profile,
            "requirements": [
                {"title": clouds.TITLES.get(r.resource, r.resource), "requirement": r}
                for r in self.profile.requirements
            ],
            "url": links.invitation_url(self),
            "MSSP_NAME": settings.MSSP_NAME,
            "APP_NAME": settings.ENTRA_APP_DISPLAY_NAME,
            "APP_CLIENT_ID": settings.ENTRA_APP_CLIENT_ID,
        }
        message = EmailMultiAlternatives(
            f"{settings.MSSP_NAME} asks for access to your Microsoft tenant",
            render_to_string("consent/email/invitation.txt", context),
            settings.NOTIFY_FROM_EMAIL,
            [self.contact_email],
        )
        message.attach_alternative(
            render_to_string("consent/email/invitation.html", context), "text/html"
        )
        answer = send_email(message)
        tenant_id = self.expected_tenant_id
        if not answer.ok:
            record(
                "invitation.emailed",
                AuditEvent.Outcome.FAILURE,
                actor=actor,
                tenant_id=tenant_id,
                detail={"invitation": self.code, "error": answer.error},
            )
            raise InvitationNotSent(
                f"The mail server did not take the message ({answer.error}); nothing is "
                "recorded as sent. Check EMAIL_URL and try again."
            )
        with transaction.atomic():
            now = timezone.now()
            Invitation.objects.filter(pk=self.pk).update(
                emailed_at=now, emailed_by=actor, emails_sent=F("emails_sent") + 1
            )
            self.emailed_at, self.emailed_by = now, actor
            self.emails_sent += 1
            record(
                "invitation.emailed",
                AuditEvent.Outcome.SUCCESS,
                actor=actor,
                tenant_id=tenant_id,
                detail={"invitation": self.code, "to": self.contact_email},
            )

    def revoke(self, *, actor: str, reason: str = "") -> bool:
        """Withdraw an open invitation (the link stops working at once) and audit it
        (`invitation.revoked`); False, and nothing recorded, when it was already used or
        revoked."""
        with transaction.atomic():
            revoked = Invitation.objects.filter(pk=self.pk, status=self.Status.OPEN).update(
                status=self.Status.REVOKED
            )
            if not revoked:
                return False
            self.status = self.Status.REVOKED
            detail: dict[str, object] = {"invitation": self.code}
            if reason:
                detail["reason"] = reason
            record(
                "invitation.revoked",
                AuditEvent.Outcome.SUCCESS,
                actor=actor,
                tenant_id=self.expected_tenant_id
                or (self.tenant.tenant_id if self.tenant else None),
                detail=detail,
            )
        return True

    def issue_ticket(self) -> tuple[ConsentTicket, str]:
        """A new single-use `state` for one trip to Entra's consent page.

        Returns the ticket and the plain `state` value; only its hash is stored. Raises
        TooManyOpenTickets when CONSENT_OPEN_TICKETS_LIMIT tickets are already open.
        """
        now = timezone.now()
        open_expiries = list(
            self.tickets.filter(used_at__isnull=True, expires_at__gt=now)
            .order_by("expires_at")
            .values_list("expires_at", flat=True)[: settings.CONSENT_OPEN_TICKETS_LIMIT]
        )
        if len(open_expiries) >= settings.CONSENT_OPEN_TICKETS_LIMIT:
            raise TooManyOpenTickets(max(1, int((open_expiries[0] - now).total_seconds())))
        state = secrets.token_urlsafe(32)  # 256 random bits
        ttl = timedelta(seconds=settings.CONSENT_STATE_TTL)
        ticket = ConsentTicket.objects.create(
            invitation=self,
            state_hash=ConsentTicket.hash(state),
            expected_tenant_id=self.expected_tenant_id,
            expires_at=min(timezone.now() + ttl, self.expires_at),
        )
        return ticket, state


class ConsentTicket(models.Model):
    """The `state` of one admin-consent request: single use, expiring, bound to an invitation
    and the tenant it expects."""

    class Result(models.TextChoices):
        CONSENTED = "consented", "Consent reported"
        DECLINED = "declined", "Declined or failed at Microsoft"
        TENANT_MISMATCH = "tenant_mismatch", "Rejected: another tenant"
        EXPIRED = "expired", "Rejected: expired"
        WITHDRAWN = "withdrawn", "Rejected: invitation revoked"

    invitation = models.ForeignKey(Invitation, on_delete=models.CASCADE, related_name="tickets")
    state_hash = models.CharField(max_length=64, unique=True)
    expected_tenant_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    # What the callback that redeemed it said.
    result = models.CharField(max_length=32, choices=Result.choices, blank=True)
    tenant_id = models.UUIDField(null=True, blank=True)

    def __str__(self) -> str:
        return f"ticket for {self.invitation}"

    @staticmethod
    def hash(state: str) -> str:
        return hashlib.sha256(state.encode("ascii")).hexdigest()

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    def redeem(self, result: str, tenant_id: uuid.UUID | None = None) -> bool:
        """Mark the ticket used, once: False when another request redeemed it first."""
        now = timezone.now()
        claimed = ConsentTicket.objects.filter(pk=self.pk, used_at__isnull=True).update(
            used_at=now, result=result, tenant_id=tenant_id
        )
        if claimed:
            self.used_at, self.result, self.tenant_id = now, result, tenant_id
        return claimed == 1


@receiver(tenant_offboarded)
def _close_invitations(sender: object, tenant: Tenant, actor: str, **kwargs: object) -> None:
    # Re-onboarding takes a new invitation: none of the old ones may be used again. Runs in
    # the offboarding transaction (tenants cannot call consent: it sits below it).
    Invitation.objects.revoke_open_for(tenant, actor=actor, reason="tenant offboarded")


# Invitations that expired longer ago than this are not announced any more (the first tick
# after an upgrade does not page about last year's invitations).
EXPIRED_UNUSED_LOOKBACK = timedelta(days=2)


@receiver(scheduler_ticked)
def announce_expired_unused(sender: object, **kwargs: object) -> int:
    """`invitation.expired_unused`, once per invitation that expired while still open."""
    now = timezone.now()
    expired = Invitation.objects.filter(
        status=Invitation.Status.OPEN,
        expires_at__lte=now,
        expires_at__gt=now - EXPIRED_UNUSED_LOOKBACK,
    )
    announced = 0
    for invitation in expired:
        with transaction.atomic():
            event = emit(
                INVITATION_EXPIRED_UNUSED,
                {
                    "invitation": str(invitation.code),
                    "customer_name": invitation.customer_name,
                    "tenant_id": str(invitation.expected_tenant_id or ""),
                    "access_profile": invitation.access_profile,
                    "expired_at": invitation.expires_at.isoformat(),
                    "url": settings.PORTAL_BASE_URL
                    + reverse("console:invitation", kwargs={"invitation_code": invitation.code}),
                },
                access_profile=invitation.access_profile,
                dedupe_key=f"{INVITATION_EXPIRED_UNUSED}:{invitation.code}",
            )
            if event is not None:
                record(
                    INVITATION_EXPIRED_UNUSED,
                    AuditEvent.Outcome.SUCCESS,
                    actor="system",
                    tenant_id=invitation.expected_tenant_id,
                    detail={"invitation": invitation.code},
                )
                announced += 1
    return announced


class CampaignQuerySet(models.QuerySet["Campaign"]):
    def open(self, *, actor: str, access_profile: str = "", email: bool = False) -> Campaign:
        """A new campaign for the tenants whose consent lacks a permission their profile
        requires (of one profile, or all), still to be populated (`populate`, a task in the
        console). Raises NothingToAsk when no tenant needs it."""
        from consent.campaigns import needing_reconsent  # it reads this module's models

        found = needing_reconsent(access_profile, uncovered=True)
        if not found:
            raise NothingToAsk(
                "Every tenant that needs to consent again already has a campaign's invitation "
                "waiting (see Re-consent campaigns): no campaign started."
                if needing_reconsent(access_profile)
                else "No tenant needs to consent again: no campaign started."
            )
        return self.create(
            access_profile=access_profile,
            created_by=actor,
            permissions=sorted({p for _tenant, missing in found for p in missing}),
            email_contacts=email,
            total=len(found),
        )

    def start(
        self, *, actor: str, access_profile: str = "", email: bool = False
    ) -> tuple[Campaign, int]:
        """Open and populate a campaign at once (the shell). Returns it and how many
        invitations were created."""
        campaign = self.open(actor=actor, access_profile=access_profile, email=email)
        return campaign, campaign.populate()


class NothingToAsk(Exception):
    """No tenant needs to consent again."""


class Campaign(models.Model):
    """Asking every tenant whose consent predates a permission to consent again, followed
    to the end: a member is done when a verification after the campaign began passes."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # "" for every profile.
    access_profile = models.CharField(max_length=64, blank=True)
    # resource:permission pairs the members' consents lacked when it started.
    permissions = models.JSONField(default=list, blank=True)
    email_contacts = models.BooleanField(default=False)
    created_by = models.CharField(max_length=254)
    created_at = models.DateTimeField(default=timezone.now)
    last_reminder_at = models.DateTimeField(null=True, blank=True)
    # Filled by `populate` (a task): tenants found when it was opened, and whether every one
    # has its member row and invitation yet.
    total = models.PositiveIntegerField(default=0)
    ready = models.BooleanField(default=False)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Re-consent campaign of {self.created_at:%Y-%m-%d}"

    @property
    def short_id(self) -> str:
        return str(self.code)[:8]

    def populate(self) -> int:
        """Give each tenant that needs it a member row and an invitation bound to it (its
        usable one if it has one, else a new one), one tenant per transaction, so the
        campaign page shows the progress and a task run twice adds nobody twice; then audit
        the start (`campaign.started`). Returns how many invitations were created."""
        from consent.campaigns import needing_reconsent

        if self.ready:
            return 0
        found = needing_reconsent(self.access_profile, uncovered=True)
        created = 0
        for tenant, missing in found:
            with transaction.atomic():
                if self.members.filter(tenant=tenant).exists():
                    continue
                invitation = Invitation.objects.to_send_again(tenant)
                if invitation is None:
                    invitation = Invitation.objects.reconsent_for(tenant, actor=self.created_by)
                    created += 1
                CampaignMember.objects.create(
                    campaign=self, tenant=tenant, invitation=invitation, missing=missing
                )
        with transaction.atomic():
            total = self.members.count()
            if not Campaign.objects.filter(pk=self.pk, ready=False).update(ready=True, total=total):
                return created
            self.ready, self.total = True, total
            record(
                "campaign.started",
                AuditEvent.Outcome.SUCCESS,
                actor=self.created_by,
                detail={
                    "campaign": self.code,
                    "profile": self.access_profile or "all",
                    "tenants": str(total),
                    "invitations_created": str(created),
                    "permissions": ",".join(self.permissions),
                },
            )
        return created


class CampaignMember(models.Model):
    class State(models.TextChoices):
        VERIFIED = "verified", "Re-consented and verified"
        RECONSENTED = "reconsented", "Re-consented, verification pending"
        DECLINED = "declined", "Declined at Microsoft"
        EXPIRED = "expired", "Invitation expired"
        PENDING = "pending", "Waiting for the customer"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="members")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="campaign_members")
    invitation = models.ForeignKey(Invitation, on_delete=models.SET_NULL, null=True)
    missing = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "tenant"], name="one_member_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.tenant} in {self.campaign}"


class InvitationImport(models.Model):
    """A CSV import of many invitations, worked through by tasks (never inside a web
    request): previewing (each domain looked up), previewed (every row's verdict), confirming
    (the "will create" rows being created), confirmed; or failed. Only the admin who uploaded
    it may see or confirm it."""

    class State(models.TextChoices):
        PREVIEWING = "previewing", "Previewing"
        PREVIEWED = "previewed", "Previewed"
        CONFIRMING = "confirming", "Creating the invitations"
        CONFIRMED = "confirmed", "Confirmed"
        FAILED = "failed", "Failed"

    WORKING = (State.PREVIEWING, State.CONFIRMING)

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    filename = models.CharField(max_length=200, blank=True)
    content = models.BinaryField()
    created_by = models.CharField(max_length=254)
    created_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PREVIEWING)
    # Progress of the step under way: domains looked up, or invitations created.
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    preview = models.JSONField(null=True, blank=True)
    created = models.JSONField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import of {self.filename or 'a file'} ({self.state})"

    @property
    def is_working(self) -> bool:
        return self.state in self.WORKING
