"""The tenant page: diagnosis and remediation from real verifications, access per resource,
history, audit trail, the re-consent invitation, and 404 for unknown codes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.log import record
from consent.models import Invitation
from mssp_portal import identity
from tenants.models import Tenant, Verification
from tenants.verification.runner import run_verification
from tests.conftest import NORTHWIND, PORTAL_APP, TAILSPIN
from tests.personas import make_tenant

# What the demo's portal app requests, per resource (entra_sandbox/scenarios/demo.toml).
APP_PERMISSIONS = {
    "graph": ["Organization.Read.All"],
    "defender": ["Incident.Read.All"],
    "mde": ["Ti.ReadWrite.All"],
}


@pytest.fixture
def engine(sandbox, settings) -> Iterator[object]:
    """The real verification engine against the sandbox, with short retries and no cached
    managed-identity token from another test."""
    settings.VERIFY_RETRIES = 2
    settings.VERIFY_RETRY_BASE_DELAY = 0.01
    settings.VERIFY_RETRY_MAX_DELAY = 3
    settings.VERIFY_HTTP_TIMEOUT = 5
    identity.forget_assertion()
    yield sandbox
    identity.forget_assertion()


def _verify(tenant: Tenant) -> Verification:
    verification, _ = tenant.request_verification(Verification.Trigger.MANUAL, "test")
    finished = run_verification(str(verification.code))
    assert finished is not None
    tenant.refresh_from_db()
    return finished


def _page(client, tenant: Tenant) -> str:
    response = client.get(reverse("console:detail", args=[tenant.code]))
    assert response.status_code == 200
    return response.content.decode()


def _text(body: str) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, blanks collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", body)).split())


def _section(body: str, heading_id: str) -> str:
    start = body.index(f'id="{heading_id}"')
    return body[start : body.index("</section>", start)]


# --- Real verifications ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_explains_a_tenant_without_a_defender_licence(engine, admin_client):
    engine.control.set_roles(TAILSPIN, APP_PERMISSIONS, application=PORTAL_APP)
    tailspin = make_tenant(TAILSPIN, display_name="", primary_domain="")
    verification = _verify(tailspin)
    assert verification.outcome == Verification.Outcome.INCOMPLETE
    assert tailspin.status == Tenant.Status.INCOMPLETE

    body = _page(admin_client, tailspin)
    text = _text(body)

    diagnosis = _text(_section(body, "diag-h"))
    assert "Service not available in the tenant (licence)" in diagnosis
    assert "What to do" in diagnosis
    assert "needs a Microsoft Defender XDR licence" in diagnosis
    assert "For the customer" in diagnosis
    # The organisation's name came from Graph through the engine.
    assert tailspin.display_name and tailspin.display_name in text
    resources = _text(_section(body, "resources-h"))
    assert re.search(r"Microsoft Graph Organization\.Read\.All Organization\.Read\.All", resources)
    assert "Incident.Read.All" in resources
    assert "refused" in resources  # no Defender service principal in Tailspin
    # No token, so no roles to show: not "none".
    assert "Microsoft Defender XDR Incident.Read.All no token refused AADSTS500011" in resources
    assert "obtained" in resources
    assert "200" in resources  # the Graph probe
    history = _text(_section(body, "history-h"))
    assert "Requested by staff" in history and "Incomplete" in history


@pytest.mark.django_db(transaction=True)
def test_it_shows_a_verified_tenant_resource_by_resource(engine, admin_client):
    engine.control.set_roles(NORTHWIND, APP_PERMISSIONS, application=PORTAL_APP)
    northwind = make_tenant(NORTHWIND, access_profile="defender-xdr-readonly")
    _verify(northwind)
    assert northwind.status == Tenant.Status.VERIFIED

    body = _page(admin_client, northwind)

    resources = _section(body, "resources-h")
    assert "bad-text" not in resources
    assert "not checked yet" not in resources
    assert "perm perm-missing" not in resources
    assert "Re-consent invitation" not in body


# --- Stored verifications ----------------------------------------------------------------------


def _missing_role_verification(tenant: Tenant, **fields: object) -> Verification:
    defaults = {
        "tenant": tenant,
        "trigger": Verification.Trigger.SCHEDULE,
        "state": Verification.State.DONE,
        "outcome": Verification.Outcome.INCOMPLETE,
        "diagnosis": "role_missing",
        "started_at": timezone.now() - timedelta(seconds=3),
        "finished_at": timezone.now(),
        "results": {
            "graph": {
                "token": "ok",
                "tid_matches": True,
                "roles_seen": ["Organization.Read.All"],
                "roles_required": ["Organization.Read.All"],
                "roles_missing": [],
                "probe": {"status": 200, "ok": True, "detail": ""},
                "diagnosis": "",
            },
            "defender": {
                "token": "ok",
                "tid_matches": True,
                "roles_seen": [],
                "roles_required": ["Incident.Read.All"],
                "roles_missing": ["Incident.Read.All"],
                "probe": {},
                "diagnosis": "role_missing",
            },
        },
    }
    defaults.update(fields)
    return Verification.objects.create(**defaults)


@pytest.fixture
def contoso(db) -> Tenant:
    return make_tenant(
        display_name="Contoso Ltd",
        primary_domain="contoso.example",
        status=Tenant.Status.INCOMPLETE,
        diagnosis="role_missing",
    )


def test_it_shows_required_granted_and_missing_roles(operator_client, contoso):
    _missing_role_verification(contoso)

    resources = _section(_page(operator_client, contoso), "resources-h")

    assert '<code class="perm perm-missing">Incident.Read.All</code>' in resources
    assert '<code class="perm perm-ok">Organization.Read.All</code>' in resources
    assert "Missing:" in resources


def test_it_lists_the_history_newest_first_and_the_audit_trail(operator_client, contoso):
    old = _missing_role_verification(
        contoso,
        created_at=timezone.now() - timedelta(days=2),
        outcome=Verification.Outcome.VERIFIED,
        diagnosis="",
        requested_by="system",
    )
    new = _missing_role_verification(contoso, requested_by="admin@fabrikam-mssp.example")
    Verification.objects.create(tenant=contoso, trigger=Verification.Trigger.MANUAL)
    record("reverify", "success", actor="admin@fabrikam-mssp.example", tenant_id=contoso.tenant_id)
    record("offboard", "success", actor="someone", tenant_id=uuid.uuid4())  # another tenant

    body = _page(operator_client, contoso)

    history = _text(_section(body, "history-h"))
    queued, newer, older = (
        history.index("Queued"),
        history.index(new.created_at.strftime("%Y-%m-%d %H:%M:%S")),
        history.index(old.created_at.strftime("%Y-%m-%d %H:%M:%S")),
    )
    assert queued < older and newer < older
    assert "3.0 s" in history
    trail = _text(_section(body, "trail-h"))
    assert "reverify success · admin@fabrikam-mssp.example" in trail
    assert "offboard" not in trail
    # A verification is open: the page refreshes itself.
    assert 'data-live-active="1"' in body


def test_it_offers_admins_a_re_consent_invitation_for_an_incomplete_tenant(admin_client, contoso):
    _missing_role_verification(contoso)

    body = _page(admin_client, contoso)

    reconsent = _section(body, "reconsent-h")
    assert reverse("console:invite", args=[contoso.code]) in reconsent
    assert "Create re-consent invitation" in reconsent


def test_it_shows_the_re_consent_link_once_it_exists(admin_client, contoso):
    invitation = Invitation.objects.create(
        customer_name="Contoso Ltd",
        expected_tenant_id=contoso.tenant_id,
        access_profile=contoso.access_profile,
        expires_at=timezone.now() + timedelta(days=3),
        created_by="admin@fabrikam-mssp.example",
        tenant=contoso,
    )

    reconsent = _section(_page(admin_client, contoso), "reconsent-h")

    assert f"/{invitation.code}/" in reconsent
    assert 'id="reconsent-url"' in reconsent
    assert "Create re-consent invitation" not in reconsent


def test_it_tells_operators_to_ask_an_admin_for_the_invitation(operator_client, contoso):
    body = _page(operator_client, contoso)

    reconsent = _text(_section(body, "reconsent-h"))
    assert "Ask a portal admin" in reconsent
    assert reverse("console:invite", args=[contoso.code]) not in body
    assert reverse("console:offboard", args=[contoso.code]) not in body
    assert reverse("console:tenant_groups", args=[contoso.code]) not in body
    # Re-verifying is an operator's action too.
    assert reverse("console:reverify", args=[contoso.code]) in body


def test_it_offers_no_re_consent_for_a_verified_tenant(admin_client, northwind):
    body = _page(admin_client, northwind)

    assert "Re-consent invitation" not in body
    assert reverse("console:reverify", args=[northwind.code]) in body


def test_it_says_when_a_tenant_was_never_verified(operator_client, db):
    tenant = make_tenant(status=Tenant.Status.CONSENT_REPORTED)

    body = _page(operator_client, tenant)

    assert "Not verified yet" in _text(_section(body, "diag-h"))
    assert "No verification yet." in body
    assert "not checked yet" in _section(body, "resources-h")


# --- Wrong role, method, input -----------------------------------------------------------------


def test_it_refuses_staff_without_a_role(outsider_client, northwind):
    response = outsider_client.get(reverse("console:detail", args=[northwind.code]))

    assert response.status_code == 403
    assert "Northwind" not in response.content.decode()


def test_it_answers_405_to_a_post(admin_client, northwind):
    assert admin_client.post(reverse("console:detail", args=[northwind.code])).status_code == 405


def test_it_answers_404_for_an_unknown_tenant(admin_client, northwind):
    response = admin_client.get(reverse("console:detail", args=[uuid.uuid4()]))

    assert response.status_code == 404


def test_it_does_not_open_a_tenant_by_its_entra_id(admin_client, northwind):
    """URLs carry the portal's own code, not the customer's directory id."""
    response = admin_client.get(reverse("console:detail", args=[northwind.tenant_id]))

    assert response.status_code == 404


def test_it_answers_404_for_a_malformed_code(admin_client, northwind):
    assert admin_client.get("/tenants/not-a-uuid/").status_code == 404


@pytest.mark.parametrize(
    ("status", "key", "results"),
    [
        (
            Tenant.Status.INCOMPLETE,
            "resource_not_provisioned",
            {"defender": {"diagnosis": "resource_not_provisioned"}},
        ),
        (
            Tenant.Status.INCOMPLETE,
            "rbac_role_missing",
            {"arm": {"diagnosis": "rbac_role_missing"}},
        ),
        (Tenant.Status.NO_ACCESS, "app_disabled", {}),
    ],
)
def test_it_offers_no_re_consent_where_a_new_consent_cannot_help(
    admin_client, status, key, results
):
    tenant = make_tenant(status=status, diagnosis=key, access_profile="full-soc")
    _missing_role_verification(
        tenant,
        outcome=Verification.Outcome(status),
        diagnosis=key,
        results=results,
    )

    body = _page(admin_client, tenant)

    assert "Re-consent invitation" not in body
    assert reverse("console:invite", args=[tenant.code]) not in body


def test_it_offers_re_consent_when_one_of_several_problems_is_a_missing_permission(
    admin_client, db
):
    tenant = make_tenant(status=Tenant.Status.INCOMPLETE, access_profile="full-soc")
    _missing_role_verification(
        tenant,
        diagnosis="rbac_role_missing",
        results={
            "arm": {"diagnosis": "rbac_role_missing"},
            "defender": {"diagnosis": "role_missing", "roles_missing": ["Incident.Read.All"]},
        },
    )

    assert "Create re-consent invitation" in _page(admin_client, tenant)


def test_azure_resources_are_granted_by_role_assignment_not_token_roles(admin_client, db):
    tenant = make_tenant(status=Tenant.Status.INCOMPLETE, access_profile="full-soc")
    _missing_role_verification(
        tenant,
        results={
            "arm": {
                "token": "ok",
                "roles_seen": [],
                "probe": {"status": 200, "ok": True, "detail": "1 subscription"},
                "diagnosis": "verified",
            },
            "loganalytics": {
                "token": "ok",
                "roles_seen": [],
                "probe": {"status": 403, "ok": False, "detail": "HTTP 403"},
                "diagnosis": "rbac_role_missing",
            },
        },
    )

    resources = _text(_section(_page(admin_client, tenant), "resources-h"))

    assert "Azure Resource Manager Azure role Reader by Azure role assignment: passed" in resources
    assert "by Azure role assignment: not proven" in resources
    assert "none" not in resources


def test_it_explains_what_consent_reported_means(operator_client, db):
    tenant = make_tenant(status=Tenant.Status.CONSENT_REPORTED)

    status = _text(_section(_page(operator_client, tenant), "status-h"))

    assert "Consent reported Microsoft’s redirect said an administrator consented" in status
