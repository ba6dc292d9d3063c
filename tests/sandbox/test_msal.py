"""msal's ConfidentialClientApplication against the sandbox: client credentials with a
client assertion, and staff sign-in with authorization code + PKCE."""

from __future__ import annotations

import re
import time

import msal
import pytest
import requests

from entra_sandbox.directory import read_scenario
from entra_sandbox.testing import run_sandbox

from .demo import (
    DEMO_SCENARIO,
    GRAPH,
    HOME,
    NORTHWIND,
    PORTAL_APP,
    claims,
    consent,
    https,
    mi_token,
    msal_app,
    sign_in,
)
from .demo import (
    SIGN_IN_CALLBACK as CALLBACK,
)

pytestmark = pytest.mark.filterwarnings("ignore:response_mode=.form_post. is recommended")


def test_it_serves_msal_client_credentials(sb):
    consent(sb, NORTHWIND)
    result = msal_app(sb, NORTHWIND).acquire_token_for_client([GRAPH])
    assert result["token_type"] == "Bearer"
    c = claims(result["access_token"])
    assert (c["tid"], c["appid"], c["roles"]) == (NORTHWIND, PORTAL_APP, ["Organization.Read.All"])


def test_it_returns_entra_errors_to_msal_unchanged(sb):
    result = msal_app(sb, "f9a2c5e8-0b7d-4c14-8e63-1a5f9d2b7c40").acquire_token_for_client([GRAPH])
    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]
    assert {"trace_id", "correlation_id", "timestamp", "error_uri"} <= set(result)


@pytest.mark.parametrize(
    ("upn", "roles"),
    [
        ("admin@fabrikam-mssp.example", ["Portal.Admin"]),
        ("operator@fabrikam-mssp.example", ["Portal.Operator"]),
        ("visitor@fabrikam-mssp.example", None),
    ],
)
def test_it_signs_staff_in_with_auth_code_and_pkce(sb, upn, roles):
    app = msal_app(sb)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=CALLBACK)
    assert flow["auth_uri"].startswith(f"{sb.authority}/{HOME}/oauth2/v2.0/authorize?")
    assert "code_challenge_method=S256" in flow["auth_uri"]
    result = app.acquire_token_by_auth_code_flow(flow, sign_in(sb, flow, upn))
    assert "error" not in result, result
    id_claims = result["id_token_claims"]  # msal already checked the nonce
    assert id_claims["aud"] == PORTAL_APP
    assert id_claims["iss"] == f"{sb.authority}/{HOME}/v2.0"
    assert (id_claims["tid"], id_claims["preferred_username"]) == (HOME, upn)
    assert id_claims.get("roles") == roles
    assert id_claims["oid"]
    assert claims(result["access_token"])["scp"]
    # client_info lets msal build the account
    assert app.get_accounts()[0]["username"] == upn


def test_it_signs_in_through_organizations(sb):
    app = msal_app(sb, "organizations")
    flow = app.initiate_auth_code_flow([], redirect_uri=CALLBACK)
    result = app.acquire_token_by_auth_code_flow(flow, sign_in(sb, flow, "user@northwind.example"))
    assert result["id_token_claims"]["tid"] == NORTHWIND


def _code_and_flow(sb):
    app = msal_app(sb)
    flow = app.initiate_auth_code_flow([], redirect_uri=CALLBACK)
    return app, flow, sign_in(sb, flow, "operator@fabrikam-mssp.example")


def _redeem(sb, code: str, verifier: str, redirect_uri: str = CALLBACK) -> requests.Response:
    return requests.post(
        f"{sb.authority}/{HOME}/oauth2/v2.0/token",
        data={
            "client_id": PORTAL_APP,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": mi_token(sb),
        },
        verify=sb.ca_path,
        timeout=10,
    )


def test_it_redeems_a_code_only_once(sb):
    app, flow, response = _code_and_flow(sb)
    assert "access_token" in app.acquire_token_by_auth_code_flow(dict(flow), response)
    again = _redeem(sb, response["code"], flow["code_verifier"])
    assert again.status_code == 400
    assert again.json()["error_codes"] == [54005]


def test_it_verifies_the_pkce_verifier(sb):
    _, flow, response = _code_and_flow(sb)
    wrong = _redeem(sb, response["code"], "x" * 43)
    assert wrong.json()["error"] == "invalid_grant"
    assert wrong.json()["error_codes"] == [501481]


def test_it_binds_the_code_to_the_redirect_uri(sb):
    _, flow, response = _code_and_flow(sb)
    wrong = _redeem(
        sb, response["code"], flow["code_verifier"], "http://localhost:8000/consent/callback/"
    )
    assert wrong.json()["error_codes"] == [70000]


def test_it_expires_codes_on_the_sandbox_clock(sb):
    _, flow, response = _code_and_flow(sb)
    sb.control.set_clock_skew(3600)
    expired = _redeem(sb, response["code"], flow["code_verifier"])
    assert expired.json()["error_codes"] == [70008]


