"""The public invitation page and its "Grant admin consent" button."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from consent.models import ConsentTicket, Invitation
from tests.conftest import NORTHWIND, PORTAL_APP
from tests.consent.helpers import make_invitation, success

pytestmark = pytest.mark.django_db


def page_url(invitation: Invitation) -> str:
    return f"/consent/invite/{invitation.code}/"


def start_url(invitation: Invitation) -> str:
    return f"/consent/invite/{invitation.code}/start/"


def csp_directive(response, name: str) -> list[str]:
    for directive in response["Content-Security-Policy"].split(";"):
        parts = directive.split()
        if parts and parts[0] == name:
            return parts[1:]
    return []


def test_it_shows_who_asks_what_for_and_the_button(client, invitation, settings):
    response = client.get(page_url(invitation))
    body = response.content.decode()
    assert response.status_code == 200
    assert settings.MSSP_NAME in body
    assert "Northwind Traders" in body
    assert "Defender XDR — read-only" in body
    # Each requirement's purpose, in the customer's words.
    assert "read incidents and their alerts; nothing is changed" in body.lower()
    assert "Incident.Read.All" in body
    # Admin consent grants everything the app requests; the portal verifies the profile.
    assert "grants all of them" in body
    assert "checks that the access listed above works" in body
    assert NORTHWIND in body
    assert f'action="{start_url(invitation)}"' in body
    assert "Grant admin consent" in body
    assert 'name="csrfmiddlewaretoken"' in body


def test_it_says_which_azure_roles_consent_does_not_grant(client, db):
    invitation = make_invitation(profile="full-soc")
    body = client.get(page_url(invitation)).content.decode()
    assert "Monitoring Metrics Publisher" in body
    assert "consent does not grant it" in body


def test_it_lets_the_form_redirect_to_the_entra_sign_in_host(client, invitation, settings):
    """django-csp: form-action keeps 'self' and adds the cloud's login host, because the
    button's POST is answered with a redirect there."""
    settings.SANDBOX = {**settings.SANDBOX, "login": "http://127.0.0.1:8123"}
    response = client.get(page_url(invitation))
    assert csp_directive(response, "form-action") == ["'self'", "http://127.0.0.1:8123"]
    assert csp_directive(response, "script-src") == ["'self'"]
    assert csp_directive(response, "frame-ancestors") == ["'none'"]


def test_other_pages_keep_form_action_to_self(client, invitation):
    response = client.get(f"/consent/landing/{uuid.uuid4()}/")
    assert csp_directive(response, "form-action") == ["'self'"]


def test_it_is_private_and_sends_no_referrer_to_other_sites(client, invitation):
    """same-origin, not no-referrer: under no-referrer browsers send `Origin: null` with
    the button's POST and CSRF protection refuses it (the browser journey test shows it)."""
    response = client.get(page_url(invitation))
    assert response["Referrer-Policy"] == "same-origin"
    assert "no-store" in response["Cache-Control"]


def test_it_loads_nothing_from_elsewhere(client, invitation):
    body = client.get(page_url(invitation)).content.decode()
    for url in re.findall(r'(?:src|href|action)="([^"]*)"', body):
        assert url.startswith(("/", "#")), url
        assert not url.startswith("//"), url


def test_it_says_an_expired_invitation_has_expired(client, invitation):
    with time_machine.travel(invitation.expires_at + timedelta(seconds=1)):
        response = client.get(page_url(invitation))
    body = response.content.decode()
    assert response.status_code == 410
    assert "expired" in body
    assert "Grant admin consent" not in body
    assert "<form" not in body


def test_it_says_a_revoked_invitation_was_withdrawn(client, invitation):
    invitation.revoke(actor="admin@fabrikam-mssp.example")
    response = client.get(page_url(invitation))
    assert response.status_code == 410
    assert "withdrew" in response.content.decode()
    assert "<form" not in response.content.decode()


def test_it_points_a_used_invitation_to_its_status(client, invitation):
    _ticket, state = invitation.issue_ticket()
    client.get(success(state))
    response = client.get(page_url(invitation))
    assert response.status_code == 410
    assert f'href="/consent/landing/{invitation.code}/"' in response.content.decode()
    assert "<form" not in response.content.decode()


