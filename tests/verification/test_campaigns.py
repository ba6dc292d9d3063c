"""Re-consent campaigns end to end against the sandbox: a permission added to the app and a
profile turns consented tenants incomplete; a campaign binds an invitation to each; the
customer's administrator consents again on the sandbox's consent page, which grants the new
permission; the next verification passes and the campaign reaches 100 %."""

from __future__ import annotations

import dataclasses

import pytest
from django.core.management import call_command
from django.urls import reverse

from audit.models import AuditEvent
from consent import campaigns
from consent.models import Campaign, ConsentTicket
from consent.tasks import run_campaign
from tenants import profiles
from tenants.models import Tenant
from tests.conftest import NORTHWIND, PORTAL_APP, TAILSPIN, WOODGROVE
from tests.consent.helpers import issue, success
from tests.verification.conftest import APP_PERMISSIONS
from tests.verification.test_demo_table import consent_as_admin

NEW = "AuditLog.Read.All"


@pytest.fixture
def new_permission(sandbox, monkeypatch):
    """The MSSP's app now requests AuditLog.Read.All and the Graph profile requires it."""
    graph = profiles.PROFILES["graph-reporting"]
    (organization,) = graph.requirements
    grown = dataclasses.replace(
        graph,
        requirements=(
            dataclasses.replace(organization, permissions=(*organization.permissions, NEW)),
        ),
    )
    monkeypatch.setitem(profiles.PROFILES, "graph-reporting", grown)
    permissions = {**APP_PERMISSIONS, "graph": [*APP_PERMISSIONS["graph"], NEW]}
    sandbox.control.update_application(PORTAL_APP, permissions=permissions)


@pytest.fixture
def onboarded(sandbox, consent, make_tenant, verify):
    """Northwind and Woodgrove consented before the new permission and verified."""
    tenants = []
    for tenant_id, name, domain in (
        (NORTHWIND, "Northwind Traders", "northwind.example"),
        (WOODGROVE, "Woodgrove Bank", "woodgrove.example"),
    ):
        consent(tenant_id)
        tenant = make_tenant(tenant_id, "graph-reporting", display_name=name, primary_domain=domain)
        assert verify(tenant).outcome == "verified"
        tenants.append(tenant)
    return tenants


def test_a_campaign_follows_every_tenant_to_a_passing_verification(
    sandbox, onboarded, new_permission, verify, client, admin_client
):
    northwind, woodgrove = onboarded
    for tenant in onboarded:
        verification = verify(tenant)
        assert (verification.outcome, verification.diagnosis) == ("incomplete", "role_missing")

    dashboard = admin_client.get(reverse("console:dashboard")).content.decode()
    assert f"2 tenants need consent again for {NEW}" in dashboard

    response = admin_client.post(reverse("console:campaign_start"), {"profile": "graph-reporting"})
    campaign = Campaign.objects.get()
    assert response["Location"] == reverse("console:campaign", args=[campaign.code])
    page = admin_client.get(response["Location"]).content.decode()
    assert "Preparing the invitations: 0 of 2 tenants ready." in page
    run_campaign(str(campaign.code))  # what the worker runs
    assert campaign.permissions == [f"graph:{NEW}"]
    members = {m.tenant.tenant_id: m for m in campaign.members.select_related("invitation")}
    assert set(members) == {northwind.tenant_id, woodgrove.tenant_id}
    for tenant_id, member in members.items():
        assert member.invitation.expected_tenant_id == tenant_id  # bound: nobody else's

    # Woodgrove's link, redeemed from Tailspin (Entra's consent page only lists Woodgrove's
    # accounts, so it is a callback claiming Tailspin): refused, and the link stays open.
    state = issue(members[woodgrove.tenant_id].invitation)
    client.get(success(state, TAILSPIN))
    assert ConsentTicket.objects.get(result="tenant_mismatch")
    members[woodgrove.tenant_id].invitation.refresh_from_db()
    assert members[woodgrove.tenant_id].invitation.is_usable
    assert not Tenant.objects.filter(tenant_id=TAILSPIN).exists()

    # Northwind's administrator consents again on the sandbox's page: the grant now has it.
    status, _page = consent_as_admin(
        client, sandbox, members[northwind.tenant_id].invitation, "northwind.example"
    )
    assert status == 200
    _rows, counts = campaigns.progress(campaign)
    assert counts == {"reconsented": 1, "pending": 1}
    northwind.refresh_from_db()
    assert verify(northwind).outcome == "verified"

    page = admin_client.get(reverse("console:campaign", args=[campaign.code])).content.decode()
    assert '<span id="campaign-percent">50 %</span>' in page

    status, _page = consent_as_admin(
        client, sandbox, members[woodgrove.tenant_id].invitation, "woodgrove.example"
    )
    woodgrove.refresh_from_db()
    assert verify(woodgrove).outcome == "verified"
    page = admin_client.get(reverse("console:campaign", args=[campaign.code])).content.decode()
    assert '<span id="campaign-percent">100 %</span>' in page
    assert "nothing left to do" in page
    assert (
        f"need consent again for {NEW}"
        not in admin_client.get(reverse("console:dashboard")).content.decode()
    )
    assert AuditEvent.objects.filter(action="campaign.started").count() == 1


def test_the_command_does_the_same_and_a_dry_run_writes_nothing(
    sandbox, onboarded, new_permission, verify, capsys
):
    for tenant in onboarded:
        verify(tenant)

    call_command("reconsent_campaign", "--dry-run")
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "campaign dry-run: 2 tenants, 0 invitations created"
    assert not Campaign.objects.exists()

    call_command("reconsent_campaign", "--profile", "graph-reporting")
    campaign = Campaign.objects.get()
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"campaign {campaign.code}: 2 tenants, 2 invitations created"
    )
    with pytest.raises(Exception, match="Unknown access profile"):
        call_command("reconsent_campaign", "--profile", "nope")


def test_nobody_to_ask_starts_nothing(db, capsys, admin_client):
    call_command("reconsent_campaign")
    assert (
        capsys.readouterr().out.splitlines()[-1]
        == "campaign none: 0 tenants, 0 invitations created"
    )
    response = admin_client.post(reverse("console:campaign_start"), {}, follow=True)
    assert "No tenant needs to consent again: no campaign started." in response.content.decode()
    assert not Campaign.objects.exists()
