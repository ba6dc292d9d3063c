"""Consent that takes time to arrive: right after an administrator consents, Entra answers
"app not found" (AADSTS700016) for a while. The first verification waits it out instead of
reporting "no access", and the landing page says Microsoft is still applying the consent.
The consent goes through the sandbox's real admin-consent endpoint (a grant through its
control API would not be delayed)."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from django.conf import settings
from django.db import connections
from django.test import Client

from consent import links
from tenants.models import Tenant, Verification
from tenants.verification.runner import run_batch
from tests.conftest import NORTHWIND, PORTAL_APP
from tests.consent.helpers import make_invitation

DELAY = 8  # seconds: long enough for several waits, short enough for the suite


def _consent_at_entra(sandbox, client: Client) -> str:
    """The customer presses "Grant admin consent" and accepts on Entra's page; the portal
    answers the redirect. Returns the landing page's path."""
    invitation = make_invitation(profile="graph-reporting")
    sandbox.control.update_application(
        PORTAL_APP, redirect_uris=[settings.PORTAL_BASE_URL + "/consent/callback/"]
    )
    to_entra = client.post(links.invitation_url(invitation).replace(
        settings.PORTAL_BASE_URL, "") + "start/")["Location"]  # fmt: skip
    accepted = requests.post(
        to_entra,
        data={"user": "admin@northwind.example", "action": "accept"},
        allow_redirects=False,
        timeout=10,
        verify=sandbox.ca_path,
    )
    assert accepted.status_code == 302, accepted.text[:300]
    callback = accepted.headers["Location"].replace(settings.PORTAL_BASE_URL, "")
    landed = client.get(callback)
    assert landed.status_code == 303, landed.content[:300]
    return landed["Location"]


@pytest.mark.django_db(transaction=True)
def test_the_first_verification_waits_for_the_consent_to_arrive(sandbox):
    sandbox.control.set_consent_propagation(DELAY, tenant=NORTHWIND)
    client = Client()
    landing = _consent_at_entra(sandbox, client)
    verification = Verification.objects.get()

    def work() -> None:
        try:
            run_batch([str(verification.code)])
        finally:
            # The batch's own threads close theirs; this thread's (the open-alert lookup)
            # must not outlive the test, or PostgreSQL cannot drop the test database.
            connections.close_all()

    worker = threading.Thread(target=work)
    worker.start()
    pages = []
    while worker.is_alive():
        pages.append(client.get(landing).content.decode())
        time.sleep(0.5)
    worker.join()
    pages.append(client.get(landing).content.decode())

    verification.refresh_from_db()
    assert verification.outcome == Verification.Outcome.VERIFIED
    assert verification.results["graph"]["retries"] >= 2
    assert Tenant.objects.get().status == Tenant.Status.VERIFIED
    assert any("Microsoft is still applying your consent" in page for page in pages)
    assert not any("could not use the consent" in page for page in pages)
    assert "everything Fabrikam Security needs works" in pages[-1]


@pytest.mark.django_db(transaction=True)
def test_after_the_window_app_not_found_is_no_access_at_once(sandbox, settings):
    settings.CONSENT_PROPAGATION_GRACE = 0
    sandbox.control.set_consent_propagation(3600, tenant=NORTHWIND)
    _consent_at_entra(sandbox, Client())
    verification = Verification.objects.get()

    (finished,) = run_batch([str(verification.code)])

    assert (finished.outcome, finished.diagnosis) == (
        Verification.Outcome.NO_ACCESS,
        "not_consented",
    )
    assert finished.results["graph"]["retries"] == 0  # no waiting outside the window
