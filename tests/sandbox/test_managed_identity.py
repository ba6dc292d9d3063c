"""The managed identity endpoint, driven by azure-identity's ManagedIdentityCredential in
App Service and IMDS modes (configured by environment only)."""

from __future__ import annotations

import time

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential

from .demo import EXCHANGE, HOME, MI_CLIENT_ID, MI_OBJECT_ID, claims

EXCHANGE_APP_ID = "fb60f99c-7a34-4190-8149-302f77469936"


def _identity_resource_id(sb) -> str:
    return sb.control.directory()["managed_identities"][0]["resource_id"]


def _assert_exchange_token(sb, token: str) -> None:
    c = claims(token)
    assert c["aud"] == EXCHANGE_APP_ID
    assert c["iss"] == f"{sb.authority}/{HOME}/v2.0"
    assert c["sub"] == c["oid"] == MI_OBJECT_ID
    assert c["tid"] == HOME
    assert c["azp"] == MI_CLIENT_ID
    assert (c["idtyp"], c["ver"], c["azpacr"]) == ("app", "2.0", "2")
    assert c["nbf"] <= time.time() < c["exp"]


def test_it_issues_an_exchange_token_in_app_service_mode(app_service_env):
    sb = app_service_env
    token = ManagedIdentityCredential(client_id=MI_CLIENT_ID).get_token(EXCHANGE)
    _assert_exchange_token(sb, token.token)
    # Managed identity tokens live about a day.
    assert token.expires_on - time.time() > 86000


def test_it_selects_the_identity_by_object_id_in_app_service_mode(app_service_env):
    credential = ManagedIdentityCredential(identity_config={"object_id": MI_OBJECT_ID})
    _assert_exchange_token(app_service_env, credential.get_token(EXCHANGE).token)


def test_it_selects_the_identity_by_resource_id_in_app_service_mode(app_service_env):
    sb = app_service_env
    credential = ManagedIdentityCredential(
        identity_config={"resource_id": _identity_resource_id(sb)}
    )
    _assert_exchange_token(sb, credential.get_token(EXCHANGE).token)


def test_it_issues_an_exchange_token_in_imds_mode(imds_env):
    token = ManagedIdentityCredential(client_id=MI_CLIENT_ID).get_token(EXCHANGE)
    _assert_exchange_token(imds_env, token.token)
    assert imds_env.control.counters()["by_kind"]["mi"] == 1


def test_it_selects_the_identity_by_object_and_resource_id_in_imds_mode(imds_env):
    sb = imds_env
    for config in ({"object_id": MI_OBJECT_ID}, {"resource_id": _identity_resource_id(sb)}):
        token = ManagedIdentityCredential(identity_config=config).get_token(EXCHANGE)
        _assert_exchange_token(sb, token.token)


def test_it_issues_resource_tokens_to_the_identity(app_service_env):
    token = ManagedIdentityCredential(client_id=MI_CLIENT_ID).get_token(
        "https://graph.microsoft.com/.default"
    )
    c = claims(token.token)
    assert (c["aud"], c["appid"], c["tid"], c["ver"]) == (
        "https://graph.microsoft.com",
        MI_CLIENT_ID,
        HOME,
        "1.0",
    )


@pytest.mark.parametrize("env", ["app_service_env", "imds_env"])
@pytest.mark.parametrize(
    "scope", ["https://management.azure.com//.default", "https://management.azure.com/.default"]
)
def test_it_puts_the_resource_in_aud_exactly_as_requested(env, scope, request):
    sb = request.getfixturevalue(env)
    # azure-identity turns the scope into `resource` by cutting "/.default": the first
    # scope asks for `https://management.azure.com/`, the second for the name without "/".
    resource = scope.removesuffix("/.default")
    token = ManagedIdentityCredential(client_id=MI_CLIENT_ID).get_token(scope).token
    assert claims(token)["aud"] == resource
    # The Azure Resource Manager probe accepts both spellings, as ARM does.
    response = requests.get(
        f"{sb.resource_urls['arm']}/subscriptions",
        params={"api-version": "2022-12-01"},
        headers={"Authorization": f"Bearer {token}"},
        verify=sb.ca_path,
        timeout=10,
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("env", ["app_service_env", "imds_env"])
def test_it_refuses_an_unknown_identity(env, request):
    request.getfixturevalue(env)
    credential = ManagedIdentityCredential(client_id="00000000-1111-2222-3333-444444444444")
    with pytest.raises(ClientAuthenticationError):
        credential.get_token(EXCHANGE)


def test_it_answers_imds_with_string_fields(sb):
    response = requests.get(
        f"{sb.imds_url}/metadata/identity/oauth2/token",
        params={
            "api-version": "2018-02-01",
            "resource": "api://AzureADTokenExchange",
            "client_id": MI_CLIENT_ID,
        },
        headers={"Metadata": "true"},
        timeout=10,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == "86399"
    assert all(isinstance(v, str) for v in body.values())
    assert body["resource"] == "api://AzureADTokenExchange"


def test_it_requires_the_metadata_header_on_imds(sb):
    response = requests.get(
        f"{sb.imds_url}/metadata/identity/oauth2/token",
        params={
            "api-version": "2018-02-01",
            "resource": "api://AzureADTokenExchange",
            "client_id": MI_CLIENT_ID,
        },
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_it_requires_the_identity_header_on_app_service(sb):
    response = requests.get(
        sb.identity_endpoint,
        params={
            "api-version": "2019-08-01",
            "resource": "api://AzureADTokenExchange",
            "client_id": MI_CLIENT_ID,
        },
        headers={"X-IDENTITY-HEADER": "wrong"},
        timeout=10,
    )
    assert response.status_code == 401
    assert set(response.json()) == {"statusCode", "message", "correlationId"}


def test_it_requires_an_identity_selector(sb):
    response = requests.get(
        sb.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": "api://AzureADTokenExchange"},
        headers={"X-IDENTITY-HEADER": sb.identity_header},
        timeout=10,
    )
    assert response.status_code == 400
