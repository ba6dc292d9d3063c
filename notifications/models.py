"""Notifications: where messages go (Destination), what happened (Event), and each message
on its way to one destination (Delivery) with its attempts.

An event row is written in the same transaction as the change that caused it, together with
one delivery row per destination that wants it: a crash after the commit loses nothing, the
scheduler's sweep sends what a task did not.
"""

from __future__ import annotations

import secrets
import uuid
from base64 import b64decode, b64encode
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models, transaction
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from audit.log import record
from audit.models import AuditEvent

# Stable event type names (the `type` of every payload).
TENANT_ONBOARDED = "tenant.onboarded"
TENANT_STATUS_CHANGED = "tenant.status_changed"
TENANT_STALE = "tenant.stale"
ALERT_OPENED = "platform.alert_opened"
ALERT_RESOLVED = "platform.alert_resolved"
INVITATION_EXPIRED_UNUSED = "invitation.expired_unused"
TEST = "notification.test"
BREAK_GLASS_USED = "staff.break_glass_used"
# Not an event anybody subscribes to: the daily digest an email destination opts into.
DIGEST = "digest.daily"

EVENT_TYPES = {
    TENANT_ONBOARDED: "A tenant's first verification after consent finished",
    TENANT_STATUS_CHANGED: "A tenant's status changed (verified, incomplete, no access)",
    TENANT_STALE: "Verifications of a tenant keep failing transiently",
    ALERT_OPENED: "A platform fault (managed identity, federated credential) began",
    ALERT_RESOLVED: "A platform fault is over",
    INVITATION_EXPIRED_UNUSED: "An invitation expired without consent",
    BREAK_GLASS_USED: "A local break-glass account signed in",
    TEST: "A test message sent by an admin",
}


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + b64encode(secrets.token_bytes(32)).decode()


def shown_target(kind: str, target: str) -> str:
    """A destination's target as staff may see it (and its default name): Teams, Slack and
    many webhook URLs carry their own credential in the path, so only scheme and host."""
    if kind == Destination.Kind.EMAIL:
        return target
    scheme, _, rest = target.partition("://")
    return f"{scheme}://{rest.split('/')[0].split('@')[-1]}/…"


class DestinationQuerySet(models.QuerySet["Destination"]):
    def enabled(self) -> DestinationQuerySet:
        return self.filter(enabled=True)

    def add(
        self,
        *,
        kind: str,
        name: str,
        target: str,
        actor: str,
        secret: str = "",
        event_types: list[str] | None = None,
        access_profiles: list[str] | None = None,
        daily_digest: bool = False,
    ) -> Destination:
        """Check and save a destination (a webhook without a secret gets a new one), and audit
        it (`notification_destination.added`). Raises ValidationError, saving nothing."""
        destination = Destination(
            kind=kind,
            name=name.strip() or shown_target(kind, target.strip()),
            target=target.strip(),
            secret=secret or (new_secret() if kind == Destination.Kind.WEBHOOK else ""),
            event_types=sorted(event_types or []),
            access_profiles=sorted(access_profiles or []),
            daily_digest=daily_digest and kind == Destination.Kind.EMAIL,
            created_by=actor,
        )
        destination.full_clean(exclude=["code"])
        with transaction.atomic():
            destination.save()
            destination._audit("notification_destination.added", actor)
        return destination


