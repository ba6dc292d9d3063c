"""The demo scenario's identifiers and small helpers shared by the sandbox tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import msal
import requests

DEMO_SCENARIO = Path(__file__).resolve().parents[2] / "entra_sandbox/scenarios/demo.toml"

HOME = "7d3e1c5a-2b4f-4e8a-9c61-0f5b8d2a4e17"
PORTAL_APP = "c4b1f0de-6a3e-4f27-8d59-2e8a7c1b9f30"
MI_CLIENT_ID = "5e2a9c71-3d84-4b6f-a0e2-91c7d4f8b6a2"
MI_OBJECT_ID = "a81f3d6c-0e52-4c9b-b7a4-6d2e9f1c5b83"
NORTHWIND = "2c8f4a1e-9b3d-4e6a-8f27-5d1c0b9a7e64"
TAILSPIN = "8e5b2d7f-1a4c-4f93-b6e8-3c0d9a2f1b75"
WOODGROVE = "4a7c9e2b-6d1f-4b85-a3c0-8e2f5d7b1c96"
LITWARE = "b3d6f8a1-5c2e-4a97-9d14-7f0e2b6c8a53"
LITWARE_APP = "e1f4a7c2-8b5d-4e36-9a0f-3d6c1b8e5f29"
ADATUM = "f9a2c5e8-0b7d-4c14-8e63-1a5f9d2b7c40"

GRAPH = "https://graph.microsoft.com/.default"
DEFENDER = "https://api.security.microsoft.com/.default"
MDE = "https://api.securitycenter.microsoft.com/.default"
ARM = "https://management.azure.com/.default"
EXCHANGE = "api://AzureADTokenExchange/.default"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

PORTAL_ROLES = {
    "graph": ["Organization.Read.All"],
    "defender": ["Incident.Read.All"],
    "mde": ["Ti.ReadWrite.All"],
}


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def consent(sb: Any, tenant: str, roles: dict[str, list[str]] | None = None) -> None:
    """What admin consent leaves behind: the portal app's SP with its roles."""
    sb.control.set_roles(tenant, PORTAL_ROLES if roles is None else roles, application=PORTAL_APP)


def https(sb: Any) -> requests.Session:
    """A client of the sandbox's https host (token endpoint and browser pages alike) that
    trusts its CA and nothing from the environment."""
    session = requests.Session()
    session.verify = sb.ca_path
    # requests would let REQUESTS_CA_BUNDLE from the environment override session.verify.
    session.trust_env = False
    return session


def mi_token(sb: Any) -> str:
    """A fresh managed identity token for the exchange audience (App Service endpoint)."""
    response = requests.get(
        sb.identity_endpoint,
        params={
            "api-version": "2019-08-01",
            "resource": "api://AzureADTokenExchange",
            "client_id": MI_CLIENT_ID,
        },
        headers={"X-IDENTITY-HEADER": sb.identity_header},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def token_request(
    sb: Any, tenant: str, data: dict[str, str] | None = None, **kwargs: Any
) -> requests.Response:
    """A raw POST to the token endpoint."""
    return requests.post(
        f"{sb.authority}/{tenant}/oauth2/v2.0/token",
        data=data,
        verify=sb.ca_path,
        timeout=10,
        **kwargs,
    )


def client_credentials(
    sb: Any, tenant: str, scope: str = GRAPH, **overrides: str
) -> dict[str, str]:
    data = {
        "client_id": PORTAL_APP,
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": mi_token(sb),
        "scope": scope,
    }
    data.update(overrides)
    return data


SIGN_IN_CALLBACK = "http://localhost:8000/accounts/callback/"


def msal_app(sb: Any, tenant: str = HOME, **options: Any) -> msal.ConfidentialClientApplication:
    """The portal app as an msal confidential client, authenticating with the managed
    identity's assertion."""
    return msal.ConfidentialClientApplication(
        PORTAL_APP,
        client_credential={"client_assertion": lambda: mi_token(sb)},
        authority=f"{sb.authority}/{tenant}",
        instance_discovery=False,
        http_client=https(sb),
        **options,
    )


def sign_in(sb: Any, flow: dict[str, Any], upn: str) -> dict[str, str]:
    """Pick `upn` on the sign-in page; the redirect's query as msal expects it."""
    page = https(sb).get(flow["auth_uri"], timeout=10)
    assert page.status_code == 200
    assert upn in page.text
    response = https(sb).post(
        flow["auth_uri"], data={"user": upn}, allow_redirects=False, timeout=10
    )
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(SIGN_IN_CALLBACK)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
