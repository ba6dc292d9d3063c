"""A re-consent invitation for a known tenant, and onboarding an offboarded tenant again."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from consent.models import Invitation
from tests.conftest import NORTHWIND


def test_it_needs_a_new_invitation_to_onboard_an_offboarded_tenant_again(
    admin_client, northwind, invitation
):
    old_link = reverse("consent:invitation", args=[invitation.code])
    assert Client().get(old_link).status_code == 200
    admin_client.post(reverse("console:offboard", args=[northwind.code]), {"confirm": "on"})

    # The old link is closed; no re-consent invitation for an offboarded tenant...
    assert Client().get(old_link).status_code == 410
    response = admin_client.post(reverse("console:invite", args=[northwind.code]))
    assert response.status_code == 302
    assert Invitation.objects.count() == 1
    # ... a new invitation, made on purpose.
    page = admin_client.get(reverse("console:detail", args=[northwind.code])).content.decode()
    assert reverse("console:invitation_create") in page
    assert (
        admin_client.post(
            reverse("console:invitation_create"),
            {
                "customer_name": "Northwind Traders",
                "tenant": NORTHWIND,
                "access_profile": "defender-xdr-readonly",
                "days": 14,
            },
        ).status_code
        == 302
    )
    new = Invitation.objects.exclude(pk=invitation.pk).get()
    assert new.is_usable
    assert Client().get(reverse("consent:invitation", args=[new.code])).status_code == 200


def test_it_creates_no_second_re_consent_link_while_one_is_usable(admin_client, northwind):
    invite = reverse("console:invite", args=[northwind.code])
    assert admin_client.post(invite).status_code == 302
    first = Invitation.objects.get()

    response = admin_client.post(invite, follow=True)

    assert Invitation.objects.get() == first
    assert f"No invitation created. An open invitation for tenant {NORTHWIND}" in (
        response.content.decode()
    )
