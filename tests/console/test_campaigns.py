"""Campaign pages: started from the banner, the same tenants are not asked twice, pending
customers reminded (a task), the list exported, operators kept out."""

from __future__ import annotations

import csv
import io

from django.urls import reverse

from audit.models import AuditEvent
from consent.models import Campaign, Invitation
from consent.tasks import run_campaign
from tenants.models import Verification
from tests.conftest import NORTHWIND, TAILSPIN
from tests.personas import make_tenant


def _lacking(tenant_id: str, name: str, **fields):
    tenant = make_tenant(
        tenant_id,
        display_name=name,
        access_profile="graph-reporting",
        status="incomplete",
        diagnosis="role_missing",
        **fields,
    )
    Verification.objects.create(
        tenant=tenant,
        trigger="schedule",
        state="done",
        outcome="incomplete",
        diagnosis="role_missing",
        results={"graph": {"token": "ok", "roles_missing": ["AuditLog.Read.All"]}},
    )
    return tenant


def test_a_campaign_from_the_banner_reminds_and_exports(admin_client, db):
    _lacking(NORTHWIND, "Northwind", contact_email="ada@northwind.example")
    _lacking(TAILSPIN, "=cmd|evil")
    page = admin_client.get(reverse("console:campaigns")).content.decode()
    assert "2 tenants need consent again for AuditLog.Read.All" in page

    response = admin_client.post(
        reverse("console:campaign_start"), {"profile": "graph-reporting"}, follow=True
    )
    body = response.content.decode()
    assert "Campaign started for 2 tenants: their invitations are being prepared." in body
    campaign = Campaign.objects.get()
    assert 'data-live-active="1"' in body and campaign.members.count() == 0
    run_campaign(str(campaign.code))  # what the worker runs
    run_campaign(str(campaign.code))  # twice: nobody added twice, one audit event
    assert campaign.members.count() == 2
    assert AuditEvent.objects.filter(action="campaign.started").count() == 1
    page = admin_client.get(reverse("console:campaign", args=[campaign.code])).content.decode()
    assert '<span id="campaign-percent">0 %</span>' in page and 'data-live-active="0"' in page

    # While their invitations wait, the banner says so and offers no second campaign.
    banner = admin_client.get(reverse("console:campaigns")).content.decode()
    assert "2 of them already have a campaign's invitation waiting" in banner
    assert "Start a re-consent campaign" not in banner
    again = admin_client.post(
        reverse("console:campaign_start"), {"profile": "graph-reporting"}, follow=True
    )
    assert "already has a campaign&#x27;s invitation waiting" in again.content.decode()
    assert Campaign.objects.count() == 1

    response = admin_client.post(
        reverse("console:campaign_remind", args=[campaign.code]), follow=True
    )
    assert "Reminding 1 pending customer by email." in response.content.decode()
    assert AuditEvent.objects.get(action="campaign.reminded").detail["reminders"] == "1"

    export = admin_client.get(reverse("console:campaign_export", args=[campaign.code]))
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert {r["customer_name"] for r in rows} == {"Northwind", "'=cmd|evil"}
    assert {r["state"] for r in rows} == {"pending"}
    assert {r["missing"] for r in rows} == {"graph:AuditLog.Read.All"}


def test_operators_see_no_banner_and_no_campaign(operator_client, db):
    _lacking(NORTHWIND, "Northwind")
    assert (
        "need consent again"
        not in operator_client.get(reverse("console:dashboard")).content.decode()
    )
    assert operator_client.get(reverse("console:campaigns")).status_code == 403
    assert operator_client.post(reverse("console:campaign_start"), {}).status_code == 403
    assert not Campaign.objects.exists()


def test_an_unknown_profile_starts_nothing(admin_client, db):
    _lacking(NORTHWIND, "Northwind")
    response = admin_client.post(reverse("console:campaign_start"), {"profile": "x"}, follow=True)
    assert "Choose a profile from the list." in response.content.decode()
    assert not Campaign.objects.exists()


def test_a_campaign_reuses_a_tenants_usable_invitation(admin_client, db):
    tenant = _lacking(NORTHWIND, "Northwind")
    _lacking(TAILSPIN, "Tailspin")
    waiting = Invitation.objects.reconsent_for(tenant, actor="admin")  # from the tenant page

    campaign, created = Campaign.objects.start(actor="admin")

    assert created == 1  # Tailspin's; Northwind already had a link
    assert campaign.members.get(tenant=tenant).invitation == waiting
    page = admin_client.get(reverse("console:campaigns")).content.decode()
    assert "Start a re-consent campaign" not in page  # both are waiting now
