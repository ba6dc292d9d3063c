"""Creating a consent invitation in the console: bound to a tenant id or a resolved
domain, audited, refused to operators and without CSRF."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from consent.models import Invitation
from tests.conftest import NORTHWIND, TAILSPIN
from tests.personas import ADMIN, csrf_client, csrf_token

CREATE = reverse("console:invitation_create")


def _invitation_form(**fields: object) -> dict[str, object]:
    return {
        "customer_name": "Northwind Traders",
        "tenant": NORTHWIND,
        "access_profile": "defender-xdr-readonly",
        "days": 14,
        **fields,
    }


def test_it_creates_an_invitation_bound_to_a_tenant_id(admin_client, db):
    response = admin_client.post(CREATE, _invitation_form(tenant=NORTHWIND.upper()))

    invitation = Invitation.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("console:invitation", args=[invitation.code])
    assert str(invitation.expected_tenant_id) == NORTHWIND
    assert invitation.customer_name == "Northwind Traders"
    assert invitation.created_by == ADMIN
    assert (
        timedelta(days=13, hours=23) < invitation.expires_at - timezone.now() <= timedelta(days=14)
    )
    event = AuditEvent.objects.get(action="invitation.created")
    assert (event.outcome, event.actor, str(event.tenant_id)) == ("success", ADMIN, NORTHWIND)
    assert event.detail["invitation"] == str(invitation.code)
    # The link to send is on the page it lands on.
    detail = admin_client.get(response.url).content.decode()
    assert f"/{invitation.code}/" in detail


def test_it_resolves_a_domain_to_its_tenant_through_entra(admin_client, sandbox):
    response = admin_client.post(CREATE, _invitation_form(tenant="Tailspin.example"))

    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert str(invitation.expected_tenant_id) == TAILSPIN
    assert invitation.expected_domain == "tailspin.example"


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"tenant": "not a tenant!"}, "tenant"),
        ({"tenant": "{" + NORTHWIND + "}"}, "tenant"),
        ({"tenant": "nobody-has-this.example"}, "tenant"),  # looked up: no such tenant
        ({"customer_name": "   "}, "customer_name"),
        ({"customer_name": "North\u202ewind"}, "customer_name"),
        ({"access_profile": "god-mode"}, "access_profile"),
        ({"days": 0}, "days"),
        ({"days": 366}, "days"),
        ({"days": "soon"}, "days"),
    ],
)
def test_it_rejects_bad_invitation_input(admin_client, sandbox, fields, field):
    response = admin_client.post(CREATE, _invitation_form(**fields))

    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert 'class="field-error"' in response.content.decode()
    assert not Invitation.objects.exists()
    assert not AuditEvent.objects.exists()


def test_it_shows_the_invitation_form(admin_client, db):
    response = admin_client.get(CREATE)

    assert response.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in response.content.decode()


def test_it_refuses_invitations_to_operators(operator_client, db):
    assert operator_client.get(CREATE).status_code == 403
    assert operator_client.post(CREATE, _invitation_form()).status_code == 403
    assert not Invitation.objects.exists()


def test_it_refuses_an_invitation_post_without_csrf_token(admin_user, db):
    client = csrf_client(admin_user)

    assert client.post(CREATE, _invitation_form()).status_code == 403
    assert not Invitation.objects.exists()

    token = csrf_token(client, CREATE)
    response = client.post(CREATE, _invitation_form(csrfmiddlewaretoken=token))
    assert response.status_code == 302
    assert Invitation.objects.count() == 1


def test_it_refuses_a_duplicate_open_invitation_with_a_clear_error(admin_client, db):
    assert admin_client.post(CREATE, _invitation_form()).status_code == 302
    events = AuditEvent.objects.count()

    response = admin_client.post(CREATE, _invitation_form(customer_name="Northwind again"))

    body = response.content.decode()
    assert response.status_code == 400
    assert f"An open invitation for tenant {NORTHWIND} exists already" in body
    assert Invitation.objects.count() == 1
    assert AuditEvent.objects.count() == events


def test_it_refuses_a_blank_tenant_and_says_why_on_the_form(admin_client, db):
    response = admin_client.post(CREATE, _invitation_form(tenant=""))

    body = response.content.decode()
    assert response.status_code == 400
    assert "an invitation is accepted only from the tenant it names" in body
    assert "Required. A tenant ID (GUID)" in body
    assert not Invitation.objects.exists()


def test_the_form_describes_every_access_profile(admin_client, db):
    body = admin_client.get(CREATE).content.decode()

    assert "What each access profile asks for" in body
    assert "<dt>Full SOC service</dt>" in body
    assert "Incidents, indicators, subscription inventory and log ingestion." in body
    assert "<code>Ti.ReadWrite.All</code>" in body
    assert "Azure role <em>Monitoring Metrics Publisher</em>, assigned by the customer" in body
