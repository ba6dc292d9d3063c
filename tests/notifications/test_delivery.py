"""Delivering at least once: retries with backoff on what may pass, none on what will not,
the same webhook-id on every attempt, and no destination inside the network."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from notifications import addresses
from notifications.delivery import redeliver, send, send_due
from notifications.events import emit
from notifications.models import Delivery, Destination, Event
from tenants.models import Tenant
from tests.conftest import NORTHWIND, PORTAL_APP


def _event(**data: object) -> Event:
    return emit(
        "tenant.status_changed",
        {"tenant_id": NORTHWIND, "customer_name": "Northwind", "status": "no_access", **data},
        tenant_id=NORTHWIND,
        access_profile="defender-xdr-readonly",
    )


def test_a_receiver_answering_503_twice_gets_three_attempts_one_delivery_one_webhook_id(
    webhook, receiver, settings
):
    settings.NOTIFY_RETRY_BASE_DELAY = 30
    receiver.statuses = [503, 503]
    _event()
    delivery = Delivery.objects.get()

    with time_machine.travel(timezone.now(), tick=False) as clock:
        assert send_due() == 1
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
            "pending",
            1,
            503,
        )
        first_retry = delivery.next_attempt_at - timezone.now()
        assert first_retry == timedelta(seconds=30)
        assert send_due() == 0  # not before its time

        clock.shift(31)
        assert send_due() == 1
        delivery.refresh_from_db()
        assert delivery.next_attempt_at - timezone.now() == timedelta(seconds=60)  # doubled

        clock.shift(61)
        assert send_due() == 1

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert [a.status_code for a in delivery.attempt_log.all()] == [503, 503, 200]
    ids = {m.headers["webhook-id"] for m in receiver.received}
    assert ids == {delivery.webhook_id}
    assert len(receiver.received) == 3
    assert all(m.verification_error == "" for m in receiver.received)


@pytest.mark.parametrize(
    ("status", "retried"),
    [(400, False), (404, False), (410, False), (408, True), (429, True), (500, True)],
)
def test_it_retries_only_what_may_pass_later(webhook, receiver, status, retried):
    receiver.statuses = [status]
    _event()
    send_due()

    delivery = Delivery.objects.get()
    assert delivery.status == ("pending" if retried else "failed")
    assert delivery.last_status_code == status


def test_it_gives_up_after_notify_retry_for(webhook, receiver, settings):
    settings.NOTIFY_RETRY_BASE_DELAY = 600
    settings.NOTIFY_RETRY_FOR = 3600
    receiver.statuses = [503] * 10
    _event()
    delivery = Delivery.objects.get()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        while delivery.status == "pending":
            clock.move_to(delivery.next_attempt_at + timedelta(seconds=1))
            send_due()
            delivery.refresh_from_db()
    # 600 s, then 1200 s, then the next wait (2400 s) would end past the hour: failed.
    assert (delivery.status, delivery.attempts) == ("failed", 3)


def test_a_receiver_that_hangs_costs_one_time_out_and_is_retried(webhook, receiver, settings):
    settings.NOTIFY_HTTP_TIMEOUT = 0.3
    receiver.delay = 1.5
    _event()
    send_due()

    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.last_error) == ("pending", "timed out")


def test_a_receiver_that_times_out_does_not_hold_up_the_verification(
    sandbox, consent, make_tenant, verify, webhook, receiver, settings
):
    receiver.delay = 5
    consent(NORTHWIND)
    tenant = make_tenant(NORTHWIND, status=Tenant.Status.VERIFIED)
    sandbox.control.disable(NORTHWIND, application=PORTAL_APP)

    verification = verify(tenant)

    # The verification wrote its event and delivery and is done; nobody has called the
    # receiver yet: that is a task's job, not the verification's.
    assert verification.outcome == "no_access"
    assert Delivery.objects.get().attempts == 0
    assert receiver.received == []


def test_redeliver_sends_a_failed_delivery_again_with_its_webhook_id(webhook, receiver, admin_user):
    receiver.statuses = [400]
    _event()
    send_due()
    delivery = Delivery.objects.get()
    assert delivery.status == "failed"

    redeliver(delivery, actor="admin@fabrikam.example")
    send_due()

    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert [m.headers["webhook-id"] for m in receiver.received] == [delivery.webhook_id] * 2


def test_a_disabled_destination_gets_nothing(webhook, receiver):
    webhook.enabled = False
    webhook.save()
    _event()
    assert Delivery.objects.count() == 0


def test_destinations_receive_only_the_event_types_and_profiles_they_chose(db, receiver):
    only_alerts = Destination.objects.add(
        kind="webhook",
        name="alerts",
        target=receiver.url,
        actor="a",
        event_types=["platform.alert_opened"],
    )
    only_graph = Destination.objects.add(
        kind="webhook",
        name="graph",
        target=receiver.url,
        actor="a",
        access_profiles=["graph-reporting"],
    )
    everything = Destination.objects.add(kind="webhook", name="all", target=receiver.url, actor="a")

    _event()  # a Defender XDR tenant's change

    assert {d.destination for d in Delivery.objects.all()} == {everything}
    assert only_alerts.wants("platform.alert_opened", "")
    assert only_graph.wants("platform.alert_opened", "")  # platform alerts concern everyone


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://169.254.169.254/metadata/identity/oauth2/token",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "http://hooks.example.com/x",
        "https://user:pass@hooks.example.com/x",
        "not a url",
    ],
)
def test_production_settings_refuse_a_destination_inside_the_network(db, settings, url):
    settings.NOTIFY_ALLOW_INSECURE_URLS = False
    settings.DEBUG = False
    with pytest.raises(ValidationError):
        Destination.objects.add(kind="webhook", name="x", target=url, actor="admin")
    assert Destination.objects.count() == 0


def test_the_address_is_checked_again_at_each_send(webhook, receiver, settings):
    # Saved under development rules, sent under production ones: refused, not retried.
    settings.NOTIFY_ALLOW_INSECURE_URLS = False
    _event()
    send_due()

    delivery = Delivery.objects.get()
    assert delivery.status == "failed"
    assert delivery.last_error.startswith("refused:")
    assert receiver.received == []


def test_public_addresses_pass_the_check(settings):
    settings.NOTIFY_ALLOW_INSECURE_URLS = False
    assert addresses._public("20.190.151.70")
    assert not addresses._public("100.64.0.1")  # carrier-grade NAT is not public either


def test_a_webhook_without_a_secret_gets_a_new_one(db, receiver):
    destination = Destination.objects.add(kind="webhook", name="x", target=receiver.url, actor="a")
    assert destination.secret.startswith("whsec_") and len(destination.secret) > 40


def test_a_malformed_secret_is_refused(db, receiver):
    with pytest.raises(ValidationError) as refused:
        Destination.objects.add(
            kind="webhook", name="x", target=receiver.url, secret="whsec_!!", actor="a"
        )
    assert "secret" in refused.value.message_dict


def test_a_claimed_delivery_is_not_sent_twice(webhook, receiver):
    _event()
    delivery = Delivery.objects.get()
    assert send(str(delivery.code)) is not None
    assert send(str(delivery.code)) is None  # delivered: nothing left to do
    assert len(receiver.received) == 1


def test_the_scheduler_hands_an_overdue_delivery_to_a_worker_once_per_five_minutes(webhook):
    from django_tasks_db.models import DBTaskResult

    from notifications.delivery import hand_over_overdue

    _event()
    with time_machine.travel(timezone.now() + timedelta(minutes=2), tick=False) as clock:
        assert hand_over_overdue() == 1  # its task was lost: handed over again
        assert hand_over_overdue() == 0  # not at every tick
        clock.shift(6 * 60)
        assert hand_over_overdue() == 1
    assert DBTaskResult.objects.count() == 2