def test_it_refuses_an_unknown_code(sb):
    assert _redeem(sb, "bogus", "x" * 43).json()["error_codes"] == [70000]


def test_it_answers_form_post_with_a_self_submitting_form(sb):
    app = msal_app(sb)
    flow = app.initiate_auth_code_flow([], redirect_uri=CALLBACK, response_mode="form_post")
    page = https(sb).post(
        flow["auth_uri"],
        data={"user": "admin@fabrikam-mssp.example"},
        allow_redirects=False,
        timeout=10,
    )
    assert page.status_code == 200
    assert f"action='{CALLBACK}'" in page.text
    fields = dict(re.findall(r"name='([^']+)' value='([^']*)'", page.text))
    assert set(fields) == {"code", "state", "session_state"}
    result = app.acquire_token_by_auth_code_flow(flow, fields)
    assert result["id_token_claims"]["roles"] == ["Portal.Admin"]


# --- refresh tokens -------------------------------------------------------------------------

OPERATOR = "operator@fabrikam-mssp.example"


def _signed_in(sb, app: msal.ConfidentialClientApplication | None = None, upn: str = OPERATOR):
    app = app or msal_app(sb)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=CALLBACK)
    result = app.acquire_token_by_auth_code_flow(flow, sign_in(sb, flow, upn))
    assert "error" not in result, result
    return app, result


def _refresh(sb, refresh_token: str, tenant: str = HOME) -> requests.Response:
    return https(sb).post(
        f"{sb.authority}/{tenant}/oauth2/v2.0/token",
        data={
            "client_id": PORTAL_APP,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "scope": "openid offline_access User.Read",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": mi_token(sb),
        },
        timeout=10,
    )


def test_it_issues_a_refresh_token_that_msal_redeems(sb):
    app, result = _signed_in(sb)
    assert result["refresh_token"]  # msal asks for offline_access by default
    [account] = app.get_accounts()
    refreshed = app.acquire_token_silent_with_error(["User.Read"], account, force_refresh=True)
    assert refreshed and "error" not in refreshed, refreshed
    assert refreshed["access_token"] != result["access_token"]
    assert claims(refreshed["access_token"])["upn"] == OPERATOR
    assert refreshed["id_token_claims"]["roles"] == ["Portal.Operator"]
    assert sb.control.counters()["by_kind"]["token"] == 2
    assert refreshed["refresh_token"] in sb.control.issued_tokens()


def test_it_issues_no_refresh_token_without_offline_access(sb):
    app = msal_app(sb, exclude_scopes=["offline_access"])  # what the portal does
    _, result = _signed_in(sb, app)
    assert "refresh_token" not in result
    assert "offline_access" not in result["scope"]


def test_it_keeps_a_used_refresh_token_valid_and_binds_it_to_its_tenant(sb):
    _, result = _signed_in(sb)
    first = _refresh(sb, result["refresh_token"])
    again = _refresh(sb, result["refresh_token"])
    assert first.status_code == again.status_code == 200
    assert first.json()["refresh_token"] != result["refresh_token"]
    elsewhere = _refresh(sb, result["refresh_token"], tenant=NORTHWIND)
    assert (elsewhere.json()["error"], elsewhere.json()["error_codes"]) == (
        "invalid_grant",
        [70000],
    )
    bogus = _refresh(sb, "not-a-refresh-token")
    assert (bogus.json()["error"], bogus.json()["error_codes"]) == ("invalid_grant", [9002313])


@pytest.mark.parametrize(("change", "code"), [("revoke", 50173), ("disable", 50057)])
def test_it_refuses_a_refresh_after_revocation_or_disabling(sb, change, code):
    app, _ = _signed_in(sb)
    if change == "revoke":
        # Revocation covers grants older than its time: move the clock past the sign-in.
        sb.control.set_clock_skew(5)
        assert sb.control.revoke_sessions(OPERATOR)["tokens_valid_from"] > 0
    else:
        assert sb.control.update_user(OPERATOR, enabled=False)["enabled"] is False
    [account] = app.get_accounts()
    refused = app.acquire_token_silent_with_error(["User.Read"], account, force_refresh=True)
    assert refused["error"] == "invalid_grant"
    assert refused["error_codes"] == [code]


def test_it_lets_a_disabled_user_sign_in_no_more(sb):
    sb.control.update_user(OPERATOR, enabled=False)
    flow = msal_app(sb).initiate_auth_code_flow([], redirect_uri=CALLBACK)
    page = https(sb).post(
        flow["auth_uri"], data={"user": OPERATOR}, allow_redirects=False, timeout=10
    )
    assert page.status_code == 400
    assert "AADSTS50057" in page.text


def test_it_expires_an_unused_refresh_token():
    scenario = read_scenario(DEMO_SCENARIO)
    scenario.setdefault("settings", {})["refresh_token_lifetime"] = 1
    with run_sandbox(scenario) as sb:
        _, result = _signed_in(sb)
        time.sleep(2.1)
        expired = _refresh(sb, result["refresh_token"])
    assert (expired.json()["error"], expired.json()["error_codes"]) == ("invalid_grant", [700082])
