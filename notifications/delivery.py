"""Sending deliveries, at least once.

A delivery is claimed with a conditional UPDATE (a lease), sent once, and its attempt
recorded: delivered; or failed for good (a 4xx other than 408/429, a refused address, a
rejected recipient); or pending again after a backoff of NOTIFY_RETRY_BASE_DELAY seconds,
doubling, for NOTIFY_RETRY_FOR seconds since the event. The scheduler's tick sends what is
due, so a lost task, a crashed worker or a receiver that was down only delays a message.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from audit.log import record
from audit.models import AuditEvent
from notifications import messages
from notifications.addresses import Answer, post
from notifications.models import Attempt, Delivery, Destination
from notifications.tasks import send_deliveries

logger = logging.getLogger("mssp_portal.notifications")

LEASE = timedelta(seconds=120)
RETRY_STATUSES = frozenset({408, 429})
REHAND = timedelta(minutes=5)


def claim(code: str) -> Delivery | None:
    now = timezone.now()
    taken = (
        Delivery.objects.filter(code=code, status=Delivery.Status.PENDING)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .update(lease_expires_at=now + LEASE, attempts=F("attempts") + 1)
    )
    if not taken:
        return None
    return Delivery.objects.select_related("event", "destination").get(code=code)


def send(code: str) -> Delivery | None:
    """Try one delivery once, if it is pending and nobody else is sending it."""
    delivery = claim(code)
    if delivery is None:
        return None
    destination = delivery.destination
    if not destination.enabled:
        answer = Answer(None, "destination disabled", 0)
    else:
        try:
            answer = _SENDERS[destination.kind](delivery)
        except Exception:  # a bug must not leave the delivery leased forever
            logger.exception("delivery %s: could not be sent", delivery.code)
            answer = Answer(None, "internal error", 0)
    return _record(delivery, answer)


def send_due(limit: int = 500) -> int:
    """Send what is due (the scheduler's tick). Returns how many were attempted."""
    codes = list(
        Delivery.objects.due()
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=timezone.now()))
        .order_by("next_attempt_at")
        .values_list("code", flat=True)[:limit]
    )
    return sum(1 for code in codes if send(str(code)) is not None)


def hand_over_overdue(grace: timedelta = timedelta(minutes=1)) -> int:
    """Queue a task for deliveries that should have been sent by now and were not (a lost
    task, a worker that died mid-send): the scheduler's safety net. Each one handed over is
    not handed over again for REHAND minutes, so a queue whose workers are down does not
    fill with copies. Returns how many."""
    now = timezone.now()
    overdue = Delivery.objects.filter(
        status=Delivery.Status.PENDING, next_attempt_at__lte=now - grace
    ).filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
    codes = [str(code) for code in overdue.values_list("code", flat=True)[:5000]]
    Delivery.objects.filter(code__in=codes, status=Delivery.Status.PENDING).update(
        next_attempt_at=now + REHAND
    )
    for start in range(0, len(codes), 100):
        send_deliveries.enqueue(codes[start : start + 100])
    return len(codes)


def retryable(answer: Answer) -> bool:
    if answer.error:
        return not answer.error.startswith(("refused", "rejected", "destination disabled"))
    return answer.status is not None and (answer.status >= 500 or answer.status in RETRY_STATUSES)


