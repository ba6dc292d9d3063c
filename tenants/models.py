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

    def change_profile(self, key: str, *, actor: str) -> bool:
        """Verify this tenant against another access profile from now on, and audit it
        (`tenant.profile_changed`). False, and nothing recorded, when it already has it.
        Raises KeyError for an unknown profile. The caller queues a re-verification."""
        profiles.get(key)
        with transaction.atomic():
            tenant = Tenant.objects.select_for_update().get(pk=self.pk)
            if tenant.access_profile == key:
                return False
            previous = tenant.access_profile
            Tenant.objects.filter(pk=self.pk).update(access_profile=key)
            self.access_profile = key
            record(
                "tenant.profile_changed",
                AuditEvent.Outcome.SUCCESS,
                actor=actor,
                tenant_id=self.tenant_id,
                detail={"from": previous, "to": key},
            )
        return True

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


class TenantGroupQuerySet(models.QuerySet["TenantGroup"]):
    def create_group(
        self,
        *,
        name: str,
        actor: str,
        description: str = "",
        scope: str = "only",
    ) -> TenantGroup:
        """A new tenant group, audited (`tenant_group.created`)."""
        with transaction.atomic():
            group = self.create(name=name, description=description, scope=scope)
            record(
                "tenant_group.created",
                AuditEvent.Outcome.SUCCESS,
                actor=actor,
                detail={"group": str(group.code), "name": name, "scope": scope},
            )
        return group

    def scoping_in_use(self) -> bool:
        """Whether some group is mapped to an Entra group or app role, or has members."""
        return (
            any(g.entra_group_ids or g.app_roles for g in self.only("entra_group_ids", "app_roles"))
            or self.filter(members__isnull=False).exists()
        )

    def granted_to(self, *, user: object, entra_groups: list[str], app_roles: list[str]) -> list:
        """The groups that scope this staff member: mapped from one of their Entra group
        object ids or app roles, or listed as a manual member (break-glass override).
        Groups are few (tens): the mappings are matched here, not in SQL, which SQLite's
        JSON support could not do."""
        wanted_groups = {g.lower() for g in entra_groups}
        wanted_roles = set(app_roles)
        manual = set(self.filter(members=user).values_list("pk", flat=True)) if user else set()
        return [
            group
            for group in self.all()
            if group.pk in manual
            or wanted_groups & {g.lower() for g in group.entra_group_ids}
            or wanted_roles & set(group.app_roles)
        ]


class TenantGroup(models.Model):
    """Tenants an MSSP's pod, region or contractor is given: staff whose Entra group or app
    role is mapped here (or who are listed as manual members) see these tenants only
    (`scope` "only"), or every tenant but these (`scope` "except")."""

    class Scope(models.TextChoices):
        ONLY = "only", "Only the tenants of this group"
        EXCEPT = "except", "Every tenant except those of this group"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.ONLY)
    tenants = models.ManyToManyField(Tenant, related_name="tenant_groups", blank=True)
    # Entra security group object ids (the id token's `groups` claim) and app role values
    # (its `roles` claim) of the home tenant that grant this group's scope.
    entra_group_ids = models.JSONField(default=list, blank=True)
    app_roles = models.JSONField(default=list, blank=True)
    # Users given this scope by hand: break-glass accounts, which have no Entra groups.
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="tenant_groups", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantGroupQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def assign(self, tenants: list[Tenant], *, actor: str) -> int:
        """Put these tenants in the group (those already in it stay); audited
        (`tenant_group.tenants_assigned`, one event per tenant added). Returns how many
        were added."""
        with transaction.atomic():
            present = set(
                self.tenants.filter(pk__in=[t.pk for t in tenants]).values_list("pk", flat=True)
            )
            added = [t for t in tenants if t.pk not in present]
            self.tenants.add(*added)
            for tenant in added:
                record(
                    "tenant_group.tenants_assigned",
                    AuditEvent.Outcome.SUCCESS,
                    actor=actor,
                    tenant_id=tenant.tenant_id,
                    detail={"group": str(self.code), "name": self.name},
                )
        return len(added)

    def unassign(self, tenants: list[Tenant], *, actor: str) -> int:
        """Take these tenants out of the group; audited (`tenant_group.tenants_removed`)."""
        with transaction.atomic():
            present = list(self.tenants.filter(pk__in=[t.pk for t in tenants]))
            self.tenants.remove(*present)
            for tenant in present:
                record(
                    "tenant_group.tenants_removed",
                    AuditEvent.Outcome.SUCCESS,
                    actor=actor,
                    tenant_id=tenant.tenant_id,
                    detail={"group": str(self.code), "name": self.name},
                )
        return len(present)

    def map(self, *, actor: str, entra_group: str = "", app_role: str = "") -> bool:
        """Grant the group's scope to an Entra group (object id) or an app role value;
        audited (`tenant_group.mapped`). False when that mapping was there already."""
        with transaction.atomic():
            group = TenantGroup.objects.select_for_update().get(pk=self.pk)
            if entra_group:
                value, field = str(uuid.UUID(entra_group)), "entra_group_ids"
            else:
                value, field = app_role, "app_roles"
            current = list(getattr(group, field))
            if value in current:
                return False
            current.append(value)
            setattr(group, field, current)
            group.save(update_fields=[field])
            setattr(self, field, current)
            record(
                "tenant_group.mapped",
                AuditEvent.Outcome.SUCCESS,
                actor=actor,
                detail={"group": str(self.code), "name": self.name, field: value},
            )
        return True

    def update(self, *, actor: str, **fields: object) -> list[str]:
        """Change name, description, scope, or the mappings (lists); audited
        (`tenant_group.updated`, with the names of the fields that changed)."""
        allowed = {"name", "description", "scope", "entra_group_ids", "app_roles"}
        changed = [k for k, v in fields.items() if k in allowed and getattr(self, k) != v]
        if not changed:
            return []
        with transaction.atomic():
            for name in changed:
                setattr(self, name, fields[name])
            self.save(update_fields=changed)
            record(
                "tenant_group.updated",
                AuditEvent.Outcome.SUCCESS,
                actor=actor,
                detail={"group": str(self.code), "name": self.name, "fields": ",".join(changed)},
            )
        return changed

    def set_members(self, users: list[object], *, actor: str) -> None:
        """The manual members (break-glass override); audited (`tenant_group.members_set`)."""
        with transaction.atomic():
            self.members.set(users)
            record(
                "tenant_group.members_set",
                AuditEvent.Outcome.SUCCESS,
                actor=actor,
                detail={
                    "group": str(self.code),
                    "name": self.name,
                    "members": ",".join(sorted(u.get_username() for u in users)),
                },
            )