def test_it_answers_an_unknown_code_with_404(client, db):
    response = client.get(f"/consent/invite/{uuid.uuid4()}/")
    assert response.status_code == 404
    assert "could not find this link" in response.content.decode()
    assert client.get("/consent/invite/not-a-uuid/").status_code == 404


def test_it_accepts_only_get(client, invitation):
    assert client.post(page_url(invitation)).status_code == 405
    assert client.put(page_url(invitation)).status_code == 405


# --- "Grant admin consent" -------------------------------------------------------------


def test_it_sends_the_customer_to_entra_with_a_fresh_single_use_state(invitation, settings):
    client = Client(enforce_csrf_checks=True)
    client.get(page_url(invitation))
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post(start_url(invitation), {"csrfmiddlewaretoken": token})

    assert response.status_code == 302
    location = urlsplit(response["Location"])
    login = urlsplit(settings.SANDBOX["login"] or settings.SANDBOX["authority"])
    assert (location.scheme, location.netloc) == (login.scheme, login.netloc)
    assert location.path.endswith(f"/{NORTHWIND}/v2.0/adminconsent")
    params = parse_qs(location.query)
    assert params["client_id"] == [PORTAL_APP]
    assert params["scope"] == ["https://graph.microsoft.com/.default"]
    assert params["redirect_uri"] == [f"{settings.PORTAL_BASE_URL}/consent/callback/"]
    [state] = params["state"]

    ticket = ConsentTicket.objects.get()
    assert ticket.state_hash == ConsentTicket.hash(state)
    assert str(ticket.expected_tenant_id) == NORTHWIND
    assert ticket.used_at is None
    assert response["Referrer-Policy"] == "no-referrer"
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.actor) == (
        "consent.started",
        AuditEvent.Outcome.SUCCESS,
        "customer",
    )
    assert event.detail["invitation"] == str(invitation.code)


def test_it_refuses_the_button_without_a_csrf_token(invitation):
    client = Client(enforce_csrf_checks=True)
    client.get(page_url(invitation))
    response = client.post(start_url(invitation))
    assert response.status_code == 403
    assert ConsentTicket.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="consent.").exists()


def test_it_refuses_the_button_from_another_origin(invitation, settings):
    client = Client(enforce_csrf_checks=True)
    client.get(page_url(invitation))
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post(
        start_url(invitation),
        {"csrfmiddlewaretoken": token},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert ConsentTicket.objects.count() == 0


def test_it_accepts_only_post_for_the_button(client, invitation):
    assert client.get(start_url(invitation)).status_code == 405
    assert ConsentTicket.objects.count() == 0


def test_it_gives_a_new_state_on_every_click(client, invitation):
    states = set()
    for _ in range(3):
        location = client.post(start_url(invitation))["Location"]
        states.update(parse_qs(urlsplit(location).query)["state"])
    assert len(states) == 3
    assert ConsentTicket.objects.count() == 3


def test_it_uses_organizations_when_no_tenant_is_expected(client, db):
    invitation = make_invitation(tenant=None)
    location = urlsplit(client.post(start_url(invitation))["Location"])
    assert location.path.endswith("/organizations/v2.0/adminconsent")


@pytest.mark.parametrize("close", ["expire", "revoke"])
def test_it_issues_no_state_for_a_closed_invitation(client, invitation, close):
    if close == "revoke":
        invitation.revoke(actor="admin@fabrikam-mssp.example")
    else:
        invitation.expires_at = timezone.now() - timedelta(minutes=1)
        invitation.save(update_fields=["expires_at"])
    response = client.post(start_url(invitation))
    assert response.status_code == 410
    assert ConsentTicket.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="consent.").exists()


def test_it_answers_the_button_of_an_unknown_invitation_with_404(client, db):
    assert client.post(f"/consent/invite/{uuid.uuid4()}/start/").status_code == 404
    assert ConsentTicket.objects.count() == 0


def test_it_builds_the_redirect_uri_from_configuration_not_the_host_header(
    client, invitation, settings
):
    settings.PORTAL_BASE_URL = "https://portal.fabrikam.example"
    settings.ALLOWED_HOSTS = ["*"]
    response = client.post(start_url(invitation), headers={"Host": "evil.example"})
    params = parse_qs(urlsplit(response["Location"]).query)
    assert params["redirect_uri"] == ["https://portal.fabrikam.example/consent/callback/"]
