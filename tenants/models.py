from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Count, F, Q
from django.urls import reverse
from django.utils import timezone

from audit.log import record
from audit.models import AuditEvent
from mssp_portal import clouds
from mssp_portal.clouds import CLOUD_NAMES
from notifications.events import emit
from notifications.models import ALERT_OPENED, ALERT_RESOLVED
from tenants import profiles
from tenants.signals import tenant_offboarded


class TenantQuerySet(models.QuerySet["Tenant"]):
    def active(self) -> TenantQuerySet:
        """Tenants the portal still requests tokens for (not offboarded)."""
        return self.exclude(status=Tenant.Status.OFFBOARDED)

    def status_counts(self) -> dict[str, int]:
        """Tenants per status, stale ones, the active ones (not offboarded) and the total, in
        one query."""
        return self.aggregate(
            total=Count("pk"),
            active=Count("pk", filter=~Q(status=Tenant.Status.OFFBOARDED)),
            stale=Count("pk", filter=Q(stale_since__isnull=False)),
            **{status: Count("pk", filter=Q(status=status)) for status in Tenant.Status.values},
        )

    def due_for_verification(
        self, interval: timedelta, stale_interval: timedelta | None = None
    ) -> TenantQuerySet:
        """Active tenants not checked within `interval` and with no verification open.

        With `stale_interval`, a tenant whose last check was inconclusive (throttled, Entra
        down: marked stale) is due again sooner, after that shorter interval.
        """
        now = timezone.now()
        due = Q(last_checked_at__isnull=True) | Q(last_checked_at__lt=now - interval)
        if stale_interval is not None:
            due |= Q(stale_since__isnull=False, last_checked_at__lt=now - stale_interval)
        return self.active().filter(due).exclude(verifications__state__in=Verification.OPEN_STATES)

    def record_consent(
        self,
        tenant_id: uuid.UUID,
        *,
        customer_name: str,
        domain: str,
        access_profile: str,
        actor: str,
        detail: dict[str, object],
        contact_name: str = "",
        contact_email: str = "",
    ) -> Tenant:
        """A customer reported consent for this tenant: create it as "consent reported", or
        bring an existing one back to it (a re-consent, or an offboarded customer returning),
        and audit it (`consent.reported`). Call inside a transaction; the report is a hint
        until a verification proves it."""
        now = timezone.now()
        cloud = clouds.current().name
        tenant, created = self.select_for_update().get_or_create(
            tenant_id=tenant_id,
            defaults={
                "display_name": customer_name,
                "primary_domain": domain,
                "cloud": cloud,
                "access_profile": access_profile,
                "status": Tenant.Status.CONSENT_REPORTED,
                "consent_reported_at": now,
                "contact_name": contact_name,
                "contact_email": contact_email,
            },
        )
        if not created:
            fields = tenant.set_status(Tenant.Status.CONSENT_REPORTED)
            tenant.consent_reported_at = now
            tenant.cloud = cloud
            tenant.access_profile = access_profile
            tenant.offboarded_at = None
            fields += ["consent_reported_at", "cloud", "access_profile", "offboarded_at"]
            if not tenant.display_name:
                tenant.display_name = customer_name
                fields.append("display_name")
            # The invitation's contact is the newer word; without one, the known one stays.
            if contact_email:
                tenant.contact_name, tenant.contact_email = contact_name, contact_email
                fields += ["contact_name", "contact_email"]
            tenant.save(update_fields=fields)
        record(
            "consent.reported",
            AuditEvent.Outcome.SUCCESS,
            actor=actor,
            tenant_id=tenant_id,
            detail={**detail, "access_profile": access_profile},
        )
        return tenant


