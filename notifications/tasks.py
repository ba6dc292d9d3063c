"""Background work: sending deliveries (django-tasks API; `manage.py db_worker` runs them)."""

from __future__ import annotations

from django_tasks import task


@task()
def send_deliveries(delivery_codes: list[str]) -> None:
    """Send each delivery once; a failure reschedules itself (see delivery.py). A receiver
    that hangs holds this task for NOTIFY_HTTP_TIMEOUT, never a verification."""
    from notifications.delivery import send

    for code in delivery_codes:
        send(code)
