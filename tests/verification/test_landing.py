"""The customer's landing page follows the first verification and says, in plain words, what
works and what their administrator must still do."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

from tests.conftest import ADATUM, NORTHWIND, TAILSPIN
from tests.consent.helpers import issue, make_invitation, success


def _consent_and_land(tenant_id: str, customer: str, profile: str) -> tuple[Client, str]:
    invitation = make_invitation(customer=customer, tenant=tenant_id, profile=profile)
    client = Client()
    response = client.get(success(issue(invitation), tenant=tenant_id))
    assert response.status_code == 303
    return client, response["Location"]


@pytest.mark.django_db(transaction=True)
def test_the_landing_page_follows_the_check_and_lists_what_is_left(sandbox, consent):
    consent(TAILSPIN)
    client, landing = _consent_and_land(TAILSPIN, "Tailspin Toys", "full-soc")
    assert "Waiting to start" in client.get(landing).content.decode()

    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    body = client.get(landing).content.decode()

    assert "part of the access is missing" in body
    assert "Already working: Microsoft Graph." in body
    assert "What your administrator still needs to do:" in body
    assert "Microsoft Defender XDR is not available in your organisation yet" in body
    assert "assign the role \u201cReader\u201d" in body
    assert 'http-equiv="refresh"' not in body
    for internal in ("AADSTS", "federated", "token", "500011"):
        assert internal not in body


@pytest.mark.django_db(transaction=True)
def test_the_landing_page_says_when_everything_works(sandbox, consent):
    consent(NORTHWIND)
    client, landing = _consent_and_land(NORTHWIND, "Northwind Traders", "defender-xdr-readonly")

    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    body = client.get(landing).content.decode()

    assert "everything Fabrikam Security needs works" in body
    assert "What your administrator still needs to do" not in body


@pytest.mark.django_db(transaction=True)
def test_the_landing_page_asks_for_consent_again_when_none_is_found(sandbox, settings):
    # A forged or premature callback: Entra knows no consent in Adatum. Past the propagation
    # grace (tests/verification/test_consent_propagation.py covers the window itself; with
    # the default 180 s this test waited it out in full).
    settings.CONSENT_PROPAGATION_GRACE = 0
    client, landing = _consent_and_land(ADATUM, "Adatum", "defender-xdr-readonly")

    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    body = client.get(landing).content.decode()

    assert "could not use the consent in your tenant" in body
    assert (
        "We could not find Fabrikam Security&#x27;s application, \u201cFabrikam MSSP Portal\u201d "
        "(application id c4b1f0de-6a3e-4f27-8d59-2e8a7c1b9f30), in your organisation"
    ) in body