class Destination(models.Model):
    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "Webhook (Standard Webhooks, signed)"
        EMAIL = "email", "Email"
        TEAMS = "teams", "Microsoft Teams (workflow webhook)"
        SLACK = "slack", "Slack (incoming webhook)"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # A https URL for webhook, Teams and Slack; an address for email.
    target = models.CharField(max_length=2000)
    # Webhooks only: the signing secret. It is shown once, when created; the console shows
    # its first characters only.
    secret = models.CharField(max_length=100, blank=True)
    # Empty: every event type.
    event_types = models.JSONField(default=list, blank=True)
    # Empty: tenants of every access profile.
    access_profiles = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    # Email only: one message a day with the fleet's state, besides the events.
    daily_digest = models.BooleanField(default=False)
    last_digest_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=254)
    created_at = models.DateTimeField(default=timezone.now)

    objects = DestinationQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    @property
    def secret_hint(self) -> str:
        return self.secret[:10] + "…" if self.secret else ""

    @property
    def shown_target(self) -> str:
        return shown_target(self.kind, self.target)

    @property
    def is_email(self) -> bool:
        return self.kind == self.Kind.EMAIL

    def clean(self) -> None:
        from notifications.addresses import check_url

        if self.kind == self.Kind.EMAIL:
            validate_email(self.target)
        else:
            try:
                check_url(self.target)
            except ValidationError as exc:
                raise ValidationError({"target": exc.messages}) from None
        if self.secret:
            try:
                Webhook(self.secret)
            except Exception:
                raise ValidationError(
                    {"secret": "A signing secret is whsec_ followed by base64 (24 to 64 bytes)."}
                ) from None
            if not 24 <= len(b64decode(self.secret.removeprefix("whsec_") + "==")) <= 64:
                raise ValidationError(
                    {"secret": "A signing secret is whsec_ followed by base64 (24 to 64 bytes)."}
                )
        unknown = set(self.event_types) - set(EVENT_TYPES)
        if unknown:
            raise ValidationError(
                {"event_types": f"Unknown event types: {', '.join(sorted(unknown))}."}
            )

    def change(self, *, actor: str, **fields: object) -> None:
        """Save new settings (checked like a new destination) and audit which changed."""
        changed = sorted(k for k, v in fields.items() if getattr(self, k) != v)
        for name, value in fields.items():
            setattr(self, name, value)
        self.full_clean(exclude=["code"])
        with transaction.atomic():
            self.save()
            self._audit("notification_destination.changed", actor, fields=",".join(changed))

    def remove(self, *, actor: str) -> None:
        with transaction.atomic():
            self._audit("notification_destination.removed", actor)
            self.delete()

    def send_test(self, *, actor: str) -> Delivery:
        """A `notification.test` event for this destination alone, audited."""
        from notifications.events import fan_out

        with transaction.atomic():
            event = Event.objects.create(
                type=TEST, data={"destination": self.name, "url": self.console_url()}
            )
            self._audit(TEST, actor)
            (delivery,) = fan_out(event, [self])
        return delivery

    def console_url(self) -> str:
        path = reverse("console:notification_destination", kwargs={"destination_code": self.code})
        return settings.PORTAL_BASE_URL.rstrip("/") + path

    def _audit(self, action: str, actor: str, **detail: object) -> None:
        record(
            action,
            AuditEvent.Outcome.SUCCESS,
            actor=actor,
            detail={"destination": str(self.code), "kind": self.kind, "name": self.name, **detail},
        )

    def wants(self, event_type: str, access_profile: str) -> bool:
        if event_type in (TEST, DIGEST):
            return False  # a test or a digest goes to the one destination it is for
        if self.event_types and event_type not in self.event_types:
            return False
        # An event about no tenant (a platform alert) reaches profile-filtered ones too.
        return (
            not access_profile or not self.access_profiles or access_profile in self.access_profiles
        )


class Event(models.Model):
    class State(models.TextChoices):
        SENT = "sent", "Handed to its destinations"
        # Part of a flapping tenant's changes: told once, in the summary at the window's end.
        FOLDED = "folded", "Folded into a flapping summary"
        SUMMARISED = "summarised", "Told in a flapping summary"
        # Explained by an open platform alert.
        SUPPRESSED = "suppressed", "Suppressed by an open platform alert"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=64)
    timestamp = models.DateTimeField(default=timezone.now)
    data = models.JSONField(default=dict)
    tenant_id = models.UUIDField(null=True, blank=True)
    access_profile = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.SENT)
    # For a folded event: when its flapping window ends and the summary is due.
    fold_until = models.DateTimeField(null=True, blank=True)
    # Events that must exist once (a tenant stale since a given time): a second emit with
    # the same key is a no-op.
    dedupe_key = models.CharField(max_length=200, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-timestamp", "-pk"]
        indexes = [
            models.Index(fields=["tenant_id", "type", "-timestamp"], name="event_tenant_idx"),
            models.Index(fields=["state", "fold_until"], name="event_fold_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.timestamp:%Y-%m-%d %H:%M}"

    def payload(self) -> dict[str, object]:
        """The Standard Webhooks payload."""
        return {
            "type": self.type,
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
            "data": self.data,
        }


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    def due(self) -> DeliveryQuerySet:
        return self.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=timezone.now())

    def last_sent_about(self, tenant_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Delivery]:
        """The newest delivered message about each of these tenants, in one query."""
        delivered = self.filter(status=Delivery.Status.DELIVERED)
        newest = delivered.filter(event__tenant_id=OuterRef("event__tenant_id")).order_by(
            "-delivered_at", "-pk"
        )
        rows = (
            delivered.filter(event__tenant_id__in=list(tenant_ids))
            .filter(pk=Subquery(newest.values("pk")[:1]))
            .select_related("event", "destination")
        )
        return {row.event.tenant_id: row for row in rows}


class Delivery(models.Model):
    """One event on its way to one destination. Its code is the `webhook-id`: the same on
    every attempt, so a receiver can drop a duplicate."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    destination = models.ForeignKey(
        Destination, on_delete=models.CASCADE, related_name="deliveries"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # A worker sending it holds it until then (two sweeps do not send it twice at once).
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx"),
            models.Index(fields=["destination", "-created_at"], name="delivery_log_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["event", "destination"], name="one_delivery_per_pair")
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.destination} ({self.status})"

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.code.hex}"


class Attempt(models.Model):
    """One try at sending a delivery: what the receiver answered (or why nothing came back)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.delivery} at {self.at:%H:%M:%S}: {self.status_code or self.error}"

    @property
    def ok(self) -> bool:
        return not self.error and self.status_code is not None and 200 <= self.status_code < 300