class Tenant(models.Model):
    """A customer tenant whose administrator reported consent to the MSSP's app."""

    class Status(models.TextChoices):
        # The consent redirect said so; nothing proven yet (the redirect can be forged).
        CONSENT_REPORTED = "consent_reported", "Consent reported"
        VERIFIED = "verified", "Verified"
        INCOMPLETE = "incomplete", "Incomplete"
        NO_ACCESS = "no_access", "No access"
        OFFBOARDED = "offboarded", "Offboarded"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant_id = models.UUIDField(unique=True)
    display_name = models.CharField(max_length=256, blank=True)
    primary_domain = models.CharField(max_length=253, blank=True)
    # The customer's administrator, from the invitation they consented through.
    contact_name = models.CharField(max_length=200, blank=True)
    contact_email = models.EmailField(max_length=254, blank=True)
    cloud = models.CharField(max_length=16, choices=[(c, c) for c in CLOUD_NAMES])
    access_profile = models.CharField(max_length=64, choices=profiles.CHOICES)
    # Per-resource probe configuration a customer gives us, e.g. the logs ingestion
    # endpoint, data collection rule id and stream: {"loganalytics": {"endpoint": …}}.
    probe_settings = models.JSONField(default=dict, blank=True)

    status = models.CharField(
        max_length=24, choices=Status.choices, default=Status.CONSENT_REPORTED
    )
    status_since = models.DateTimeField(default=timezone.now)
    # Set when the newest verification could not reach a definitive answer (throttled, Entra
    # down): the status shown is the last definitive one, as of this time.
    stale_since = models.DateTimeField(null=True, blank=True)
    diagnosis = models.CharField(max_length=64, blank=True)
    consent_reported_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_verified_at = models.DateTimeField(null=True, blank=True)
    offboarded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["display_name", "tenant_id"]
        indexes = [
            # Dashboard: filter by status, newest change first.
            models.Index(fields=["status", "-status_since"], name="tenant_status_idx"),
            # Scheduler: active tenants by last check.
            models.Index(fields=["last_checked_at"], name="tenant_last_checked_idx"),
            # Dashboard, default view: a page in name order without sorting the fleet.
            models.Index(fields=["display_name", "tenant_id"], name="tenant_name_idx"),
            # Dashboard counts per status and stale: a scan of this small index, not the table.
            models.Index(fields=["status", "stale_since"], name="tenant_counts_idx"),
            # The "needs attention" view sorted by last check walks tenant_last_checked_idx
            # backwards and stops after a page of matches.
        ]

    def __str__(self) -> str:
        return self.display_name or str(self.tenant_id)

    @property
    def profile(self) -> profiles.AccessProfile:
        return profiles.get(self.access_profile)

    def set_status(self, status: str, *, diagnosis: str = "") -> list[str]:
        """Change the status (keeping `status_since` when it does not change); returns the
        fields to save."""
        fields = ["status", "diagnosis", "stale_since"]
        if status != self.status:
            self.status = status
            self.status_since = timezone.now()
            fields.append("status_since")
        self.diagnosis = diagnosis
        self.stale_since = None
        return fields

    def offboard(self, *, actor: str) -> bool:
        """Stop requesting tokens for this tenant, keep its record and history, and audit it
        (`tenant.offboarded`); the apps above close what they hold for it (its open
        invitations) on `tenant_offboarded`. False when it was already offboarded."""
        with transaction.atomic():
            tenant = Tenant.objects.select_for_update().get(pk=self.pk)
            if tenant.status == self.Status.OFFBOARDED:
                return False
            fields = tenant.set_status(self.Status.OFFBOARDED, diagnosis="")
            tenant.offboarded_at = timezone.now()
            tenant.save(update_fields=[*fields, "offboarded_at"])
            record(
                "tenant.offboarded",
                AuditEvent.Outcome.SUCCESS,
                actor=actor,
                tenant_id=self.tenant_id,
            )
            tenant_offboarded.send(sender=Tenant, tenant=tenant, actor=actor)
        for name in (*fields, "offboarded_at"):
            setattr(self, name, getattr(tenant, name))
        return True

    def record_verification(self, verification: Verification) -> list[str]:
        """Apply a finished verification; returns the fields to save.

        Definitive outcomes set the status. A transient one keeps the last definitive status
        and marks it stale. A platform error is the MSSP's fault, not the tenant's: only the
        time of the check is recorded.
        """
        now = verification.finished_at or timezone.now()
        self.last_checked_at = now
        fields = ["last_checked_at"]
        if self.status == self.Status.OFFBOARDED:
            return fields
        outcome = verification.outcome
        Outcome = Verification.Outcome
        if outcome in (Outcome.VERIFIED, Outcome.INCOMPLETE, Outcome.NO_ACCESS):
            fields += self.set_status(outcome, diagnosis=verification.diagnosis)
        elif outcome == Outcome.TRANSIENT and self.stale_since is None:
            self.stale_since = now
            fields.append("stale_since")
        if outcome == Outcome.VERIFIED:
            self.last_verified_at = now
            fields.append("last_verified_at")
        organization = (verification.results.get("graph") or {}).get("organization") or {}
        # Customer-controlled text from Graph: stored as data, cut to the column, escaped
        # wherever it is shown.
        if organization.get("display_name"):
            self.display_name = str(organization["display_name"])[:256]
            fields.append("display_name")
        if organization.get("primary_domain"):
            self.primary_domain = str(organization["primary_domain"])[:253]
            fields.append("primary_domain")
        return fields

    def request_verification(
        self, trigger: str, requested_by: str = "system"
    ) -> tuple[Verification, bool]:
        """The open verification of this tenant, creating a queued one if there is none.

        At most one verification per tenant is open (a partial unique constraint), so ten
        simultaneous requests produce one verification; the others get it back with
        created=False.
        """
        try:
            with transaction.atomic():
                verification = Verification.objects.create(
                    tenant=self, trigger=trigger, requested_by=requested_by
                )
        except IntegrityError:
            open_one = self.verifications.filter(state__in=Verification.OPEN_STATES).first()
            if open_one is None:  # it finished between our insert and this read
                return self.request_verification(trigger, requested_by)
            return open_one, False
        return verification, True


