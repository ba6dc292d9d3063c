"""The customer's contact on an invitation: validated when created, shown on the invitation
page, copied to the tenant when the customer consents, shown on the tenant page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from consent.models import Invitation
from tenants.models import Tenant
from tests.conftest import NORTHWIND
from tests.consent.helpers import issue, success

CREATE = reverse("console:invitation_create")


def _form(**fields: object) -> dict[str, object]:
    return {
        "customer_name": "Northwind Traders",
        "tenant": NORTHWIND,
        "access_profile": "defender-xdr-readonly",
        "days": 14,
        **fields,
    }


def test_it_keeps_the_contact_and_shows_it_escaped(admin_client, db):
    response = admin_client.post(
        CREATE, _form(contact_name="Ada <b>Admin</b>", contact_email="ada@NorthWind.Example")
    )

    invitation = Invitation.objects.get()
    assert response.status_code == 302
    assert (invitation.contact_name, invitation.contact_email) == (
        "Ada <b>Admin</b>",
        "ada@northwind.example",
    )
    page = admin_client.get(response.url).content.decode()
    assert "Ada &lt;b&gt;Admin&lt;/b&gt;" in page
    assert "ada@northwind.example" in page


def test_it_creates_an_invitation_without_a_contact(admin_client, db):
    assert admin_client.post(CREATE, _form()).status_code == 302
    invitation = Invitation.objects.get()
    assert (invitation.contact_name, invitation.contact_email) == ("", "")


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"contact_email": "not-an-address"}, "contact_email"),
        ({"contact_email": "ada@"}, "contact_email"),
        ({"contact_email": "ada@x.example", "contact_name": "Ada\u202e"}, "contact_name"),
        ({"contact_name": "Ada Admin"}, "__all__"),  # a name and nowhere to write to
    ],
)
def test_it_rejects_a_bad_contact(admin_client, db, fields, field):
    response = admin_client.post(CREATE, _form(**fields))

    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert not Invitation.objects.exists()


def test_consent_copies_the_contact_to_the_tenant_page(client, admin_client, invitation):
    invitation.contact_name, invitation.contact_email = "Ada Admin", "ada@northwind.example"
    invitation.save(update_fields=["contact_name", "contact_email"])

    assert client.get(success(issue(invitation))).status_code == 303

    tenant = Tenant.objects.get()
    assert (tenant.contact_name, tenant.contact_email) == ("Ada Admin", "ada@northwind.example")
    page = admin_client.get(reverse("console:detail", args=[tenant.code])).content.decode()
    assert "Ada Admin" in page
    assert "ada@northwind.example" in page


def test_a_re_consent_without_a_contact_keeps_the_known_one(client, invitation):
    Tenant.objects.create(
        tenant_id=NORTHWIND,
        cloud="sandbox",
        access_profile="defender-xdr-readonly",
        contact_name="Ada Admin",
        contact_email="ada@northwind.example",
    )

    assert client.get(success(issue(invitation))).status_code == 303

    tenant = Tenant.objects.get()
    assert tenant.contact_email == "ada@northwind.example"
