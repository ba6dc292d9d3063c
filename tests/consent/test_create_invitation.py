"""manage.py create_invitation, and the domain lookup behind it (against entra_sandbox)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AuditEvent
from consent.directory import TenantLookupError, tenant_id_for_domain
from consent.models import Invitation
from tests.conftest import ADATUM, HOME_TENANT, NORTHWIND, TAILSPIN
from tests.personas import make_tenant

pytestmark = pytest.mark.django_db


def create(*args: str) -> str:
    out = StringIO()
    call_command("create_invitation", *args, stdout=out)
    return out.getvalue()


def test_it_creates_an_invitation_for_a_tenant_id_and_prints_its_url(settings):
    settings.PORTAL_BASE_URL = "https://portal.fabrikam.example"
    out = create("--customer", "Northwind Traders", "--tenant", NORTHWIND)

    invitation = Invitation.objects.get()
    assert out == f"https://portal.fabrikam.example/consent/invite/{invitation.code}/\n"
    assert invitation.customer_name == "Northwind Traders"
    assert str(invitation.expected_tenant_id) == NORTHWIND
    assert invitation.expected_domain == ""
    assert invitation.access_profile == "defender-xdr-readonly"
    assert invitation.created_by == "cli"
    assert invitation.status == Invitation.Status.OPEN
    expected_expiry = timezone.now() + timedelta(days=settings.INVITATION_DEFAULT_DAYS)
    assert abs(invitation.expires_at - expected_expiry) < timedelta(minutes=1)

    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.actor) == (
        "invitation.created",
        AuditEvent.Outcome.SUCCESS,
        "cli",
    )
    assert str(event.tenant_id) == NORTHWIND
    assert event.detail["invitation"] == str(invitation.code)


def test_it_takes_a_profile_and_a_lifetime():
    create("--customer", "Tailspin Toys", "--tenant", TAILSPIN.upper(), "--profile", "full-soc")
    create("--customer", "Adatum", "--tenant", ADATUM, "--days", "3")
    first, second = Invitation.objects.order_by("created_at")
    assert first.access_profile == "full-soc"
    assert str(first.expected_tenant_id) == TAILSPIN
    assert second.access_profile == "defender-xdr-readonly"
    assert abs(second.expires_at - (timezone.now() + timedelta(days=3))) < timedelta(minutes=1)


def test_it_looks_a_domain_up_in_entra(sandbox):
    out = create("--customer", "Northwind Traders", "--tenant", "Northwind.Example")
    invitation = Invitation.objects.get()
    assert str(invitation.expected_tenant_id) == NORTHWIND
    assert invitation.expected_domain == "northwind.example"
    assert re.fullmatch(r"http://localhost:8000/consent/invite/[0-9a-f-]{36}/\n", out)


def test_it_refuses_a_domain_no_tenant_has(sandbox):
    with pytest.raises(CommandError) as raised:
        create("--customer", "Nobody", "--tenant", "nobody-has-this.example")
    message = str(raised.value)
    assert "No invitation created" in message
    assert "No Microsoft Entra tenant has verified the domain nobody-has-this.example" in message
    assert Invitation.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_it_says_so_when_entra_cannot_be_reached(sandbox):
    sandbox.control.add_fault(target="discovery", status=503, count=5)
    with pytest.raises(CommandError, match="Microsoft Entra answered HTTP 503"):
        create("--customer", "Northwind", "--tenant", "northwind.example")
    assert Invitation.objects.count() == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--customer", "Northwind", "--profile", "everything"], "--profile"),
        (["--customer", "Northwind", "--tenant", "not a tenant!"], "tenant ID"),
        (["--customer", "Northwind", "--tenant", "common"], "tenant ID"),
        (["--customer", "Northwind", "--days", "0"], "--days"),
        (["--customer", "Northwind", "--days", "ten"], "--days"),
        (["--customer", "Northwind", "--days", "400"], "--days"),
        (["--customer", "   "], "--customer"),
        (["--customer", "North\u202ewind"], "--customer"),
        (["--customer", "x" * 201], "--customer"),
    ],
)
def test_it_refuses_bad_input_and_creates_nothing(args, says):
    with pytest.raises(CommandError) as raised:
        create(*args)
    assert says in str(raised.value)
    assert "No invitation created" in str(raised.value)
    assert Invitation.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_it_lists_the_profiles_when_the_profile_is_unknown():
    with pytest.raises(CommandError) as raised:
        create("--customer", "Northwind", "--profile", "everything")
    assert "defender-xdr-readonly" in str(raised.value)
    assert "full-soc" in str(raised.value)


def test_it_requires_a_customer():
    with pytest.raises(CommandError, match="--customer"):
        create()


# --- the lookup itself ---------------------------------------------------------------


def test_the_lookup_reads_the_tenant_from_the_discovery_issuer(sandbox):
    sandbox.control.reset_counters()
    assert tenant_id_for_domain("northwind.example") == uuid.UUID(NORTHWIND)
    assert sandbox.control.counters()["by_kind"] == {"discovery": 1}


def test_the_lookup_refuses_what_is_not_a_domain_without_asking_entra(sandbox):
    sandbox.control.reset_counters()
    for value in ("organizations", "../x", "a b.example", "x" * 300 + ".example"):
        with pytest.raises(TenantLookupError):
            tenant_id_for_domain(value)
    assert sandbox.control.counters()["total"] == 0


def test_the_lookup_gives_up_after_its_timeout(sandbox, settings):
    settings.VERIFY_HTTP_TIMEOUT = 0.5
    sandbox.control.add_fault(target="discovery", hang=True, count=1)
    with pytest.raises(TenantLookupError, match="Could not reach Microsoft Entra"):
        tenant_id_for_domain("northwind.example")


# --- The rules every way of creating an invitation shares (Invitation.objects.refusal) -------


def _refused(*args: str) -> str:
    events = AuditEvent.objects.count()
    with pytest.raises(CommandError) as raised:
        create("--customer", "Someone", *args)
    assert not Invitation.objects.filter(customer_name="Someone").exists()
    assert AuditEvent.objects.count() == events  # nothing written
    return str(raised.value)


def test_it_refuses_an_invitation_without_a_tenant():
    assert "an invitation is accepted only from the tenant it names" in _refused()


def test_it_refuses_the_mssps_own_home_tenant():
    message = _refused("--tenant", HOME_TENANT)
    assert f"{HOME_TENANT} is the home tenant (the MSSP's own), not a customer's" in message


def test_it_refuses_a_second_open_invitation_for_one_tenant():
    create("--customer", "Northwind Traders", "--tenant", NORTHWIND)

    message = _refused("--tenant", NORTHWIND.upper())

    assert f"An open invitation for tenant {NORTHWIND} exists already (Northwind Traders" in message
    assert "send its link again, or revoke it first" in message


def test_it_refuses_a_new_invitation_for_an_onboarded_tenant():
    make_tenant(NORTHWIND, access_profile="full-soc")

    message = _refused("--tenant", NORTHWIND, "--profile", "graph-reporting")

    assert f"Tenant {NORTHWIND} is onboarded already" in message
    assert "“Create re-consent invitation” on the tenant's page" in message
