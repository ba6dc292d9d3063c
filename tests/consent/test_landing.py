"""The landing page: what was recorded, what happens next, and the access check as it runs."""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import OperationalError, connection
from django.template.loader import render_to_string
from django.utils import timezone

from consent.models import Invitation
from tenants.models import Tenant, Verification
from tests.conftest import NORTHWIND
from tests.consent.helpers import issue, make_invitation, success

pytestmark = pytest.mark.django_db

REFRESH = '<meta http-equiv="refresh"'


@pytest.fixture
def consented(client, invitation) -> Invitation:
    """Northwind's invitation after its administrator accepted at Microsoft."""
    assert client.get(success(issue(invitation))).status_code == 303
    invitation.refresh_from_db()
    return invitation


def landing_url(invitation: Invitation) -> str:
    return f"/consent/landing/{invitation.code}/"


def finish(verification: Verification, outcome: str) -> None:
    verification.state = Verification.State.DONE
    verification.outcome = outcome
    verification.finished_at = timezone.now()
    verification.save(update_fields=["state", "outcome", "finished_at"])


def test_it_says_what_was_recorded_and_what_happens_next(client, consented):
    response = client.get(landing_url(consented))
    body = response.content.decode()
    assert response.status_code == 200
    assert "your consent is recorded" in body
    assert NORTHWIND in body
    assert "Northwind Traders" in body
    assert "Defender XDR — read-only" in body
    assert "Until that check succeeds, nothing is considered connected" in body


def test_it_rechecks_itself_while_the_verification_is_queued_or_running(client, consented):
    body = client.get(landing_url(consented)).content.decode()
    assert "Waiting to start" in body
    assert REFRESH in body

    verification = Verification.objects.get()
    verification.state = Verification.State.RUNNING
    verification.save(update_fields=["state"])
    body = client.get(landing_url(consented)).content.decode()
    assert "Checking now" in body
    assert REFRESH in body


@pytest.mark.parametrize(
    ("outcome", "says"),
    [
        (Verification.Outcome.VERIFIED, "everything Fabrikam Security needs works"),
        (Verification.Outcome.INCOMPLETE, "part of the access is missing"),
        (Verification.Outcome.NO_ACCESS, "could not use the consent"),
        (Verification.Outcome.PLATFORM_ERROR, "a problem on Fabrikam Security's side"),
        (Verification.Outcome.TRANSIENT, "Microsoft was busy"),
    ],
)
def test_it_stops_rechecking_and_says_the_outcome_once_done(
    client, consented, settings, outcome, says
):
    settings.MSSP_NAME = "Fabrikam Security"
    finish(Verification.objects.get(), outcome)
    body = client.get(landing_url(consented)).content.decode()
    assert says in body
    assert REFRESH not in body


def test_it_shows_the_newest_verification(client, consented):
    finish(Verification.objects.get(), Verification.Outcome.TRANSIENT)
    tenant = Tenant.objects.get()
    tenant.request_verification(Verification.Trigger.SCHEDULE)
    body = client.get(landing_url(consented)).content.decode()
    assert "Waiting to start" in body
    assert "Microsoft was busy" not in body


def test_the_verification_fragment_renders_from_tenant_and_verification_alone(consented):
    """The fragment is reused elsewhere (and enriched later): its context is just these."""
    tenant = Tenant.objects.get()
    html = render_to_string(
        "consent/_verification.html",
        {"tenant": tenant, "verification": tenant.verifications.get()},
    )
    assert "Waiting to start" in html
    html = render_to_string("consent/_verification.html", {"tenant": tenant, "verification": None})
    assert "Not started yet" in html


def test_it_is_private_sends_no_referrer_and_loads_nothing_from_elsewhere(client, consented):
    """A12: Referrer-Policy: no-referrer, no-store, no external src/href."""
    response = client.get(landing_url(consented))
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]
    for url in re.findall(r'(?:src|href|action)="([^"]*)"', response.content.decode()):
        assert url.startswith(("/", "#")) and not url.startswith("//"), url


@pytest.mark.parametrize("target", ["https://evil.example", "//evil.example", "/\\evil.example"])
def test_it_never_redirects_off_site(client, consented, target):
    """A11: a `next` parameter is ignored; the landing page redirects nowhere."""
    response = client.get(landing_url(consented), {"next": target})
    assert response.status_code == 200
    assert "Location" not in response
    assert "evil.example" not in response.content.decode()


def test_it_answers_404_before_consent_and_for_unknown_codes(client, db):
    invitation = make_invitation()
    assert client.get(landing_url(invitation)).status_code == 404
    assert client.get(f"/consent/landing/{uuid.uuid4()}/").status_code == 404


def test_it_accepts_only_get(client, consented):
    assert client.post(landing_url(consented)).status_code == 405


def test_it_answers_503_without_a_traceback_when_the_database_is_down(client, consented):
    """E10: a database outage gets a "reload in a minute" page."""

    def database_down(execute, sql, params, many, context):
        raise OperationalError("connection refused")

    with connection.execute_wrapper(database_down):
        response = client.get(landing_url(consented))
    assert response.status_code == 503
    assert "Reload it in a minute" in response.content.decode()
    assert "OperationalError" not in response.content.decode()
