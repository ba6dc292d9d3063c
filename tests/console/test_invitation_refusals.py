"""Staff see on the invitation page when Microsoft refused its consent for a missing
service (AADSTS650052), named in our words."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from tests.conftest import NORTHWIND
from tests.consent.helpers import callback_url, issue, make_invitation


def _refused(invitation, resource_app_id: str) -> None:
    description = (
        f"AADSTS650052: The app is trying to access a service '{resource_app_id}'(x) that "
        f"your organization '{NORTHWIND}' lacks a service principal for."
    )
    response = Client().get(
        callback_url(
            ("admin_consent", "True"),
            ("tenant", NORTHWIND),
            ("error", "invalid_client"),
            ("error_description", description),
            ("state", issue(invitation)),
        )
    )
    assert response.status_code == 400


def test_the_invitation_page_names_the_service_microsoft_found_missing(admin_client, db):
    invitation = make_invitation()
    _refused(invitation, "8ee8fdad-f234-4243-8f3b-15c294843740")

    body = admin_client.get(reverse("console:invitation", args=[invitation.code])).content
    text = body.decode()
    assert "Microsoft refused the consent on" in text
    assert "the customer&rsquo;s tenant has no Microsoft Defender XDR" in text
    assert "The redirect that reported this is unproven" in text


def test_other_refusals_and_other_invitations_show_no_such_notice(admin_client, db):
    invitation, other = make_invitation(), make_invitation(customer="Other")
    _refused(other, "8ee8fdad-f234-4243-8f3b-15c294843740")
    body = admin_client.get(reverse("console:invitation", args=[invitation.code])).content
    assert b"Microsoft refused the consent on" not in body
