"""Scheduled re-verification: what `manage.py run_scheduler` does on every tick.

A tick queues a verification for every active tenant that is due (not checked within
VERIFY_INTERVAL; stale ones after VERIFY_STALE_INTERVAL) and hands them to the task worker
in batches, each run with VERIFY_CONCURRENCY threads. It also puts back verifications that
nobody is running: a claimed one whose worker died (lease expired), or a queued one whose
task was lost. And it runs the notifications' clock: tenants stale for too long, flapping
summaries whose window ended, deliveries overdue, invitations that expired unused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from notifications.delivery import hand_over_overdue
from notifications.events import summarise_flapping
from tenants import notices
from tenants.models import Tenant, Verification
from tenants.signals import scheduler_ticked


@dataclass(frozen=True)
class Tick:
    enqueued: int  # new scheduled verifications
    requeued: int  # orphaned verifications handed to a worker again


def tick() -> Tick:
    requeued = requeue_orphans()
    enqueued = enqueue_due()
    notices.announce_stale()
    summarise_flapping()
    hand_over_overdue()
    scheduler_ticked.send(sender=Tick)
    return Tick(enqueued=enqueued, requeued=requeued)


def enqueue_due() -> int:
    due = Tenant.objects.due_for_verification(
        timedelta(seconds=settings.VERIFY_INTERVAL),
        stale_interval=timedelta(seconds=settings.VERIFY_STALE_INTERVAL),
    ).order_by("last_checked_at", "pk")
    codes = []
    for tenant in due.iterator():
        verification, created = tenant.request_verification(Verification.Trigger.SCHEDULE)
        if created:
            codes.append(str(verification.code))
    _hand_over(codes)
    return len(codes)


def requeue_orphans() -> int:
    """Queue again what no worker is running. A requeued verification is not requeued again
    before another lease period has passed (its `lease_expires_at`), so a long task queue
    does not fill up with duplicates."""
    lease = timedelta(seconds=settings.VERIFY_LEASE)
    codes = []
    for code in Verification.objects.orphaned(lease).values_list("code", flat=True):
        # Row by row, with the same condition: a worker may claim one meanwhile.
        taken = (
            Verification.objects.orphaned(lease)
            .filter(code=code)
            .update(state=Verification.State.QUEUED, lease_expires_at=timezone.now() + lease)
        )
        if taken:
            codes.append(str(code))
    _hand_over(codes)
    return len(codes)


def _hand_over(codes: list[str]) -> None:
    from tenants.tasks import verify_batch

    size = max(settings.VERIFY_BATCH_SIZE, 1)
    for start in range(0, len(codes), size):
        verify_batch.enqueue(codes[start : start + size])
