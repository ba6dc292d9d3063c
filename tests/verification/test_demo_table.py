"""The README's table of demo outcomes is what the demo does: each customer `scripts/demo.sh`
invites goes through the portal's consent flow against the sandbox serving
`entra_sandbox/scenarios/demo.toml` (the invitation's start, the sandbox's admin-consent
page, the callback) and through verification, and ends as its README row says."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.urls import reverse

from consent.models import Invitation
from tenants.models import Tenant
from tests.conftest import LITWARE_LOCAL_APP, PORTAL_APP
from tests.sandbox.demo import https

ROOT = Path(__file__).resolve().parents[2]


def readme_table() -> dict[str, str]:
    """The README's demo table: customer → what it says happens once onboarded."""
    text = (ROOT / "README.md").read_text()
    table = text.split("| customer | once onboarded |", 1)[1].split("\n\n", 1)[0]
    rows = [line.strip("|").split("|", 1) for line in table.splitlines()[2:]]
    return {customer.strip(): outcome.strip() for customer, outcome in rows}


def demo_invitations() -> tuple[str, list[tuple[str, str]]]:
    """The profile and the (customer, domain) pairs `make demo` invites."""
    script = (ROOT / "scripts/demo.sh").read_text()
    profile = re.search(r"--profile (\S+)", script).group(1)
    loop = script.split("for customer in", 1)[1].split("; do", 1)[0]
    return profile, re.findall(r'"([^":]+):([a-z0-9.-]+)"', loop)


def consent_as_admin(client, sandbox, invitation: Invitation, domain: str) -> tuple[int, str]:
    """Press "Grant admin consent", accept as admin@<domain> on the sandbox's consent page,
    follow Entra's redirect back: the status and text of the page the customer lands on."""
    start = client.post(reverse("consent:start", args=[invitation.code]))
    assert start.status_code == 302
    accepted = https(sandbox).post(
        start["Location"],
        data={"user": f"admin@{domain}", "action": "accept"},
        allow_redirects=False,
        timeout=10,
    )
    assert accepted.status_code == 302, accepted.text
    back = urlsplit(accepted.headers["Location"])
    landed = client.get(f"{back.path}?{back.query}", follow=True)
    return landed.status_code, landed.content.decode()


def test_the_readme_names_exactly_the_customers_the_demo_invites():
    _profile, customers = demo_invitations()
    assert sorted(readme_table()) == sorted(name for name, _ in customers)


def test_the_demo_ends_as_the_readme_table_says(db, sandbox, settings, client, verify, capsys):
    settings.PORTAL_BASE_URL = "http://localhost:8000"  # the callback demo.toml registers
    table = readme_table()
    profile, customers = demo_invitations()
    for name, domain in customers:
        out = StringIO()
        call_command(
            "create_invitation", "--customer", name, "--tenant", domain, "--profile", profile,
            "--days", "30", stdout=out,
        )  # fmt: skip
    invitations = {i.customer_name: i for i in Invitation.objects.all()}
    said = {}

    for name, domain in customers:
        row = table[name]
        invitation = invitations[name]
        if row.startswith("never consents"):
            assert invitation.status == Invitation.Status.OPEN
            said[name] = "never consents"
            continue
        status, page = consent_as_admin(client, sandbox, invitation, domain)
        tenant = Tenant.objects.filter(tenant_id=invitation.expected_tenant_id).first()
        if tenant is None:
            assert status == 400 and row.startswith("never onboarded"), (name, row)
            refusal = re.search(r"\(AADSTS(\d+)\)", row).group(1)
            assert "a service is missing in your organisation" in page
            assert "Microsoft Defender XDR" in page and refusal == "650052"
            said[name] = "never onboarded"
            continue
        assert status == 200, name
        outcome = Tenant.Status(verify(tenant).outcome).label.lower()
        assert row.startswith(outcome), (name, outcome, row)
        said[name] = outcome

        if "/disable` → " in row:
            then = row.split("/disable` → ", 1)[1].split(" (", 1)[0]
            sandbox.control.disable(str(tenant.tenant_id))
            verification = verify(tenant)
            assert Tenant.Status(verification.outcome).label.lower() == then
            assert "(app disabled)" in row and verification.diagnosis == "app_disabled"
        if "AADSTS700236" in row:
            assert f"ENTRA_APP_CLIENT_ID={LITWARE_LOCAL_APP}" in row
            settings.ENTRA_APP_CLIENT_ID = LITWARE_LOCAL_APP
            with pytest.raises(SystemExit):
                call_command("doctor")
            assert "(AADSTS700236)" in capsys.readouterr().out
            settings.ENTRA_APP_CLIENT_ID = PORTAL_APP

    assert set(said) == set(table)
