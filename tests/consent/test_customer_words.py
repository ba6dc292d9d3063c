"""What the customer's pages say once a verification has finished: the tenant's state and
the steps left, the name Entra shows for the app, Azure role steps with their scope and a
link, and no thanks or "what happens next" that the state no longer supports."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from consent.models import Invitation
from tenants.models import Verification
from tests.consent.helpers import callback_url, issue, make_invitation, success

pytestmark = pytest.mark.django_db

APP = (
    "&ldquo;Fabrikam MSSP Portal&rdquo; "
    "(application id <code>c4b1f0de-6a3e-4f27-8d59-2e8a7c1b9f30</code>)"
)


@pytest.fixture
def full_soc(client) -> Invitation:
    """Fabrikam's full-SOC invitation for Northwind, after its administrator accepted."""
    invitation = make_invitation(profile="full-soc")
    assert client.get(success(issue(invitation))).status_code == 303
    invitation.refresh_from_db()
    return invitation


def finish(outcome: str, key: str, results: dict | None = None) -> None:
    verification = Verification.objects.get()
    verification.state = Verification.State.DONE
    verification.outcome = outcome
    verification.diagnosis = key
    verification.results = results or {}
    verification.finished_at = timezone.now()
    verification.save()


NO_AZURE_ROLES = {
    "graph": {"diagnosis": "verified"},
    "defender": {"diagnosis": "verified"},
    "mde": {"diagnosis": "verified"},
    "arm": {"diagnosis": "arm_no_subscriptions"},
    "loganalytics": {"diagnosis": "rbac_role_missing"},
}


def text(html: str) -> str:
    return re.sub(r"\s+", " ", html)


def test_a_used_invitation_shows_the_tenant_state_and_the_steps_left(client, full_soc):
    finish(Verification.Outcome.INCOMPLETE, "arm_no_subscriptions", NO_AZURE_ROLES)

    response = client.get(f"/consent/invite/{full_soc.code}/")

    body = text(response.content.decode())
    assert response.status_code == 410
    assert "Consent was already given" in body
    assert "Nothing more is needed" not in body
    assert "Done: part of the access is missing." in body
    assert "What your administrator still needs to do:" in body
    assert (
        "open Subscriptions → each subscription we are to see → Access control (IAM) → Add "
        "role assignment, and assign the role \u201cReader\u201d"
    ) in body


def test_a_used_invitation_of_a_verified_tenant_says_nothing_is_left(client, full_soc):
    finish(Verification.Outcome.VERIFIED, "verified")

    body = text(client.get(f"/consent/invite/{full_soc.code}/").content.decode())

    assert "Nothing more is needed from you." in body
    assert "What your administrator still needs to do" not in body


def test_the_landing_page_drops_what_happens_next_once_the_check_finished(client, full_soc):
    landing = f"/consent/landing/{full_soc.code}/"
    assert "What happens next" in client.get(landing).content.decode()

    finish(Verification.Outcome.VERIFIED, "verified")

    body = client.get(landing).content.decode()
    assert "What happens next" not in body
    assert "Until that check succeeds" not in body
    assert "Thank you: your organisation is connected" in body


def test_azure_role_steps_name_the_scope_and_link_to_it_once_each(client, full_soc):
    finish(Verification.Outcome.INCOMPLETE, "arm_no_subscriptions", NO_AZURE_ROLES)

    body = text(client.get(f"/consent/landing/{full_soc.code}/").content.decode())

    assert "One more step" not in body
    assert "part of the access still needs a step from you" in body
    assert (
        "For Azure Resource Manager: in the Azure portal, open Subscriptions → each "
        "subscription we are to see → Access control (IAM) → Add role assignment, and assign "
        "the role \u201cReader\u201d to the application \u201cFabrikam MSSP Portal\u201d"
    ) in body
    assert (
        "open Data collection rules → your rule → Access control (IAM) → Add role assignment, "
        "and assign the role \u201cMonitoring Metrics Publisher\u201d"
    ) in body
    assert (
        'href="https://portal.azure.com/#view/Microsoft_Azure_Billing/SubscriptionsBladeV2"' in body
    )
    assert (
        'href="https://portal.azure.com/#browse/microsoft.insights%2Fdatacollectionrules"' in body
    )
    assert "Already working: Microsoft Graph, Microsoft Defender XDR" in body


def test_a_disabled_app_is_not_thanked_for_and_is_named_as_entra_shows_it(client, full_soc):
    finish(Verification.Outcome.NO_ACCESS, "app_disabled")

    body = text(client.get(f"/consent/landing/{full_soc.code}/").content.decode())

    assert "Thank you" not in body
    assert "Your consent is recorded, but Fabrikam Security cannot use it yet" in body
    assert "Enterprise applications \u2192 \u201cFabrikam MSSP Portal\u201d" in body
    assert "in your tenant. Fabrikam Security will contact you" not in body
    assert "Done: Fabrikam Security could not use the consent in your tenant." in body


def test_the_invitation_names_the_app_as_entra_shows_it_and_the_profile_once(client, db):
    invitation = make_invitation(profile="full-soc")

    body = text(client.get(f"/consent/invite/{invitation.code}/").content.decode())

    assert f"Microsoft shows Fabrikam Security&rsquo;s application as {APP}" in body
    assert "Enterprise applications &rarr; Fabrikam MSSP Portal" in body
    assert "service service" not in body
    assert "To run <strong>Full SOC service</strong> for you" in body


def test_without_a_display_name_the_customer_gets_the_application_id(client, db, settings):
    settings.ENTRA_APP_DISPLAY_NAME = ""
    invitation = make_invitation()

    body = text(client.get(f"/consent/invite/{invitation.code}/").content.decode())

    assert (
        "application as the application with id <code>c4b1f0de-6a3e-4f27-8d59-2e8a7c1b9f30</code>"
        in body
    )


def test_a_refused_app_is_named_as_entra_shows_it_on_the_declined_page(client, db):
    invitation = make_invitation()
    url = callback_url(
        ("error", "unauthorized_client"),
        ("error_description", "AADSTS7000112: Application is disabled."),
        ("state", issue(invitation)),
    )

    body = text(client.get(url).content.decode())

    assert "<h1>Microsoft would not offer the application to your organisation</h1>" in body
    assert f"Fabrikam Security&rsquo;s application, {APP}, may be blocked or disabled" in body
    assert body.count("<h1>") == 1
