"""Noise control: a flapping tenant is folded into one summary, staleness is told once per
spell and not while a platform alert explains it, re-verifying a steady fleet says nothing,
and an invitation that expired unused is told once."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from consent.digest import send_digests
from consent.models import Invitation, announce_expired_unused
from notifications.delivery import send_due
from notifications.events import emit, summarise_flapping
from notifications.models import Destination, Event
from tenants import notices
from tenants.models import PlatformAlert, Tenant, Verification
from tenants.verification.runner import run_batch
from tenants.verification.scheduler import tick
from tests.conftest import ADATUM, NORTHWIND, TAILSPIN
from tests.notifications.receivers import parts


def _change(previous: str, status: str) -> Event:
    return emit(
        "tenant.status_changed",
        {
            "tenant_id": NORTHWIND,
            "customer_name": "Northwind",
            "previous_status": previous,
            "status": status,
        },
        tenant_id=NORTHWIND,
    )


def test_a_flapping_tenant_is_told_three_times_then_once_when_the_window_ends(
    webhook, receiver, settings
):
    settings.NOTIFY_FLAP_WINDOW = 1800
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        statuses = ["verified", "no_access"] * 4  # seven changes, a minute apart
        for previous, status in zip(statuses, statuses[1:], strict=False):
            _change(previous, status)
            clock.shift(60)
        send_due()
        assert len(receiver.received) == 3
        assert summarise_flapping() == 0  # the window is still open

        clock.move_to(start + timedelta(seconds=1801))
        assert summarise_flapping() == 1
        send_due()

    assert len(receiver.received) == 4
    summary = receiver.received[-1].payload["data"]
    # The four folded changes, from where the fourth started to where the seventh ended.
    assert summary["flapping"]["changes"] == 4
    assert (summary["previous_status"], summary["status"]) == ("no_access", "no_access")
    assert Event.objects.filter(state="summarised").count() == 4


def test_changes_further_apart_than_the_window_are_each_told(webhook, receiver, settings):
    settings.NOTIFY_FLAP_WINDOW = 600
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for previous, status in [("verified", "no_access"), ("no_access", "verified")] * 3:
            _change(previous, status)
            clock.shift(400)
        send_due()
    assert len(receiver.received) == 6


def test_a_tenant_stale_too_long_is_told_once_per_spell(db, webhook, receiver, settings):
    settings.VERIFY_STALE_INTERVAL = 900
    since = timezone.now() - timedelta(hours=1)
    Tenant.objects.create(
        tenant_id=NORTHWIND,
        display_name="Northwind",
        cloud="sandbox",
        access_profile="defender-xdr-readonly",
        status=Tenant.Status.VERIFIED,
        stale_since=since,
    )
    Tenant.objects.create(
        tenant_id=TAILSPIN,
        cloud="sandbox",
        access_profile="defender-xdr-readonly",
        status=Tenant.Status.VERIFIED,
        stale_since=timezone.now() - timedelta(minutes=5),  # not long enough yet
    )

    assert notices.announce_stale() == 1
    assert notices.announce_stale() == 0
    send_due()

    (message,) = receiver.received
    assert message.payload["type"] == "tenant.stale"
    data = message.payload["data"]
    assert (data["tenant_id"], data["status"]) == (NORTHWIND, "verified")
    assert data["stale_since"] == since.isoformat()


def test_staleness_is_kept_quiet_while_a_platform_alert_is_open(db, webhook, receiver):
    PlatformAlert.raise_alert("identity_unavailable", "The managed identity is unavailable")
    Tenant.objects.create(
        tenant_id=NORTHWIND,
        cloud="sandbox",
        access_profile="defender-xdr-readonly",
        status=Tenant.Status.VERIFIED,
        stale_since=timezone.now() - timedelta(hours=2),
    )

    assert notices.announce_stale() == 1
    send_due()

    assert [m.payload["type"] for m in receiver.received] == ["platform.alert_opened"]
    assert Event.objects.get(type="tenant.stale").state == "suppressed"


@pytest.mark.django_db(transaction=True)
def test_re_verifying_a_steady_fleet_sends_nothing(
    sandbox, consent, make_tenant, verify, webhook, receiver
):
    consent(NORTHWIND)
    tenant = make_tenant(NORTHWIND, status=Tenant.Status.VERIFIED)
    for _ in range(3):
        run_batch([str(tenant.request_verification(Verification.Trigger.MANUAL)[0].code)])
    send_due()
    assert Event.objects.count() == 0
    assert receiver.received == []


def test_an_invitation_that_expired_unused_is_told_once(db, webhook, receiver, admin_user):
    invitation = Invitation.objects.create_invitation(
        customer_name="Contoso",
        expected_tenant_id=ADATUM,
        access_profile="graph-reporting",
        days=1,
        actor="admin",
    )
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )

    tick()
    tick()
    send_due()

    (message,) = receiver.received
    assert message.payload["type"] == "invitation.expired_unused"
    assert message.payload["data"]["customer_name"] == "Contoso"
    assert message.payload["data"]["url"].endswith(f"/invitations/{invitation.code}/")
    assert announce_expired_unused(sender=None) == 0


def test_an_email_destination_with_the_digest_gets_one_a_day(db, smtp, admin_user):
    digest_to = Destination.objects.add(
        kind="email", name="SOC lead", target="lead@fabrikam.example", actor="a", daily_digest=True
    )
    Destination.objects.add(
        kind="email", name="on-call", target="oncall@fabrikam.example", actor="a"
    )
    Tenant.objects.create(
        tenant_id=NORTHWIND, display_name="Northwind", cloud="sandbox",
        access_profile="defender-xdr-readonly", status=Tenant.Status.NO_ACCESS,
    )  # fmt: skip
    _change("verified", "no_access")
    Invitation.objects.create_invitation(
        customer_name="Contoso",
        expected_tenant_id=ADATUM,
        access_profile="graph-reporting",
        days=2,
        actor="admin",
    )
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        assert send_digests(sender=None) == 1
        assert send_digests(sender=None) == 0  # not twice a day
        clock.shift(3600)
        assert send_digests(sender=None) == 0
        send_due()
        digest = [
            m
            for m in smtp.messages
            if m["To"] == "lead@fabrikam.example" and "digest" in m["Subject"]
        ]
        assert len(digest) == 1
        assert digest[0]["Subject"] == "Daily digest: 1 tenant (1 no access)"
        text = dict(parts(digest[0]))["text/plain"]
        assert "- Northwind: verified → no access" in text
        assert "- Contoso: expires" in text
        assert not any(
            "digest" in m["Subject"] for m in smtp.messages if m["To"] != "lead@fabrikam.example"
        )

        clock.move_to(start + timedelta(days=1, seconds=1))
        assert send_digests(sender=None) == 1
    digest_to.refresh_from_db()
    assert digest_to.last_digest_at == start + timedelta(days=1, seconds=1)
