"""The admin consent and sign-in pages, on the sandbox's https host as on Entra's (the
browser round trip is in test_consent_browser.py)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from .demo import (
    ADATUM,
    GRAPH,
    HOME,
    NORTHWIND,
    PORTAL_APP,
    TAILSPIN,
    WOODGROVE,
    claims,
    client_credentials,
    https,
    token_request,
)

CALLBACK = "http://localhost:8000/consent/callback/"


def consent_url(sb, tenant: str, version: int = 2, **params: str) -> str:
    query = {"client_id": PORTAL_APP, "redirect_uri": CALLBACK, "state": "s-123"}
    if version == 2:
        query["scope"] = GRAPH
    query.update(params)
    path = f"/{tenant}/v2.0/adminconsent" if version == 2 else f"/{tenant}/adminconsent"
    return f"{sb.login_url}{path}?{urlencode(query)}"


def submit(sb, url: str, **form: str) -> requests.Response:
    return https(sb).post(url, data=form, allow_redirects=False, timeout=10)


def redirected(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(CALLBACK)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def service_principal(sb, tenant: str) -> dict | None:
    directory = sb.control.directory()
    t = next(t for t in directory["tenants"] if t["id"] == tenant)
    return next((s for s in t["service_principals"] if s["application"] == PORTAL_APP), None)


def test_it_shows_the_app_publisher_and_permissions(sb):
    page = https(sb).get(consent_url(sb, NORTHWIND), timeout=10)
    assert page.status_code == 200
    text = page.text
    assert "Fabrikam MSSP Portal" in text
    assert "Fabrikam Security" in text
    assert "Read organization information" in text
    assert "Read all incidents" in text
    assert "admin@northwind.example" in text
    assert "admin@adatum.example" not in text  # only this tenant's users


def test_it_grants_admin_consent_and_redirects_like_entra(sb):
    url = consent_url(sb, "northwind.example")
    params = redirected(submit(sb, url, user="admin@northwind.example", action="accept"))
    assert params == {
        "admin_consent": "True",
        "tenant": NORTHWIND,
        "scope": "https://graph.microsoft.com/Organization.Read.All "
        "https://api.security.microsoft.com/Incident.Read.All "
        "https://api.securitycenter.microsoft.com/Ti.ReadWrite.All",
        "state": "s-123",
    }
    assert service_principal(sb, NORTHWIND)["roles"] == {
        "graph": ["Organization.Read.All"],
        "defender": ["Incident.Read.All"],
        "mde": ["Ti.ReadWrite.All"],
    }
    token = token_request(sb, NORTHWIND, client_credentials(sb, NORTHWIND)).json()["access_token"]
    assert claims(token)["roles"] == ["Organization.Read.All"]
    assert sb.control.counters()["by_kind"]["consent"] == 1


DEFENDER_APP_ID = "8ee8fdad-f234-4243-8f3b-15c294843740"


@pytest.mark.parametrize(
    "scope",
    [
        "https://graph.microsoft.com/.default",
        # Naming another resource's .default changes nothing: it stands for the whole
        # registration, so the app asks for Defender whatever the scope says.
        "https://management.azure.com/.default openid",
    ],
)
def test_it_refuses_the_whole_consent_when_a_requested_service_is_missing(sb, scope):
    # Tailspin has no Defender licence: no service principal for Defender XDR or MDE.
    url = consent_url(sb, TAILSPIN, scope=scope)
    page = https(sb).get(url, timeout=10)
    assert page.text.count("not available in this organization") == 2
    params = redirected(submit(sb, url, user="admin@tailspin.example", action="accept"))
    assert set(params) == {"admin_consent", "tenant", "error", "error_description", "state"}
    assert (params["admin_consent"], params["tenant"], params["state"]) == (
        "True",
        TAILSPIN,
        "s-123",
    )
    assert params["error"] == "invalid_client"
    first_line = params["error_description"].split("\r\n")[0]
    assert first_line == (
        f"AADSTS650052: The app is trying to access a service '{DEFENDER_APP_ID}'(Microsoft "
        f"Threat Protection (Defender XDR)) that your organization '{TAILSPIN}' lacks a "
        "service principal for. Contact your IT Admin to review the configuration of your "
        "service subscriptions or consent to the application in order to create the required "
        "service principal."
    )
    assert "Trace ID: " in params["error_description"]
    # Nothing is granted, not even the Graph permission the tenant could have granted.
    assert service_principal(sb, TAILSPIN) is None
    response = token_request(sb, TAILSPIN, client_credentials(sb, TAILSPIN))
    assert response.json()["error_codes"] == [700016]


def test_it_refuses_a_missing_service_on_the_v1_endpoint_in_v1_shape(sb):
    url = consent_url(sb, TAILSPIN, version=1)
    params = redirected(submit(sb, url, user="admin@tailspin.example", action="accept"))
    assert set(params) == {"error", "error_description"}
    assert params["error"] == "invalid_client"
    assert params["error_description"].startswith("AADSTS650052: ")
    assert service_principal(sb, TAILSPIN) is None


def test_it_grants_the_registration_once_the_service_is_dropped_from_it(sb):
    # What an MSSP can do for a customer without Defender: an app (here the same one,
    # changed) that does not ask for it.
    sb.control.update_application(PORTAL_APP, permissions={"graph": ["Organization.Read.All"]})
    url = consent_url(sb, TAILSPIN)
    params = redirected(submit(sb, url, user="admin@tailspin.example", action="accept"))
    assert params["scope"] == "https://graph.microsoft.com/Organization.Read.All"
    assert service_principal(sb, TAILSPIN)["roles"] == {"graph": ["Organization.Read.All"]}


def test_it_grants_no_application_permission_for_dynamic_scopes(sb):
    # Application permissions come only through /.default; a named permission is a
    # delegated one, which gives an app-only token no role.
    scope = "https://graph.microsoft.com/Organization.Read.All"
    url = consent_url(sb, NORTHWIND, scope=scope)
    assert "Delegated permission" in https(sb).get(url, timeout=10).text
    params = redirected(submit(sb, url, user="admin@northwind.example", action="accept"))
    assert (params["admin_consent"], params["scope"]) == ("True", scope)
    assert service_principal(sb, NORTHWIND)["roles"] == {}
    token = token_request(sb, NORTHWIND, client_credentials(sb, NORTHWIND)).json()["access_token"]
    assert "roles" not in claims(token)


def test_it_refuses_a_dynamic_scope_on_a_missing_service(sb):
    url = consent_url(sb, TAILSPIN, scope="https://api.securitycenter.microsoft.com/Ti.Read.All")
    params = redirected(submit(sb, url, user="admin@tailspin.example", action="accept"))
    assert params["error_description"].startswith(
        "AADSTS650052: The app is trying to access a service "
        "'fc780465-2017-40d4-a0c5-307022471b92'(WindowsDefenderATP (Defender for Endpoint))"
    )


def test_it_offers_every_tenant_under_organizations(sb):
    url = consent_url(sb, "organizations")
    assert "admin@adatum.example" in https(sb).get(url, timeout=10).text
    params = redirected(submit(sb, url, user="admin@woodgrove.example", action="accept"))
    assert params["tenant"] == WOODGROVE


def test_it_answers_the_v1_endpoint_in_v1_shape(sb):
    url = consent_url(sb, "common", version=1)
    params = redirected(submit(sb, url, user="admin@adatum.example", action="accept"))
    assert params == {"tenant": ADATUM, "state": "s-123", "admin_consent": "True"}
    cancel = redirected(submit(sb, url, action="cancel"))
    assert cancel == {
        "error": "permission_denied",
        "error_description": "The admin canceled the request",
    }


def test_it_redirects_a_cancel_with_65004(sb):
    params = redirected(submit(sb, consent_url(sb, NORTHWIND), action="cancel"))
    assert params["error"] == "consent_required"
    assert params["error_description"].startswith("AADSTS65004: ")
    assert (params["admin_consent"], params["state"]) == ("True", "s-123")
    assert service_principal(sb, NORTHWIND) is None


def test_it_stops_a_non_admin(sb):
    url = consent_url(sb, NORTHWIND)
    page = submit(sb, url, user="user@northwind.example", action="accept")
    assert page.status_code == 403
    assert "Need admin approval" in page.text
    assert "AADSTS90094" in page.text
    assert service_principal(sb, NORTHWIND) is None
    params = redirected(submit(sb, url, user="user@northwind.example", action="decline"))
    assert params["error"] == "access_denied"
    assert params["state"] == "s-123"


def test_it_refuses_a_user_of_another_tenant(sb):
    page = submit(sb, consent_url(sb, NORTHWIND), user="admin@adatum.example", action="accept")
    assert page.status_code == 400
    assert service_principal(sb, ADATUM) is None


@pytest.mark.parametrize(
    ("tenant", "params", "code"),
    [
        (NORTHWIND, {"redirect_uri": "https://evil.example/<script>"}, "AADSTS50011"),
        (NORTHWIND, {"redirect_uri": CALLBACK + "x"}, "AADSTS50011"),
        ("common", {}, "AADSTS90130"),
        ("nowhere.example", {}, "AADSTS90002"),
        (NORTHWIND, {"client_id": "99999999-9999-4999-8999-999999999999"}, "AADSTS700016"),
    ],
    ids=["foreign-uri", "near-miss-uri", "common", "unknown-tenant", "unknown-app"],
)
def test_it_shows_an_error_page_instead_of_redirecting(sb, tenant, params, code):
    url = consent_url(sb, tenant, **params)
    for response in (
        https(sb).get(url, timeout=10),
        submit(sb, url, user="admin@northwind.example", action="accept"),
    ):
        assert response.status_code == 400
        assert "Location" not in response.headers
        assert code in response.text
        assert "<script>" not in response.text
    assert service_principal(sb, NORTHWIND) is None


def test_it_requires_a_scope_on_v2(sb):
    params = redirected(
        https(sb).get(consent_url(sb, NORTHWIND, scope=""), allow_redirects=False, timeout=10)
    )
    assert params["error"] == "invalid_request"
    assert "'scope'" in params["error_description"]


def test_it_refuses_the_wrong_authorize_requests(sb):
    base = {
        "client_id": PORTAL_APP,
        "redirect_uri": "http://localhost:8000/accounts/callback/",
        "state": "z",
    }
    url = f"{sb.login_url}/{HOME}/oauth2/v2.0/authorize"

    def get(**params: str) -> requests.Response:
        return https(sb).get(url, params={**base, **params}, allow_redirects=False, timeout=10)

    assert get(response_type="code").status_code == 200
    token = parse_qs(urlsplit(get(response_type="token").headers["Location"]).query)
    assert token["error"] == ["unsupported_response_type"]
    silent = parse_qs(urlsplit(get(response_type="code", prompt="none").headers["Location"]).query)
    assert silent["error"] == ["login_required"]
    bad_pkce = get(response_type="code", code_challenge="short", code_challenge_method="S256")
    assert parse_qs(urlsplit(bad_pkce.headers["Location"]).query)["error"] == ["invalid_request"]
    unregistered = get(response_type="code", redirect_uri="http://localhost:9999/")
    assert unregistered.status_code == 400
    assert "AADSTS50011" in unregistered.text


def test_it_redirects_after_sign_out_only_to_registered_uris(sb):
    url = f"{sb.login_url}/{HOME}/oauth2/v2.0/logout"
    ok = https(sb).get(
        url, params={"post_logout_redirect_uri": CALLBACK}, allow_redirects=False, timeout=10
    )
    assert ok.headers["Location"] == CALLBACK
    other = https(sb).get(
        url,
        params={"post_logout_redirect_uri": "https://evil.example/"},
        allow_redirects=False,
        timeout=10,
    )
    assert other.status_code == 200