class VerificationQuerySet(models.QuerySet["Verification"]):
    def claimable(self) -> VerificationQuerySet:
        """Queued, or running under a lease that expired (its worker died or hung)."""
        return self.filter(
            Q(state=Verification.State.QUEUED)
            | Q(state=Verification.State.RUNNING, lease_expires_at__lt=timezone.now())
        )

    def orphaned(self, lease: timedelta) -> VerificationQuerySet:
        """Claimable verifications that nobody is about to run: running with an expired
        lease (the worker died), or queued with no task in sight: older than one `lease`
        and never handed over again, or handed over again longer than a lease ago."""
        now = timezone.now()
        running_expired = Q(state=Verification.State.RUNNING, lease_expires_at__lt=now)
        queued_forgotten = Q(state=Verification.State.QUEUED) & (
            Q(lease_expires_at__isnull=True, created_at__lt=now - lease)
            | Q(lease_expires_at__lt=now)
        )
        return self.filter(running_expired | queued_forgotten)


class Verification(models.Model):
    """One attempt to prove access in a tenant. Every attempt is kept: it is the history."""

    class Trigger(models.TextChoices):
        CONSENT = "consent", "Consent reported"
        SCHEDULE = "schedule", "Scheduled"
        MANUAL = "manual", "Requested by staff"
        CLI = "cli", "Command line"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    class Outcome(models.TextChoices):
        VERIFIED = "verified", "Verified"
        INCOMPLETE = "incomplete", "Incomplete"
        NO_ACCESS = "no_access", "No access"
        PLATFORM_ERROR = "platform_error", "Platform error"
        TRANSIENT = "transient", "Transient failure"
        # The tenant was offboarded before the verification ran: no token was requested.
        CANCELLED = "cancelled", "Cancelled"

    OPEN_STATES = (State.QUEUED, State.RUNNING)

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="verifications")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    requested_by = models.CharField(max_length=254, default="system")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    outcome = models.CharField(max_length=24, choices=Outcome.choices, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A worker owns a running verification until this time; past it, another may take over.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    diagnosis = models.CharField(max_length=64, blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    # Per resource: token obtained, tid, roles seen / required / missing, probe result.
    # Never a token.
    results = models.JSONField(default=dict, blank=True)
    # What the MSSP side presented: the app's client id and the claims (never the token) of
    # the managed identity's assertion. A platform diagnosis names the FIC values from these.
    platform = models.JSONField(default=dict, blank=True)

    objects = VerificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # request_verification relies on this to deduplicate concurrent requests.
            models.UniqueConstraint(
                fields=["tenant"],
                condition=Q(state__in=["queued", "running"]),
                name="one_open_verification_per_tenant",
            ),
        ]
        indexes = [
            # Tenant page history: a tenant's verifications, newest first.
            models.Index(fields=["tenant", "-created_at"], name="verification_history_idx"),
            # Workers: queued or lease-expired verifications.
            models.Index(fields=["state", "lease_expires_at"], name="verification_claim_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant} {self.trigger} {self.state} {self.outcome}"

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class PlatformAlertQuerySet(models.QuerySet["PlatformAlert"]):
    def open(self) -> PlatformAlertQuerySet:
        return self.filter(resolved_at__isnull=True)


class PlatformAlert(models.Model):
    """A fault on the MSSP's side (managed identity down, federated credential wrong, clock
    off) that makes every tenant's verification fail. It changes no tenant's status; one
    alert stays open per kind of fault until a token exchange succeeds again."""

    key = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    detail = models.TextField(blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # How many verifications ran into it while it was open.
    occurrences = models.PositiveIntegerField(default=1)

    objects = PlatformAlertQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            # raise_alert relies on this: a fleet failing at once opens one alert per key.
            models.UniqueConstraint(
                fields=["key"],
                condition=Q(resolved_at__isnull=True),
                name="one_open_platform_alert_per_key",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @classmethod
    def raise_alert(cls, key: str, title: str, detail: str = "") -> tuple[PlatformAlert, bool]:
        """Open the alert `key`, or refresh the open one (last seen, detail, occurrences).
        Returns (alert, opened). Opening it is one `platform.alert_opened` notification,
        however many tenants run into it."""
        now = timezone.now()
        refreshed = (
            cls.objects.open()
            .filter(key=key)
            .update(title=title, detail=detail, last_seen_at=now, occurrences=F("occurrences") + 1)
        )
        if not refreshed:
            try:
                with transaction.atomic():
                    alert = cls.objects.create(
                        key=key, title=title, detail=detail, opened_at=now, last_seen_at=now
                    )
                    alert._announce(ALERT_OPENED)
                return alert, True
            except IntegrityError:  # another worker opened it between our update and insert
                return cls.raise_alert(key, title, detail)
        return cls.objects.open().get(key=key), False

    @classmethod
    def resolve_open(cls) -> int:
        """A token exchange succeeded: identity, federated credential and clock are fine, so
        every open alert is over: one `platform.alert_resolved` audit event and notification
        each. Returns how many were resolved."""
        resolved = 0
        for alert in cls.objects.open():
            with transaction.atomic():
                # Conditional: of workers resolving at once, one announces it.
                if cls.objects.open().filter(pk=alert.pk).update(resolved_at=timezone.now()):
                    record(
                        "platform.alert_resolved",
                        AuditEvent.Outcome.SUCCESS,
                        actor="system",
                        detail={"alert": alert.key},
                    )
                    alert._announce(ALERT_RESOLVED)
                    resolved += 1
        return resolved

    def _announce(self, event_type: str) -> None:
        emit(
            event_type,
            {
                "alert_kind": self.key,
                "title": self.title,
                "remediation": self.detail if event_type == ALERT_OPENED else "",
                "url": settings.PORTAL_BASE_URL + reverse("console:dashboard"),
            },
        )
