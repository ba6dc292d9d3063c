"""Offboarding a tenant: confirmed, once, its invitations closed, its record kept, and no
token requested for it any more."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from consent.models import Invitation
from mssp_portal import identity
from tenants.models import Tenant, Verification
from tests.conftest import NORTHWIND, PORTAL_APP, TAILSPIN
from tests.personas import (
    ADMIN,
    csrf_client,
    make_tenant,
    open_verifications,
    signed_in_client,
)

APP_PERMISSIONS = {
    "graph": ["Organization.Read.All"],
    "defender": ["Incident.Read.All"],
    "mde": ["Ti.ReadWrite.All"],
}


def test_it_does_not_re_verify_an_offboarded_tenant(admin_client, db):
    gone = make_tenant(status=Tenant.Status.OFFBOARDED)

    response = admin_client.post(reverse("console:reverify", args=[gone.code]))

    assert response.status_code == 302
    assert open_verifications(gone) == 0
    assert not AuditEvent.objects.exists()


def test_it_offboards_after_confirmation_and_keeps_the_record(admin_client, northwind, invitation):
    url = reverse("console:offboard", args=[northwind.code])
    confirm = admin_client.get(url)
    assert confirm.status_code == 200
    assert 'name="confirm"' in confirm.content.decode()

    unconfirmed = admin_client.post(url)
    northwind.refresh_from_db()
    assert unconfirmed.status_code == 400
    assert northwind.status == Tenant.Status.VERIFIED

    response = admin_client.post(url, {"confirm": "on"})

    assert response.status_code == 302
    northwind.refresh_from_db()
    assert northwind.status == Tenant.Status.OFFBOARDED
    assert timezone.now() - northwind.offboarded_at < timedelta(minutes=1)
    assert northwind.verifications.count() == 1  # history kept
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.REVOKED
    event = AuditEvent.objects.get(action="tenant.offboarded")
    assert (event.actor, str(event.tenant_id)) == (ADMIN, NORTHWIND)
    revoked = AuditEvent.objects.get(action="invitation.revoked")
    assert (revoked.actor, revoked.detail) == (
        ADMIN,
        {"invitation": str(invitation.code), "reason": "tenant offboarded"},
    )
    # The customer is told how to remove the enterprise application.
    page = admin_client.get(response.url).content.decode()
    assert "Enterprise applications" in page
    assert f"appId eq '{PORTAL_APP}'" in page
    assert "Re-verify now" not in page
    # The diagnosis from before offboarding is not presented as a to-do any more.
    assert "the tenant is offboarded and no longer verified" in page


def test_it_offboards_only_once(admin_client, northwind):
    url = reverse("console:offboard", args=[northwind.code])
    admin_client.post(url, {"confirm": "on"})
    first = Tenant.objects.get(pk=northwind.pk).offboarded_at

    admin_client.post(url, {"confirm": "on"})

    assert Tenant.objects.get(pk=northwind.pk).offboarded_at == first
    assert AuditEvent.objects.filter(action="tenant.offboarded").count() == 1


def test_it_refuses_offboarding_to_operators(operator_client, northwind):
    url = reverse("console:offboard", args=[northwind.code])

    assert operator_client.get(url).status_code == 403
    assert operator_client.post(url, {"confirm": "on"}).status_code == 403
    northwind.refresh_from_db()
    assert northwind.status == Tenant.Status.VERIFIED


def test_it_refuses_offboarding_without_csrf_token(admin_user, northwind):
    client = csrf_client(admin_user)

    response = client.post(reverse("console:offboard", args=[northwind.code]), {"confirm": "on"})

    assert response.status_code == 403
    northwind.refresh_from_db()
    assert northwind.status == Tenant.Status.VERIFIED


def test_it_answers_404_when_offboarding_an_unknown_tenant(admin_client, db):
    url = reverse("console:offboard", args=[uuid.uuid4()])

    assert admin_client.post(url, {"confirm": "on"}).status_code == 404


@pytest.fixture
def engine(sandbox, settings) -> Iterator[object]:
    settings.VERIFY_RETRIES = 2
    settings.VERIFY_RETRY_BASE_DELAY = 0.01
    settings.VERIFY_HTTP_TIMEOUT = 5
    settings.VERIFY_INTERVAL = 0  # every tenant is due at once
    identity.forget_assertion()
    yield sandbox
    identity.forget_assertion()


@pytest.mark.django_db(transaction=True)
def test_it_requests_no_token_for_an_offboarded_tenant(engine, admin_user):
    control = engine.control
    for tenant_id in (NORTHWIND, TAILSPIN):
        control.set_roles(tenant_id, APP_PERMISSIONS, application=PORTAL_APP)
    northwind = make_tenant(NORTHWIND, display_name="Northwind")
    tailspin = make_tenant(TAILSPIN, display_name="Tailspin")
    client = signed_in_client(admin_user)
    # A verification queued before the offboarding must not run either.
    client.post(reverse("console:reverify", args=[tailspin.code]))
    client.post(reverse("console:offboard", args=[tailspin.code]), {"confirm": "on"})
    control.reset_counters()

    call_command("run_scheduler", "--once", stdout=open("/dev/null", "w"))  # noqa: SIM115
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    call_command("verify_tenants", "--all", stdout=open("/dev/null", "w"))  # noqa: SIM115

    by_tenant = control.counters()["by_tenant"]
    assert by_tenant.get(NORTHWIND, {}).get("token", 0) >= 2  # the scheduler and the CLI
    assert TAILSPIN not in by_tenant
    tailspin.refresh_from_db()
    assert tailspin.status == Tenant.Status.OFFBOARDED
    assert not tailspin.verifications.filter(state__in=Verification.OPEN_STATES).exists()
    assert set(tailspin.verifications.values_list("outcome", flat=True)) == {
        Verification.Outcome.CANCELLED
    }
    northwind.refresh_from_db()
    assert northwind.status == Tenant.Status.VERIFIED
