"""Roles that take effect: an app role or group removed in Entra (the sandbox's control
API, PATCH /_sandbox/users/…) stops working within STAFF_ROLE_RECHECK seconds, for a
session already open and mid-action, and for its owner's API tokens; a re-check that
cannot be made ends the session."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from accounts.models import StaffIdentity
from audit.models import AuditEvent
from entra_sandbox.testing import set_user_access
from tenants.models import Tenant, TenantGroup, Verification
from tests.conftest import HOME_TENANT, PORTAL_APP
from tests.personas import make_tenant, sandbox_redirect

pytestmark = pytest.mark.filterwarnings("ignore:response_mode=.form_post. is recommended")

ADMIN = "admin@fabrikam-mssp.example"
OPERATOR = "operator@fabrikam-mssp.example"
SOC_EMEA = "3b9e6f12-8c4d-4a57-9e21-6d0f3a8b5c74"
SOC_AMERICAS = "9d2a7c45-1e6b-4f83-a0d9-5c8e2b4f7a16"
DASHBOARD = "/"


def signed_in(upn: str) -> Client:
    client = Client()
    assert client.get(sandbox_redirect(client, upn)).status_code == 302
    assert client.get(DASHBOARD).status_code == 200
    return client


def sends_to_sign_in(response: object) -> bool:
    return response.status_code == 302 and response["Location"].startswith(
        reverse(settings.LOGIN_URL)
    )


def later(seconds: int) -> time_machine.travel:
    return time_machine.travel(timezone.now() + timedelta(seconds=seconds))


def ended(kind: str) -> list[str]:
    events = AuditEvent.objects.filter(action="session.expired")
    return [e.actor for e in events if e.detail.get("kind") == kind]


@pytest.mark.django_db
def test_a_removed_role_stops_working_within_the_interval(entra):
    client = signed_in(OPERATOR)
    set_user_access(entra, OPERATOR, app_roles=[])
    interval = settings.STAFF_ROLE_RECHECK
    # Until the interval has passed the portal has not asked Entra again (the documented
    # delay), then the next request ends the session.
    with later(interval - 60):
        assert client.get(DASHBOARD).status_code == 200
    with later(interval + 1):
        response = client.get(DASHBOARD)
        assert sends_to_sign_in(response)
        assert SESSION_KEY not in client.session
        page = client.get(response["Location"]).content.decode()
    assert "Your portal role was removed in Microsoft Entra, so your session ended." in page
    user = get_user_model().objects.get(username=OPERATOR)
    assert not user.has_perm(roles.OPERATE)
    assert StaffIdentity.objects.get(user=user).roles == []
    assert ended("role_removed") == [OPERATOR]
    assert AuditEvent.objects.filter(action="user.roles_changed", actor=OPERATOR).exists()


@pytest.mark.django_db
def test_a_removed_role_stops_an_action_in_the_middle_of_a_session(entra):
    tenant = make_tenant(display_name="Northwind", status=Tenant.Status.VERIFIED)
    client = signed_in(OPERATOR)
    detail = reverse("console:detail", args=[tenant.code])
    with later(600):
        assert client.get(detail).status_code == 200  # the page with its "Re-verify now"
        set_user_access(entra, OPERATOR, app_roles=[])
    with later(settings.STAFF_ROLE_RECHECK + 5):
        response = client.post(reverse("console:reverify", args=[tenant.code]))
        assert sends_to_sign_in(response)
    assert not tenant.verifications.filter(trigger=Verification.Trigger.MANUAL).exists()
    assert ended("role_removed") == [OPERATOR]


@pytest.mark.django_db
def test_a_demoted_admin_loses_the_admin_pages_but_keeps_the_console(entra):
    client = signed_in(ADMIN)
    assert client.get(reverse("console:invitations")).status_code == 200
    set_user_access(entra, ADMIN, app_roles=[f"{PORTAL_APP}/Portal.Operator"])
    with later(settings.STAFF_ROLE_RECHECK + 1):
        assert client.get(reverse("console:invitations")).status_code == 403
        assert client.get(DASHBOARD).status_code == 200
    assert StaffIdentity.objects.get(user__username=ADMIN).roles == [roles.OPERATOR_ROLE]


@pytest.mark.django_db
def test_a_removed_group_takes_its_tenants_away_within_the_interval(entra):
    emea_tenant = make_tenant(display_name="Marker EMEA")
    americas_tenant = make_tenant(display_name="Marker Americas")
    TenantGroup.objects.create(name="EMEA", entra_group_ids=[SOC_EMEA]).tenants.add(emea_tenant)
    TenantGroup.objects.create(name="Americas", entra_group_ids=[SOC_AMERICAS]).tenants.add(
        americas_tenant
    )
    client = signed_in(OPERATOR)
    body = client.get(DASHBOARD).content.decode()
    assert "Marker EMEA" in body and "Marker Americas" not in body
    # Moved from the EMEA pod to the Americas one in Entra.
    set_user_access(entra, OPERATOR, groups=[SOC_AMERICAS])
    with later(settings.STAFF_ROLE_RECHECK + 1):
        body = client.get(DASHBOARD).content.decode()
        assert "Marker Americas" in body and "Marker EMEA" not in body
        assert client.get(reverse("console:detail", args=[emea_tenant.code])).status_code == 404
    assert StaffIdentity.objects.get(user__username=OPERATOR).groups == [SOC_AMERICAS]


@pytest.mark.django_db
def test_a_disabled_account_is_signed_out_at_the_next_check(entra):
    client = signed_in(OPERATOR)
    set_user_access(entra, OPERATOR, enabled=False)
    with later(settings.STAFF_ROLE_RECHECK + 1):
        assert sends_to_sign_in(client.get(DASHBOARD))
    assert ended("role_removed") == [OPERATOR]


@pytest.mark.django_db
def test_it_ends_the_session_when_the_check_cannot_be_made(entra):
    client = signed_in(OPERATOR)
    # The portal's Graph permissions in the home tenant withdrawn: Graph answers 403.
    entra.control.set_roles(
        HOME_TENANT, {"graph": ["Organization.Read.All"]}, application=PORTAL_APP
    )
    with later(settings.STAFF_ROLE_RECHECK + 1):
        response = client.get(DASHBOARD)
        assert sends_to_sign_in(response)
        page = client.get(response["Location"]).content.decode()
    assert "the portal could not check your roles with Microsoft Entra. Sign in again." in page
    assert ended("role_check_unavailable") == [OPERATOR]
    # Nothing was withdrawn on a guess: the roles stay as last read.
    assert StaffIdentity.objects.get(user__username=OPERATOR).roles == [roles.OPERATOR_ROLE]


@pytest.mark.django_db
def test_an_api_token_stops_reading_when_its_owners_role_is_removed(entra):
    tenant = make_tenant(display_name="Marker Northwind")
    client = signed_in(OPERATOR)
    response = client.post(
        reverse("accounts:token_create"),
        {"name": "pod monitor", "scope": "status:read", "expires_in_days": "30"},
    )
    value = re.search(r'id="token-value"[^>]*value="(mssp_[^"]+)"', response.content.decode())[1]
    machine = Client()
    header = {"HTTP_AUTHORIZATION": f"Bearer {value}"}
    document = json.loads(machine.get(reverse("console:status_json"), **header).content)
    assert [t["name"] for t in document["tenants"]] == [tenant.display_name]
    set_user_access(entra, OPERATOR, app_roles=[])
    with later(settings.STAFF_ROLE_RECHECK + 1):
        answer = machine.get(reverse("console:status_json"), **header)
    assert answer.status_code == 401
    assert json.loads(answer.content) == {"error": "token_owner_without_role"}


def test_it_does_not_recheck_a_local_break_glass_account(superuser, client, settings):
    from tests.personas import break_glass_form

    signed_in = client.post("/accounts/break-glass/", break_glass_form(superuser))
    assert signed_in.status_code == 302
    # No Entra identity, nothing to ask Graph (no sandbox here): the session goes on.
    with later(settings.STAFF_ROLE_RECHECK + 1):
        assert client.get(DASHBOARD).status_code == 200


@pytest.mark.django_db
def test_a_tenant_group_mapped_to_an_app_role_follows_that_role(entra):
    entra.control.update_application(
        PORTAL_APP, app_roles=["Portal.Admin", "Portal.Operator", "Portal.SOC.Americas"]
    )
    set_user_access(
        entra,
        OPERATOR,
        app_roles=[f"{PORTAL_APP}/Portal.Operator", f"{PORTAL_APP}/Portal.SOC.Americas"],
        groups=[],
    )
    americas = make_tenant(display_name="Marker Americas")
    make_tenant(display_name="Marker Elsewhere")
    TenantGroup.objects.create(name="Americas", app_roles=["Portal.SOC.Americas"]).tenants.add(
        americas
    )
    client = signed_in(OPERATOR)
    body = client.get(DASHBOARD).content.decode()
    assert "Marker Americas" in body and "Marker Elsewhere" not in body
    identity = StaffIdentity.objects.get(user__username=OPERATOR)
    assert identity.roles == ["Portal.Operator", "Portal.SOC.Americas"]
    with later(settings.STAFF_ROLE_RECHECK + 1):
        # Read back from Graph the same: nothing changes.
        body = client.get(DASHBOARD).content.decode()
        assert "Marker Americas" in body and "Marker Elsewhere" not in body
    set_user_access(entra, OPERATOR, app_roles=[f"{PORTAL_APP}/Portal.Operator"])
    with later(2 * settings.STAFF_ROLE_RECHECK + 2):
        body = client.get(DASHBOARD).content.decode()
        # Still an operator, mapped to no group while groups are in use: no tenant.
        assert "Marker Americas" not in body and "Your access covers no tenant yet" in body


@pytest.mark.django_db
def test_an_api_token_is_not_answered_when_its_owners_check_cannot_be_made(entra):
    from accounts.models import ApiToken

    signed_in(OPERATOR)
    owner = get_user_model().objects.get(username=OPERATOR)
    _token, value = ApiToken.issue(
        name="pod", scope="status:read", created_by=OPERATOR, owner=owner
    )
    entra.control.set_roles(
        HOME_TENANT, {"graph": ["Organization.Read.All"]}, application=PORTAL_APP
    )
    with later(settings.STAFF_ROLE_RECHECK + 1):
        answer = Client().get(reverse("console:status_json"), HTTP_AUTHORIZATION=f"Bearer {value}")
    assert answer.status_code == 503
    assert json.loads(answer.content) == {"error": "owner_roles_unverifiable"}
