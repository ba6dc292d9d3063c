"""Background work: verification tasks (django-tasks API; `manage.py db_worker` runs them)."""

from __future__ import annotations

from django.db import transaction
from django_tasks import task

from audit.log import record
from audit.models import AuditEvent
from tenants.models import Tenant, Verification


def enqueue_verification(
    tenant: Tenant, trigger: str, requested_by: str = "system"
) -> tuple[Verification, bool]:
    """Queue a verification of `tenant` unless one is already open.

    The task is enqueued only once the surrounding transaction commits, so a worker never
    looks for a row that is not there yet. Returns (verification, created).
    """
    verification, created = tenant.request_verification(trigger, requested_by)
    if created:
        transaction.on_commit(lambda: verify_tenant.enqueue(str(verification.code)))
    return verification, created


def reverify(tenant: Tenant, *, actor: str) -> bool:
    """Staff asked to verify this tenant now: queue a verification unless one is open, and
    audit the request (`verification.requested`). Returns whether a new one was queued."""
    verification, created = enqueue_verification(tenant, Verification.Trigger.MANUAL, actor)
    record(
        "verification.requested",
        AuditEvent.Outcome.SUCCESS,
        actor=actor,
        tenant_id=tenant.tenant_id,
        detail={
            "verification": verification.code,
            "result": "queued" if created else "already_queued",
        },
    )
    return created


# One verification that somebody waits for (a customer on the landing page, staff on the
# tenant page): the worker takes it before the scheduler's batches still queued.
@task(priority=10)
def verify_tenant(verification_code: str) -> None:
    from tenants.verification.runner import run_verification

    run_verification(verification_code)


@task()
def verify_batch(verification_codes: list[str]) -> None:
    """Many verifications in one task, run in parallel (VERIFY_CONCURRENCY threads): the
    worker runs one task at a time, so a fleet goes through here. Threads that finish early
    take queued verifications of other batches while a slow one of this batch runs."""
    from tenants.verification.runner import run_batch

    run_batch(verification_codes, help_others=True)
