"""Tenant events from real verifications against the sandbox, delivered to real receivers:
one message per change, none while nothing changes, one per platform fault."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from entra_sandbox.testing import run_sandbox
from mssp_portal import identity
from notifications.delivery import send_due
from notifications.models import Delivery, Event
from tenants.models import PlatformAlert, Tenant, Verification
from tenants.verification.runner import run_batch
from tests.conftest import (
    MANAGED_IDENTITY_CLIENT_ID,
    MANAGED_IDENTITY_OBJECT_ID,
    NORTHWIND,
    PORTAL_APP,
    point_portal_at,
)
from tests.notifications.receivers import parts
from tests.scenarios import GOOD_FIC, consented

Outcome = Verification.Outcome


def _types() -> list[str]:
    return list(Event.objects.order_by("timestamp", "pk").values_list("type", flat=True))


@pytest.fixture
def verified_northwind(sandbox, consent, make_tenant, verify, webhook) -> Tenant:
    consent(NORTHWIND)
    tenant = make_tenant(NORTHWIND, display_name="Northwind Traders")
    verify(tenant)
    assert tenant.status == Tenant.Status.VERIFIED
    Event.objects.all().delete()
    return tenant


def test_the_first_verification_after_consent_sends_tenant_onboarded_only(
    sandbox, consent, make_tenant, verify, webhook, receiver
):
    consent(NORTHWIND)
    tenant = make_tenant(
        NORTHWIND, display_name="Northwind Traders", status=Tenant.Status.CONSENT_REPORTED
    )

    verify(tenant, Verification.Trigger.CONSENT)
    assert send_due() == 1

    assert _types() == ["tenant.onboarded"]
    (message,) = receiver.received
    assert message.verification_error == ""
    assert message.payload["type"] == "tenant.onboarded"
    data = message.payload["data"]
    assert data["tenant_id"] == NORTHWIND
    assert data["customer_name"] == "Northwind Traders"
    assert (data["previous_status"], data["status"]) == ("consent_reported", "verified")
    assert data["diagnosis"]["key"] == "verified"
    assert data["url"] == f"https://portal.fabrikam.example/tenants/{tenant.code}/"
    assert Delivery.objects.get().status == Delivery.Status.DELIVERED


def test_disabling_the_app_is_one_status_change_by_webhook_and_email_with_the_fix(
    sandbox, verified_northwind, verify, receiver, mailbox, smtp
):
    sandbox.control.disable(NORTHWIND, application=PORTAL_APP)

    verify(verified_northwind)
    assert send_due() == 2

    assert _types() == ["tenant.status_changed"]
    (message,) = receiver.received
    assert message.verification_error == ""
    data = message.payload["data"]
    assert (data["previous_status"], data["status"]) == ("verified", "no_access")
    assert data["diagnosis"]["key"] == "app_disabled"
    assert "enable" in data["diagnosis"]["remediation"].lower()
    (mail,) = smtp.messages
    assert mail["Subject"] == "Northwind Traders: verified → no access"
    assert mail["To"] == "soc@fabrikam.example"
    texts = dict(parts(mail))
    assert data["diagnosis"]["remediation"].splitlines()[0] in texts["text/plain"]
    assert "text/html" in texts


def test_re_verifying_a_tenant_that_stays_broken_sends_nothing(
    sandbox, verified_northwind, verify, receiver
):
    sandbox.control.disable(NORTHWIND, application=PORTAL_APP)
    verify(verified_northwind)
    verify(verified_northwind)
    verify(verified_northwind)
    send_due()

    assert _types() == ["tenant.status_changed"]
    assert len(receiver.received) == 1


def test_recovery_is_news_too(sandbox, verified_northwind, verify, receiver):
    sandbox.control.disable(NORTHWIND, application=PORTAL_APP)
    verify(verified_northwind)
    sandbox.control.enable(NORTHWIND, application=PORTAL_APP)
    verify(verified_northwind)
    send_due()

    statuses = [
        (m.payload["data"]["previous_status"], m.payload["data"]["status"])
        for m in receiver.received
    ]
    assert statuses == [("verified", "no_access"), ("no_access", "verified")]


FLEET = [str(uuid.UUID(int=0x5EED_0000_0000_4000_8000_000000000000 + n)) for n in range(50)]


@pytest.fixture
def fleet(settings, monkeypatch) -> Iterator[object]:
    """A sandbox of its own: the home tenant and 50 customers that consented (Graph)."""
    scenario = consented(
        {"id": tid, "name": f"Customer {i}", "domain": f"customer{i}.example"}
        for i, tid in enumerate(FLEET)
    )
    with run_sandbox(scenario) as sb:
        point_portal_at(sb, settings, monkeypatch)
        identity.forget_assertion()
        yield sb
    identity.forget_assertion()


@pytest.mark.django_db(transaction=True)
def test_a_federated_credential_fault_across_50_tenants_is_one_alert_and_no_tenant_event(
    fleet, make_tenant, verify, webhook, receiver
):
    tenants = [
        make_tenant(
            tid, "graph-reporting", display_name=f"Customer {i}", status=Tenant.Status.VERIFIED
        )
        for i, tid in enumerate(FLEET)
    ]
    fleet.control.update_application(
        PORTAL_APP, federated_credentials=[{**GOOD_FIC, "subject": MANAGED_IDENTITY_CLIENT_ID}]
    )

    def round_of_verifications() -> None:
        run_batch([str(t.request_verification("schedule")[0].code) for t in tenants])

    round_of_verifications()
    round_of_verifications()  # the next scheduled round: still one alert
    send_due()

    assert _types() == ["platform.alert_opened"]
    (message,) = receiver.received
    data = message.payload["data"]
    assert data["alert_kind"] == PlatformAlert.objects.get().key == "fic_subject_mismatch"
    assert MANAGED_IDENTITY_OBJECT_ID in data["remediation"]
    assert data["url"] == "https://portal.fabrikam.example/"
    assert Tenant.objects.filter(status=Tenant.Status.VERIFIED).count() == 50

    fleet.control.update_application(PORTAL_APP, federated_credentials=[GOOD_FIC])
    round_of_verifications()
    send_due()

    assert _types() == ["platform.alert_opened", "platform.alert_resolved"]
    resolved = receiver.received[-1].payload
    assert (resolved["type"], resolved["data"]["alert_kind"]) == (
        "platform.alert_resolved",
        "fic_subject_mismatch",
    )
    assert Tenant.objects.filter(status=Tenant.Status.VERIFIED).count() == 50


@pytest.mark.django_db(transaction=True)
def test_re_verifying_a_steady_fleet_of_50_sends_nothing(fleet, make_tenant, webhook, receiver):
    tenants = [
        make_tenant(tid, "graph-reporting", display_name=f"Customer {i}", status="verified")
        for i, tid in enumerate(FLEET)
    ]
    for _round in range(2):  # "re-verify all", twice
        run_batch([str(t.request_verification("manual")[0].code) for t in tenants])
    send_due()

    assert Tenant.objects.filter(status=Tenant.Status.VERIFIED).count() == 50
    assert Event.objects.count() == 0
    assert receiver.received == []
