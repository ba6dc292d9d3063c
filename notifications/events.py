"""Recording events: `emit` writes the event and its deliveries in the caller's transaction.

The apps above decide *that* something is news (a status changed, an alert opened); this
module decides *who* hears it and how often: destinations by event type and access profile,
and a flapping tenant folded into one summary per window.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from itertools import groupby

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from mssp_portal import statements
from notifications.models import TENANT_STATUS_CHANGED, Delivery, Destination, Event
from notifications.tasks import send_deliveries

# A tenant whose status changed this many times within NOTIFY_FLAP_WINDOW is flapping.
FLAP_CHANGES = 3


def emit(
    event_type: str,
    data: Mapping[str, object],
    *,
    tenant_id: uuid.UUID | str | None = None,
    access_profile: str = "",
    dedupe_key: str | None = None,
    suppressed: bool = False,
) -> Event | None:
    """Record an event and one delivery per destination that wants it. Call inside the
    transaction of the change it announces. With `dedupe_key`, an event that was already
    recorded under that key is not recorded again (returns None). A `suppressed` event is
    kept for the record and sent nowhere."""
    now = timezone.now()
    event = Event(
        type=event_type,
        timestamp=now,
        data=dict(data),
        tenant_id=tenant_id,
        access_profile=access_profile,
        dedupe_key=dedupe_key,
    )
    if suppressed:
        event.state = Event.State.SUPPRESSED
    elif event_type == TENANT_STATUS_CHANGED and tenant_id is not None:
        fold_until = _flapping_until(tenant_id, now)
        if fold_until is not None:
            event.state, event.fold_until = Event.State.FOLDED, fold_until
    # Written by every verification that changes a status: prepared INSERTs.
    if dedupe_key is None:
        # Nothing to collide with: no savepoint (two statements less per verification
        # that changes a status).
        statements.insert(event)
    else:
        try:
            with transaction.atomic():
                statements.insert(event)
        except IntegrityError:
            if Event.objects.filter(dedupe_key=dedupe_key).exists():
                return None
            raise
    if event.state == Event.State.SENT:
        fan_out(event)
    return event


def fan_out(event: Event, destinations: list[Destination] | None = None) -> list[Delivery]:
    """A pending delivery of `event` to each destination that wants it (or to exactly
    `destinations`), handed to a worker once the transaction commits."""
    if destinations is None:
        # Destination.objects.enabled(), read as a prepared statement: every verification
        # that changes a status asks.
        enabled = statements.select(Destination, "enabled = %s", [True])
        destinations = [d for d in enabled if d.wants(event.type, event.access_profile)]
    deliveries = Delivery.objects.bulk_create(
        [
            Delivery(event=event, destination=d, next_attempt_at=event.timestamp)
            for d in destinations
        ]
    )
    if deliveries:
        codes = [str(d.code) for d in deliveries]
        transaction.on_commit(lambda: send_deliveries.enqueue(codes))
    return deliveries


def _flapping_until(tenant_id: uuid.UUID | str, now) -> object | None:
    """When this tenant's flapping window ends, if the change about to be recorded falls in
    one: FLAP_CHANGES changes were already told within NOTIFY_FLAP_WINDOW, or changes are
    being folded already."""
    window = timedelta(seconds=settings.NOTIFY_FLAP_WINDOW)
    recent = list(
        Event.objects.filter(
            tenant_id=tenant_id, type=TENANT_STATUS_CHANGED, timestamp__gt=now - window
        )
        .exclude(state=Event.State.SUPPRESSED)
        .order_by("timestamp")
        .values_list("state", "timestamp", "fold_until")
    )
    folding = [until for state, _at, until in recent if state == Event.State.FOLDED]
    if folding:
        return folding[-1]
    told = [at for state, at, _until in recent if state == Event.State.SENT]
    if len(told) >= FLAP_CHANGES:
        return told[-FLAP_CHANGES] + window
    return None


def summarise_flapping(now=None) -> int:
    """One summary per tenant whose flapping window has ended: where it started, where it is
    now, and how many changes it went through. Returns how many summaries were sent."""
    now = now or timezone.now()
    due = Event.objects.filter(state=Event.State.FOLDED, fold_until__lte=now).order_by(
        "tenant_id", "timestamp", "pk"
    )
    sent = 0
    for tenant_id, group in groupby(due, key=lambda e: e.tenant_id):
        folded = list(group)
        with transaction.atomic():
            taken = Event.objects.filter(
                pk__in=[e.pk for e in folded], state=Event.State.FOLDED
            ).update(state=Event.State.SUMMARISED)
            if taken != len(folded):
                continue  # another sweep has it
            first, last = folded[0], folded[-1]
            data = {
                **last.data,
                "previous_status": first.data.get("previous_status"),
                "flapping": {
                    "changes": len(folded),
                    "first_change": first.payload()["timestamp"],
                    "last_change": last.payload()["timestamp"],
                    "window_seconds": settings.NOTIFY_FLAP_WINDOW,
                },
            }
            summary = Event.objects.create(
                type=TENANT_STATUS_CHANGED,
                timestamp=now,
                data=data,
                tenant_id=tenant_id,
                access_profile=last.access_profile,
            )
            fan_out(summary)
            sent += 1
    return sent
