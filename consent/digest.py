"""The daily digest for email destinations that asked for one: tenants per status, the
tenants whose status changed in the last day, and the open invitations about to expire.

It is built here because it spans tenants and invitations (consent sits above both); it goes
out through notifications like any event (a `digest.daily` event for that destination
alone), so it is retried and shows in the delivery log.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone

from consent.models import Invitation
from notifications.events import fan_out
from notifications.models import (
    DIGEST,
    TENANT_ONBOARDED,
    TENANT_STATUS_CHANGED,
    Destination,
    Event,
)
from tenants.models import Tenant
from tenants.signals import scheduler_ticked

PERIOD = timedelta(days=1)
# Open invitations expiring within this time are listed.
EXPIRING_WITHIN = timedelta(days=3)


def contents(now=None) -> dict[str, object]:
    now = now or timezone.now()
    base = settings.PORTAL_BASE_URL
    changes = Event.objects.filter(
        type__in=(TENANT_ONBOARDED, TENANT_STATUS_CHANGED), timestamp__gt=now - PERIOD
    ).order_by("timestamp", "pk")
    expiring = Invitation.objects.usable().filter(expires_at__lte=now + EXPIRING_WITHIN)
    counts = Tenant.objects.status_counts()
    return {
        "counts": {status: counts[status] for status in Tenant.Status.values},
        "stale": counts["stale"],
        "changed": [
            {
                key: event.data.get(key)
                for key in ("tenant_id", "customer_name", "previous_status", "status", "url")
            }
            for event in changes
        ],
        "expiring_invitations": [
            {
                "customer_name": invitation.customer_name,
                "expires_at": invitation.expires_at.isoformat(),
                "url": base
                + reverse("console:invitation", kwargs={"invitation_code": invitation.code}),
            }
            for invitation in expiring.order_by("expires_at")[:50]
        ],
        "url": base + reverse("console:dashboard"),
    }


@receiver(scheduler_ticked)
def send_digests(sender: object, **kwargs: object) -> int:
    """A digest to each email destination that wants one and had none for a day."""
    now = timezone.now()
    due = (
        Destination.objects.enabled()
        .filter(kind=Destination.Kind.EMAIL, daily_digest=True)
        .filter(Q(last_digest_at__isnull=True) | Q(last_digest_at__lte=now - PERIOD))
    )
    sent = 0
    for destination in due:
        with transaction.atomic():
            # Conditional: of two schedulers ticking at once, one sends it.
            claimed = (
                Destination.objects.filter(pk=destination.pk)
                .filter(Q(last_digest_at__isnull=True) | Q(last_digest_at__lte=now - PERIOD))
                .update(last_digest_at=now)
            )
            if not claimed:
                continue
            event = Event.objects.create(type=DIGEST, timestamp=now, data=contents(now))
            fan_out(event, [destination])
            sent += 1
    return sent
