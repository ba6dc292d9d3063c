"""The `groups` claim at sign-in (and Entra's overage form, read from Graph), and scoping
by it: an operator whose Entra group maps to a tenant group sees only its tenants."""

from __future__ import annotations

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse

from accounts.models import StaffIdentity
from audit.models import AuditEvent
from entra_sandbox.testing import group_ids, set_user_access
from tenants.models import TenantGroup
from tests.conftest import HOME_TENANT, PORTAL_APP
from tests.personas import make_tenant, sandbox_redirect

pytestmark = pytest.mark.filterwarnings("ignore:response_mode=.form_post. is recommended")

OPERATOR = "operator@fabrikam-mssp.example"
SOC_EMEA = "3b9e6f12-8c4d-4a57-9e21-6d0f3a8b5c74"
OPERATOR_ROLE = f"{PORTAL_APP}/Portal.Operator"


def sign_in(client: Client, upn: str) -> object:
    return client.get(sandbox_redirect(client, upn))


@pytest.mark.django_db
def test_it_keeps_the_groups_of_the_id_token_and_scopes_by_them(entra):
    emea = TenantGroup.objects.create(name="EMEA", entra_group_ids=[SOC_EMEA])
    emea.tenants.add(make_tenant(display_name="Marker EMEA Tenant"))
    make_tenant(display_name="Marker Other Tenant")
    client = Client()
    assert sign_in(client, OPERATOR).status_code == 302
    identity = StaffIdentity.objects.get(user__username=OPERATOR)
    assert identity.groups == [SOC_EMEA]
    body = client.get(reverse("console:dashboard")).content.decode()
    assert "Marker EMEA Tenant" in body and "Marker Other Tenant" not in body


@pytest.mark.django_db
def test_it_reads_the_groups_from_graph_when_entra_sends_the_overage_form(entra):
    many = group_ids(201, "overage")
    set_user_access(entra, OPERATOR, groups=[*many, SOC_EMEA])
    client = Client()
    assert sign_in(client, OPERATOR).status_code == 302
    identity = StaffIdentity.objects.get(user__username=OPERATOR)
    assert set(identity.groups) == {*many, SOC_EMEA} and len(identity.groups) == 202


@pytest.mark.django_db
def test_it_refuses_the_sign_in_when_the_overage_cannot_be_read(entra):
    set_user_access(entra, OPERATOR, groups=group_ids(201, "overage"))
    # The portal's Graph permissions withdrawn in the home tenant: Graph answers 403.
    entra.control.set_roles(
        HOME_TENANT, {"graph": ["Organization.Read.All"]}, application=PORTAL_APP
    )
    client = Client()
    response = sign_in(client, OPERATOR)
    assert response.status_code == 403
    body = response.content.decode()
    assert "could not read them from Microsoft Graph" in body
    assert "ask a portal administrator to check the portal&#x27;s Graph permissions" in body
    assert SESSION_KEY not in client.session
    event = AuditEvent.objects.get(action="user.sign_in_refused")
    assert event.detail["reason"] == "groups_unavailable"