def _record(delivery: Delivery, answer: Answer) -> Delivery:
    now = timezone.now()
    delivery.last_status_code = answer.status
    delivery.last_error = answer.error
    delivery.lease_expires_at = None
    if answer.ok:
        delivery.status, delivery.delivered_at = Delivery.Status.DELIVERED, now
    else:
        delay = timedelta(seconds=settings.NOTIFY_RETRY_BASE_DELAY * 2 ** (delivery.attempts - 1))
        give_up_at = delivery.event.timestamp + timedelta(seconds=settings.NOTIFY_RETRY_FOR)
        if retryable(answer) and now + delay <= give_up_at:
            delivery.next_attempt_at = now + delay
        else:
            delivery.status = Delivery.Status.FAILED
    with transaction.atomic():
        Attempt.objects.create(
            delivery=delivery,
            at=now,
            status_code=answer.status,
            error=answer.error,
            duration_ms=answer.duration_ms,
        )
        delivery.save(
            update_fields=[
                "status",
                "delivered_at",
                "next_attempt_at",
                "last_status_code",
                "last_error",
                "lease_expires_at",
            ]
        )
        if delivery.status == Delivery.Status.PENDING:
            code, run_after = str(delivery.code), delivery.next_attempt_at
            transaction.on_commit(
                lambda: send_deliveries.using(run_after=run_after).enqueue([code])
            )
    logger.info(
        "delivery %s event=%s destination=%s attempt=%s status=%s answer=%s",
        delivery.code,
        delivery.event.type,
        delivery.destination.code,
        delivery.attempts,
        delivery.status,
        answer.status or answer.error,
    )
    return delivery


def redeliver(delivery: Delivery, *, actor: str) -> None:
    """Send a delivery again from scratch (an admin fixed the receiver)."""
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Delivery.Status.PENDING,
            next_attempt_at=timezone.now(),
            lease_expires_at=None,
        )
        record(
            "notification.redelivered",
            AuditEvent.Outcome.SUCCESS,
            actor=actor,
            tenant_id=delivery.event.tenant_id,
            detail={"delivery": str(delivery.code), "destination": str(delivery.destination.code)},
        )
        code = str(delivery.code)
        transaction.on_commit(lambda: send_deliveries.enqueue([code]))


# -- per kind -----------------------------------------------------------------------------


def _webhook(delivery: Delivery) -> Answer:
    body = messages.webhook_body(delivery.event)
    signed_at = datetime.now(tz=UTC)
    signature = Webhook(delivery.destination.secret).sign(
        delivery.webhook_id, signed_at, body.decode()
    )
    headers = {
        "Content-Type": "application/json",
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(int(signed_at.timestamp())),
        "webhook-signature": signature,
    }
    return post(delivery.destination.target, body, headers)


def _chat(body_for):
    def send_chat(delivery: Delivery) -> Answer:
        body = body_for(delivery.event)
        return post(delivery.destination.target, body, {"Content-Type": "application/json"})

    return send_chat


def _email(delivery: Delivery) -> Answer:
    subject, plain, html = messages.email_parts(delivery.event)
    message = EmailMultiAlternatives(
        subject,
        plain,
        settings.NOTIFY_FROM_EMAIL,
        [delivery.destination.target],
        # The same Message-ID on every attempt: a mail system can drop a duplicate.
        headers={"Message-ID": f"<{delivery.webhook_id}@{_mail_domain()}>"},
    )
    message.attach_alternative(html, "text/html")
    return send_email(message)


def _mail_domain() -> str:
    return urlsplit(settings.PORTAL_BASE_URL).hostname or "mssp-portal.invalid"


def send_email(message: EmailMultiAlternatives) -> Answer:
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused:
        return Answer(None, "rejected: the mail server refused the address", 0)
    except smtplib.SMTPResponseException as exc:
        if 500 <= exc.smtp_code < 600:
            return Answer(None, f"rejected: the mail server answered {exc.smtp_code}", 0)
        return Answer(None, f"mail server answered {exc.smtp_code}", 0)
    except (smtplib.SMTPException, OSError) as exc:
        return Answer(None, f"mail server unreachable: {type(exc).__name__}", 0)
    # SMTP has no status line for the whole message; 250 is what the server accepted with.
    return Answer(250, "", 0)


_SENDERS = {
    Destination.Kind.WEBHOOK: _webhook,
    Destination.Kind.TEAMS: _chat(messages.teams_body),
    Destination.Kind.SLACK: _chat(messages.slack_body),
    Destination.Kind.EMAIL: _email,
}
