"""Changing a tenant's access profile: the diff before confirming, an audit event, a
re-verification, and a truthful word on whether the tenant's consent covers the new one."""

from __future__ import annotations

from django.urls import reverse

from audit.models import AuditEvent
from tenants.models import Tenant, Verification
from tests.conftest import NORTHWIND
from tests.personas import make_tenant


def _verified(results: dict) -> Tenant:
    tenant = make_tenant(NORTHWIND, access_profile="graph-reporting", status="verified")
    Verification.objects.create(
        tenant=tenant, trigger="manual", state="done", outcome="verified", results=results
    )
    return tenant


GRAPH_ONLY = {
    "graph": {"token": "ok", "roles_seen": ["Organization.Read.All", "Reports.Read.All"]},
}


def test_the_diff_names_what_changes_and_what_the_consent_lacks(admin_client, db):
    tenant = _verified(GRAPH_ONLY)
    url = reverse("console:tenant_profile", args=[tenant.code])

    page = admin_client.get(url, {"profile": "defender-xdr-readonly"}).content.decode()

    assert 'data-resource="defender" data-kind="added"' in page
    assert "+ Incident.Read.All" in page
    # No Defender token was obtained yet: unknown, said so, not claimed missing.
    assert "Not known yet for Microsoft Defender XDR" in page
    assert not AuditEvent.objects.filter(action="tenant.profile_changed").exists()
    tenant.refresh_from_db()
    assert tenant.access_profile == "graph-reporting"  # a GET changes nothing


def test_a_permission_the_last_tokens_did_not_carry_is_named_as_lacking(admin_client, db):
    # Its last tokens for Defender for Endpoint carried no Ti.ReadWrite.All: the consent
    # predates that permission.
    tenant = _verified({**GRAPH_ONLY, "mde": {"token": "ok", "roles_seen": []}})
    page = admin_client.get(
        reverse("console:tenant_profile", args=[tenant.code]), {"profile": "mde-indicators"}
    ).content.decode()
    assert 'id="profile-lacking"' in page
    assert "Microsoft Defender for Endpoint Ti.ReadWrite.All" in page
    assert "Not known yet" not in page

    response = admin_client.post(
        reverse("console:tenant_profile", args=[tenant.code]),
        {"profile": "mde-indicators", "confirm": "on"},
        follow=True,
    )
    assert "consent lacks Ti.ReadWrite.All" in response.content.decode()


def test_confirming_changes_it_audits_and_queues_a_verification(admin_client, db):
    tenant = _verified(GRAPH_ONLY)
    url = reverse("console:tenant_profile", args=[tenant.code])

    assert admin_client.post(url, {"profile": "defender-xdr-readonly"}).status_code == 400
    tenant.refresh_from_db()
    assert tenant.access_profile == "graph-reporting"  # not confirmed: nothing changed

    response = admin_client.post(url, {"profile": "defender-xdr-readonly", "confirm": "on"})

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.access_profile == "defender-xdr-readonly"
    event = AuditEvent.objects.get(action="tenant.profile_changed")
    assert event.detail == {"from": "graph-reporting", "to": "defender-xdr-readonly"}
    assert tenant.verifications.filter(state="queued").count() == 1


def test_an_unknown_profile_is_refused_and_changes_nothing(admin_client, db):
    tenant = _verified(GRAPH_ONLY)
    url = reverse("console:tenant_profile", args=[tenant.code])
    response = admin_client.post(url, {"profile": "everything", "confirm": "on"}, follow=True)
    assert "Choose a profile from the list." in response.content.decode()
    tenant.refresh_from_db()
    assert tenant.access_profile == "graph-reporting"
    assert not AuditEvent.objects.filter(action="tenant.profile_changed").exists()


def test_a_resource_whose_permissions_stay_is_unchanged_whatever_its_wording():
    from tenants import profiles

    rows = {
        c.resource: c.kind
        for c in profiles.changes(profiles.get("full-soc"), profiles.get("mde-indicators"))
    }
    assert rows["mde"] == "same"  # same permission, another sentence of why
    assert rows["defender"] == rows["arm"] == "removed"
