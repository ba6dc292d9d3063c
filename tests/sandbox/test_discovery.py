"""OIDC discovery, JWKS and instance discovery, as msal reads them."""

from __future__ import annotations

import ssl

import jwt
import msal
import pytest
import requests

from .demo import HOME, NORTHWIND, PORTAL_APP, client_credentials, consent, token_request


def get(sb, path: str, **params) -> requests.Response:
    return requests.get(f"{sb.authority}{path}", params=params, verify=sb.ca_path, timeout=10)


def test_it_publishes_the_tenant_configuration(sb):
    for ref in (HOME, "fabrikam-mssp.example"):
        config = get(sb, f"/{ref}/v2.0/.well-known/openid-configuration").json()
        assert config["issuer"] == f"{sb.authority}/{HOME}/v2.0"
        assert config["token_endpoint"] == f"{sb.authority}/{HOME}/oauth2/v2.0/token"
        # The browser pages are on the token endpoint's host, as in Entra.
        assert config["authorization_endpoint"] == f"{sb.authority}/{HOME}/oauth2/v2.0/authorize"
        assert config["end_session_endpoint"] == f"{sb.authority}/{HOME}/oauth2/v2.0/logout"
        assert config["jwks_uri"] == f"{sb.authority}/{HOME}/discovery/v2.0/keys"
    assert sb.login_url == sb.authority


def test_it_publishes_a_templated_issuer_for_organizations(sb):
    config = get(sb, "/organizations/v2.0/.well-known/openid-configuration").json()
    assert config["issuer"] == f"{sb.authority}/{{tenantid}}/v2.0"
    assert config["token_endpoint"].endswith("/organizations/oauth2/v2.0/token")


def test_it_publishes_the_v1_metadata_whose_issuer_and_keys_validate_v1_tokens(sb):
    consent(sb, NORTHWIND)
    token = token_request(sb, NORTHWIND, client_credentials(sb, NORTHWIND)).json()["access_token"]
    for ref in (NORTHWIND, "northwind.example"):
        config = get(sb, f"/{ref}/.well-known/openid-configuration").json()
        # Plays https://sts.windows.net/{tid}/, the issuer of v1 access tokens.
        assert config["issuer"] == f"{sb.authority}/{NORTHWIND}/"
        assert config["token_endpoint"] == f"{sb.authority}/{NORTHWIND}/oauth2/token"
        assert config["authorization_endpoint"] == f"{sb.authority}/{NORTHWIND}/oauth2/authorize"
        assert config["microsoft_multi_refresh_token"] is True
    client = jwt.PyJWKClient(
        config["jwks_uri"], ssl_context=ssl.create_default_context(cafile=sb.ca_path)
    )
    claims = jwt.decode(
        token,
        client.get_signing_key_from_jwt(token).key,
        algorithms=config["id_token_signing_alg_values_supported"],
        audience="https://graph.microsoft.com",
        issuer=config["issuer"],
    )
    assert (claims["ver"], claims["tid"]) == ("1.0", NORTHWIND)
    assert sb.control.counters()["by_kind"]["discovery"] == 2


def test_it_publishes_a_templated_v1_issuer_for_common(sb):
    for alias in ("common", "organizations"):
        config = get(sb, f"/{alias}/.well-known/openid-configuration").json()
        assert config["issuer"] == f"{sb.authority}/{{tenantid}}/"
        assert config["token_endpoint"] == f"{sb.authority}/{alias}/oauth2/token"


def test_it_refuses_discovery_of_an_unknown_tenant_with_90002(sb):
    for path in ("/v2.0/.well-known/openid-configuration", "/.well-known/openid-configuration"):
        response = get(sb, f"/deleted.example{path}")
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_tenant"
        assert response.json()["error_codes"] == [90002]


def test_it_serves_keys_that_verify_its_tokens(sb):
    consent(sb, NORTHWIND)
    token = token_request(sb, NORTHWIND, client_credentials(sb, NORTHWIND)).json()["access_token"]
    client = jwt.PyJWKClient(
        f"{sb.authority}/common/discovery/v2.0/keys",
        ssl_context=ssl.create_default_context(cafile=sb.ca_path),
    )
    key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token, key.key, algorithms=["RS256"], audience="https://graph.microsoft.com"
    )
    assert claims["tid"] == NORTHWIND
    assert get(sb, f"/{NORTHWIND}/discovery/v2.0/keys").json()["keys"][0]["kid"] == key.key_id


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_it_answers_instance_discovery_in_both_shapes(sb, version):
    body = get(
        sb,
        "/common/discovery/instance",
        **{
            "api-version": version,
            "authorization_endpoint": f"{sb.authority}/{HOME}/oauth2/v2.0/authorize",
        },
    ).json()
    assert (
        body["tenant_discovery_endpoint"]
        == f"{sb.authority}/{HOME}/v2.0/.well-known/openid-configuration"
    )
    assert body["metadata"][0]["aliases"]


def _msal_app(sb, tenant: str) -> msal.ConfidentialClientApplication:
    session = requests.Session()
    session.verify = sb.ca_path
    session.trust_env = False
    return msal.ConfidentialClientApplication(
        PORTAL_APP,
        client_credential={"client_assertion": lambda: "unused"},
        authority=f"{sb.authority}/{tenant}",
        instance_discovery=False,
        http_client=session,
    )


def test_it_lets_msal_discover_the_tenant(sb):
    app = _msal_app(sb, "northwind.example")
    assert app.authority.token_endpoint == f"{sb.authority}/{NORTHWIND}/oauth2/v2.0/token"
    assert sb.control.counters()["by_kind"]["discovery"] == 1


def test_it_makes_msal_refuse_an_unknown_tenant(sb):
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        _msal_app(sb, "0badc0de-0000-4000-8000-000000000000")
