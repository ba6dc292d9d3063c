"""The probed resource APIs: each validates the bearer token and the caller's roles/RBAC."""

from __future__ import annotations

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from .demo import (
    ADATUM,
    ARM,
    DEFENDER,
    GRAPH,
    MDE,
    NORTHWIND,
    client_credentials,
    consent,
    token_request,
)


def app_token(sb, tenant: str, scope: str) -> str:
    response = token_request(sb, tenant, client_credentials(sb, tenant, scope=scope))
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def call(sb, method: str, url: str, token: str | None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, url, headers=headers, verify=sb.ca_path, timeout=10, **kwargs)


def test_it_answers_graph_organization_for_the_token_tenant(sb):
    consent(sb, NORTHWIND)
    response = call(
        sb, "GET", f"{sb.resource_urls['graph']}/v1.0/organization", app_token(sb, NORTHWIND, GRAPH)
    )
    assert response.status_code == 200
    org = response.json()["value"][0]
    assert (org["id"], org["displayName"]) == (NORTHWIND, "Northwind Traders")
    default = next(d for d in org["verifiedDomains"] if d["isDefault"])
    assert default["name"] == "northwind.example"


def test_it_answers_401_with_www_authenticate_without_a_token(sb):
    response = call(sb, "GET", f"{sb.resource_urls['graph']}/v1.0/organization", None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_it_answers_401_for_a_forged_token(sb):
    forged = jwt.encode(
        {"aud": "https://graph.microsoft.com", "tid": NORTHWIND},
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        algorithm="RS256",
    )
    response = call(sb, "GET", f"{sb.resource_urls['graph']}/v1.0/organization", forged)
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers


def test_it_answers_401_for_a_token_of_another_resource(sb):
    consent(sb, NORTHWIND)
    token = app_token(sb, NORTHWIND, DEFENDER)
    response = call(sb, "GET", f"{sb.resource_urls['graph']}/v1.0/organization", token)
    assert response.status_code == 401


def test_it_answers_401_for_an_expired_token_on_the_sandbox_clock(sb):
    consent(sb, NORTHWIND)
    token = app_token(sb, NORTHWIND, GRAPH)
    sb.control.set_clock_skew(2 * 3600)
    response = call(sb, "GET", f"{sb.resource_urls['graph']}/v1.0/organization", token)
    assert response.status_code == 401


def test_it_answers_401_once_the_tenant_is_deleted(sb):
    consent(sb, NORTHWIND)
    token = app_token(sb, NORTHWIND, GRAPH)
    sb.control.delete_tenant(NORTHWIND)
    response = call(sb, "GET", f"{sb.resource_urls['graph']}/v1.0/organization", token)
    assert response.status_code == 401


def test_it_answers_403_in_graph_shape_without_the_role(sb):
    consent(sb, NORTHWIND, roles={"graph": ["User.Read.All"]})
    response = call(
        sb, "GET", f"{sb.resource_urls['graph']}/v1.0/organization", app_token(sb, NORTHWIND, GRAPH)
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "Authorization_RequestDenied"
    assert {"date", "request-id", "client-request-id"} <= set(error["innerError"])


@pytest.mark.parametrize(
    ("key", "scope", "path", "role"),
    [
        ("defender", DEFENDER, "api/incidents", "Incident.Read.All"),
        ("mde", MDE, "api/indicators", "Ti.ReadWrite.All"),
    ],
)
def test_it_answers_the_defender_probes_by_role(sb, key, scope, path, role):
    consent(sb, NORTHWIND)
    url = f"{sb.resource_urls[key]}/{path}"
    ok = call(sb, "GET", url, app_token(sb, NORTHWIND, scope))
    assert ok.status_code == 200
    assert ok.json()["value"] == []
    consent(sb, NORTHWIND, roles={"graph": ["Organization.Read.All"]})
    denied = call(sb, "GET", url, app_token(sb, NORTHWIND, scope))
    assert denied.status_code == 403


def test_it_lists_the_subscriptions_the_app_has_a_role_on(sb):
    consent(sb, NORTHWIND)
    url = f"{sb.resource_urls['arm']}/subscriptions"
    response = call(
        sb, "GET", url, app_token(sb, NORTHWIND, ARM), params={"api-version": "2022-12-01"}
    )
    assert response.status_code == 200
    assert [s["displayName"] for s in response.json()["value"]] == ["Northwind Production"]
    consent(sb, ADATUM, roles={})
    empty = call(sb, "GET", url, app_token(sb, ADATUM, ARM), params={"api-version": "2022-12-01"})
    assert empty.json()["value"] == []


def test_it_requires_the_arm_api_version(sb):
    consent(sb, NORTHWIND)
    response = call(
        sb, "GET", f"{sb.resource_urls['arm']}/subscriptions", app_token(sb, NORTHWIND, ARM)
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MissingApiVersionParameter"


def test_it_ingests_logs_only_with_monitoring_metrics_publisher(sb):
    scope = "https://monitor.azure.com/.default"
    url = f"{sb.resource_urls['loganalytics']}/dataCollectionRules/dcr-0123/streams/Custom-Probe_CL"
    params = {"api-version": "2023-01-01"}
    consent(sb, NORTHWIND)
    ok = call(sb, "POST", url, app_token(sb, NORTHWIND, scope), params=params, json=[{"a": 1}])
    assert ok.status_code == 204
    big = [{"line": "x" * 1000} for _ in range(200)]  # 200 KB: above the STS's body limit
    assert (
        call(sb, "POST", url, app_token(sb, NORTHWIND, scope), params=params, json=big).status_code
        == 204
    )
    consent(sb, ADATUM, roles={})
    denied = call(sb, "POST", url, app_token(sb, ADATUM, scope), params=params, json=[{"a": 1}])
    assert denied.status_code == 403
