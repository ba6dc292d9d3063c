from __future__ import annotations

import uuid
from datetime import timedelta

from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone

from mssp_portal.clouds import CLOUD_NAMES
from tenants import profiles


class TenantQuerySet(models.QuerySet["Tenant"]):
    def active(self) -> TenantQuerySet:
        """Tenants the portal still requests tokens for (not offboarded)."""
        return self.exclude(status=Tenant.Status.OFFBOARDED)

    def due_for_verification(self, interval: timedelta) -> TenantQuerySet:
        """Active tenants not checked within `interval` and with no verification open."""
        cutoff = timezone.now() - interval
        return (
            self.active()
            .filter(Q(last_checked_at__isnull=True) | Q(last_checked_at__lt=cutoff))
            .exclude(verifications__state__in=Verification.OPEN_STATES)
        )


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
