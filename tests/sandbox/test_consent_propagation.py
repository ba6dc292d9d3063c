"""Consent that takes time to arrive: for a while after an admin consent, app-only tokens in
that tenant fail with AADSTS700016, as in Entra while the new service principal propagates.
Driven with azure-identity's ClientAssertionCredential, the portal's exchange."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientAssertionCredential, ManagedIdentityCredential

from entra_sandbox.control import ControlError
from entra_sandbox.directory import ScenarioError, load_directory, read_scenario

from .demo import DEMO_SCENARIO, GRAPH, MI_CLIENT_ID, NORTHWIND, PORTAL_APP, WOODGROVE, https

CALLBACK = "http://localhost:8000/consent/callback/"
ADMINS = {NORTHWIND: "admin@northwind.example", WOODGROVE: "admin@woodgrove.example"}


def grant_consent(sb, tenant: str) -> None:
    """An administrator accepts on the consent page."""
    query = urlencode(
        {"client_id": PORTAL_APP, "scope": GRAPH, "redirect_uri": CALLBACK, "state": "s"}
    )
    response = https(sb).post(
        f"{sb.authority}/{tenant}/v2.0/adminconsent?{query}",
        data={"user": ADMINS[tenant], "action": "accept"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302
    assert "admin_consent=True" in response.headers["Location"]


def app_token(sb, tenant: str) -> str:
    """A Graph token in `tenant`, as the portal's verification asks for one. A new
    credential each time: azure-identity caches tokens."""
    mi = ManagedIdentityCredential(client_id=MI_CLIENT_ID)
    credential = ClientAssertionCredential(
        tenant,
        PORTAL_APP,
        lambda: mi.get_token("api://AzureADTokenExchange/.default").token,
        authority=sb.authority,
        connection_verify=sb.ca_path,
    )
    return credential.get_token(GRAPH).token


def test_it_answers_700016_until_the_consent_has_propagated(app_service_env):
    sb = app_service_env
    sb.control.set_consent_propagation(30)
    grant_consent(sb, NORTHWIND)
    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        app_token(sb, NORTHWIND)
    # The directory already holds the grant; only the token endpoint does not see it yet.
    assert sb.control.directory()["tenants"][1]["service_principals"][0]["roles"]
    # Wide margins either side of the 30 s: a slow machine adds real seconds to the skew.
    sb.control.set_clock_skew(15)
    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        app_token(sb, NORTHWIND)
    sb.control.set_clock_skew(45)
    assert app_token(sb, NORTHWIND)


def test_it_applies_a_changed_delay_to_a_consent_already_given(app_service_env):
    sb = app_service_env
    sb.control.set_consent_propagation(3600)
    grant_consent(sb, NORTHWIND)
    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        app_token(sb, NORTHWIND)
    assert sb.control.set_consent_propagation(0) == {"seconds": 0, "tenants": {}}
    assert app_token(sb, NORTHWIND)


def test_it_delays_one_tenant_only_with_an_override(app_service_env):
    sb = app_service_env
    state = sb.control.set_consent_propagation(60, tenant="northwind.example")
    assert state == {"seconds": 0, "tenants": {NORTHWIND: 60}}
    grant_consent(sb, NORTHWIND)
    grant_consent(sb, WOODGROVE)
    assert app_token(sb, WOODGROVE)
    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        app_token(sb, NORTHWIND)
    sb.control.set_consent_propagation(None, tenant=NORTHWIND)
    assert app_token(sb, NORTHWIND)


def test_it_never_delays_a_grant_made_through_the_control_api(app_service_env):
    sb = app_service_env
    sb.control.set_consent_propagation(3600)
    sb.control.set_roles(NORTHWIND, {"graph": ["Organization.Read.All"]}, application=PORTAL_APP)
    assert app_token(sb, NORTHWIND)


def test_it_does_not_delay_a_revoke_after_propagation(app_service_env):
    # A consent that propagated and is then revoked is "no access" at once.
    sb = app_service_env
    grant_consent(sb, NORTHWIND)
    assert app_token(sb, NORTHWIND)
    sb.control.set_consent_propagation(3600)
    sb.control.revoke(NORTHWIND)
    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        app_token(sb, NORTHWIND)


@pytest.mark.parametrize(
    "body",
    [{"seconds": -1}, {"seconds": "5"}, {"seconds": True}, {}, {"seconds": None}],
)
def test_it_refuses_a_bad_delay_and_changes_nothing(sb, body):
    url = f"{sb.authority}/_sandbox/consent-propagation"
    response = https(sb).post(url, json=body, timeout=10)
    assert response.status_code == 400
    assert "error" in response.json()
    assert https(sb).get(url, timeout=10).json() == {"seconds": 0, "tenants": {}}


def test_it_refuses_a_delay_for_an_unknown_tenant(sb):
    with pytest.raises(ControlError) as info:
        sb.control.set_consent_propagation(5, tenant="nowhere.example")
    assert info.value.status == 404


def test_it_reads_the_delay_from_the_scenario():
    scenario = read_scenario(DEMO_SCENARIO)
    scenario.setdefault("settings", {})["consent_propagation_seconds"] = 5
    scenario["tenants"][1]["consent_propagation_seconds"] = 0
    directory = load_directory(scenario)
    assert directory.settings["consent_propagation_seconds"] == 5
    assert directory.propagation_seconds(directory.tenants[NORTHWIND]) == 0
    assert directory.propagation_seconds(directory.tenants[WOODGROVE]) == 5
    scenario["tenants"][1]["consent_propagation_seconds"] = -3
    with pytest.raises(ScenarioError, match=r"tenants\[1\].consent_propagation_seconds"):
        load_directory(scenario)
