"""What Graph says about a tenant (its name, its domain) is customer-controlled text: stored
as data, never trusted, never printed or logged raw."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts import roles
from mssp_portal import identity
from tenants.models import Tenant, Verification
from tenants.verification.runner import run_verification
from tests.personas import make_staff, signed_in_client
from tests.scenarios import consented

HOSTILE = "f0e1d2c3-b4a5-4968-8776-655443322110"
HOSTILE_NAME = '<script>alert("pwned")</script>\u202eevil\r\n2026-01-01 INFO forged log line'


@pytest.fixture(scope="module")
def hostile_sandbox() -> Iterator[object]:
    """A sandbox whose one customer names itself with markup, a bidi override and a line
    break (an organisation's display name is whatever its administrator typed)."""
    from entra_sandbox.testing import run_sandbox

    scenario = consented([{"id": HOSTILE, "name": HOSTILE_NAME, "domain": "evil.example"}])
    with run_sandbox(scenario) as sb:
        yield sb


@pytest.fixture
def portal_on_hostile_sandbox(hostile_sandbox, settings, monkeypatch) -> None:
    env = hostile_sandbox.env
    settings.ENTRA_CLOUD = "sandbox"
    settings.ENTRA_CA_BUNDLE = hostile_sandbox.ca_path
    settings.SANDBOX = {
        "authority": env["AZURE_AUTHORITY_HOST"],
        "login": env["SANDBOX_LOGIN_URL"],
        **{key: env[f"SANDBOX_{key.upper()}_URL"] for key in ("graph", "defender", "mde", "arm")},
        "loganalytics": env["SANDBOX_LOGANALYTICS_URL"],
    }
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_AUTHORITY_HOST"):
        monkeypatch.setenv(name, env[name])
    identity.forget_assertion()


@pytest.mark.django_db(transaction=True)
def test_a_hostile_organisation_name_is_stored_as_data_and_never_printed_raw(
    portal_on_hostile_sandbox, caplog, capsys
):
    tenant = Tenant.objects.create(
        tenant_id=HOSTILE, cloud="sandbox", access_profile="graph-reporting"
    )
    verification, _ = tenant.request_verification(Verification.Trigger.MANUAL)

    assert run_verification(str(verification.code)).outcome == Verification.Outcome.VERIFIED
    call_command("verify_tenants", HOSTILE)

    tenant.refresh_from_db()
    assert tenant.display_name == HOSTILE_NAME  # data, exactly as Graph said
    assert tenant.primary_domain == "evil.example"
    output = capsys.readouterr().out
    # One printable line per tenant, cut short: no bidi override, no line break.
    assert "\u202e" not in output and "\r" not in output
    assert '<script>alert("pwned")</scrip…' in output
    assert "forged log line" not in caplog.text
    admin = signed_in_client(make_staff("admin@fabrikam-mssp.example", [roles.ADMIN_ROLE]))
    for url in (reverse("console:dashboard"), reverse("console:detail", args=[tenant.code])):
        page = admin.get(url).content.decode()
        assert "<script>alert(" not in page
        assert "&lt;script&gt;alert(" in page
