"""The token endpoint's client-credentials grant, driven by azure-identity's
ClientAssertionCredential with a managed identity assertion, and by raw requests for the
malformed ones."""

from __future__ import annotations

import re
import time

import jwt
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientAssertionCredential, ManagedIdentityCredential
from cryptography.hazmat.primitives.asymmetric import rsa

from .demo import (
    ADATUM,
    DEFENDER,
    GRAPH,
    HOME,
    LITWARE,
    LITWARE_APP,
    MDE,
    MI_CLIENT_ID,
    MI_OBJECT_ID,
    NORTHWIND,
    PORTAL_APP,
    TAILSPIN,
    WOODGROVE,
    claims,
    client_credentials,
    consent,
    mi_token,
    token_request,
)

DESCRIPTION = re.compile(
    r"^AADSTS(\d+): .+\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\n"
    r"Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$",
    re.S,
)


def exchange(sb, tenant: str, scope: str = GRAPH, client_id: str = PORTAL_APP, assertion=None):
    """The portal's exchange: managed identity token in, customer-tenant token out."""
    mi = ManagedIdentityCredential(client_id=MI_CLIENT_ID)
    credential = ClientAssertionCredential(
        tenant,
        client_id,
        assertion or (lambda: mi.get_token("api://AzureADTokenExchange/.default").token),
        authority=sb.authority,
        connection_verify=sb.ca_path,
    )
    return credential.get_token(scope)


def failure(sb, tenant: str, **kwargs) -> tuple[int, dict]:
    with pytest.raises(ClientAuthenticationError) as info:
        exchange(sb, tenant, **kwargs)
    response = info.value.response
    return response.status_code, response.json()


def assert_entra_error(body: dict, code: int, error: str) -> None:
    assert set(body) == {
        "error",
        "error_description",
        "error_codes",
        "timestamp",
        "trace_id",
        "correlation_id",
        "error_uri",
    }
    assert body["error"] == error
    assert body["error_codes"] == [code]
    match = DESCRIPTION.match(body["error_description"])
    assert match, body["error_description"]
    assert match.group(1) == str(code)
    assert body["error_uri"] == f"https://login.microsoftonline.com/error?code={code}"


# -- success ----------------------------------------------------------------------------


def test_it_issues_an_app_only_token_with_the_granted_roles(app_service_env):
    sb = app_service_env
    consent(sb, NORTHWIND)
    token = exchange(sb, NORTHWIND)
    c = claims(token.token)
    sp = next(
        s
        for t in sb.control.directory()["tenants"]
        if t["id"] == NORTHWIND
        for s in t["service_principals"]
        if s["application"] == PORTAL_APP
    )
    assert c["aud"] == "https://graph.microsoft.com"
    assert c["iss"] == f"{sb.authority}/{NORTHWIND}/"
    assert (c["tid"], c["appid"], c["appidacr"], c["idtyp"], c["ver"]) == (
        NORTHWIND,
        PORTAL_APP,
        "2",
        "app",
        "1.0",
    )
    assert c["oid"] == sp["object_id"]
    assert c["roles"] == ["Organization.Read.All"]
    assert 3500 < token.expires_on - time.time() <= 3600


def test_it_issues_tokens_for_each_granted_resource(app_service_env):
    sb = app_service_env
    consent(sb, NORTHWIND)
    assert claims(exchange(sb, NORTHWIND, DEFENDER).token)["roles"] == ["Incident.Read.All"]
    assert claims(exchange(sb, NORTHWIND, MDE).token)["roles"] == ["Ti.ReadWrite.All"]
    arm = claims(exchange(sb, NORTHWIND, "https://management.azure.com/.default").token)
    assert arm["aud"] == "https://management.azure.com"
    assert "roles" not in arm


def test_it_omits_roles_when_none_are_granted(app_service_env):
    consent(app_service_env, ADATUM, roles={})
    assert "roles" not in claims(exchange(app_service_env, ADATUM).token)


def test_it_accepts_the_tenant_domain_and_the_home_tenant(app_service_env):
    sb = app_service_env
    consent(sb, NORTHWIND)
    assert claims(exchange(sb, "northwind.example").token)["tid"] == NORTHWIND
    assert claims(exchange(sb, HOME).token)["tid"] == HOME


def test_it_accepts_a_well_known_app_id_as_the_resource(app_service_env):
    consent(app_service_env, NORTHWIND)
    token = exchange(app_service_env, NORTHWIND, "00000003-0000-0000-c000-000000000000/.default")
    assert claims(token.token)["aud"] == "00000003-0000-0000-c000-000000000000"


# -- the directory's refusals ------------------------------------------------------------


def test_it_refuses_an_unknown_tenant_with_90002(app_service_env):
    status, body = failure(app_service_env, "0badc0de-0000-4000-8000-000000000000")
    assert status == 400
    assert_entra_error(body, 90002, "invalid_tenant")


def test_it_refuses_a_tenant_without_consent_with_700016(app_service_env):
    status, body = failure(app_service_env, ADATUM)
    assert status == 400
    assert_entra_error(body, 700016, "unauthorized_client")
    assert "Adatum" in body["error_description"]


def test_it_refuses_a_disabled_service_principal_with_7000112(app_service_env):
    sb = app_service_env
    consent(sb, WOODGROVE)
    sb.control.disable(WOODGROVE)
    status, body = failure(sb, WOODGROVE)
    assert status == 400
    assert_entra_error(body, 7000112, "unauthorized_client")
    sb.control.enable(WOODGROVE)
    assert claims(exchange(sb, WOODGROVE).token)["tid"] == WOODGROVE


def test_it_refuses_a_disabled_application_with_7000112(app_service_env):
    sb = app_service_env
    consent(sb, NORTHWIND)
    sb.control.update_application(PORTAL_APP, enabled=False)
    status, body = failure(sb, NORTHWIND)
    assert_entra_error(body, 7000112, "unauthorized_client")


def test_it_refuses_a_resource_not_provisioned_with_500011(app_service_env):
    sb = app_service_env
    consent(sb, TAILSPIN)
    status, body = failure(sb, TAILSPIN, scope=DEFENDER)
    assert status == 400
    assert_entra_error(body, 500011, "invalid_resource")
    assert "https://api.security.microsoft.com" in body["error_description"]
    assert claims(exchange(sb, TAILSPIN).token)["tid"] == TAILSPIN


def test_it_refuses_an_unknown_resource_with_500011(app_service_env):
    consent(app_service_env, NORTHWIND)
    status, body = failure(app_service_env, NORTHWIND, scope="https://graph.microsoft.co/.default")
    assert_entra_error(body, 500011, "invalid_resource")


def test_it_refuses_a_scope_that_is_not_default_with_70011(app_service_env):
    consent(app_service_env, NORTHWIND)
    status, body = failure(
        app_service_env, NORTHWIND, scope="https://graph.microsoft.com/Organization.Read.All"
    )
    assert status == 400
    assert_entra_error(body, 70011, "invalid_scope")


# -- the assertion's refusals ------------------------------------------------------------


def test_it_refuses_the_wrong_direction_fic_with_700236(app_service_env):
    status, body = failure(app_service_env, LITWARE, client_id=LITWARE_APP)
    assert status == 401
    assert_entra_error(body, 700236, "invalid_client")


def test_it_refuses_an_app_without_fic_with_70025(app_service_env):
    app_service_env.control.update_application(PORTAL_APP, federated_credentials=[])
    status, body = failure(app_service_env, HOME)
    assert_entra_error(body, 70025, "invalid_client")


def _fic(sb, **changes: str) -> dict:
    fic = {
        "name": "mssp-automation",
        "issuer": f"{sb.authority}/{HOME}/v2.0",
        "subject": MI_OBJECT_ID,
        "audiences": ["api://AzureADTokenExchange"],
    }
    fic.update(changes)
    return fic


@pytest.mark.parametrize(
    ("changes", "code", "error"),
    [
        ({"issuer": "{authority}/7d3e1c5a-2b4f-4e8a-9c61-0f5b8d2a4e17"}, 700211, "invalid_client"),
        ({"audiences": ["api://AzureADTokenExchangeUSGov"]}, 700212, "invalid_client"),
        ({"subject": "5e2a9c71-3d84-4b6f-a0e2-91c7d4f8b6a2"}, 700213, "invalid_client"),
        (
            {"subject": "5e2a9c71-3d84-4b6f-a0e2-91c7d4f8b6a2", "issuer": "https://x.example/"},
            70021,
            "invalid_request",
        ),
    ],
    ids=["issuer", "audience", "subject", "several"],
)
def test_it_reports_fic_mismatches(app_service_env, changes, code, error):
    sb = app_service_env
    sb.control.update_application(PORTAL_APP, federated_credentials=[_fic(sb, **changes)])
    status, body = failure(sb, HOME)
    assert_entra_error(body, code, error)
    assert status == (401 if error == "invalid_client" else 400)


def test_it_names_the_presented_values_in_70021(app_service_env):
    sb = app_service_env
    sb.control.update_application(
        PORTAL_APP, federated_credentials=[_fic(sb, subject="typo", audiences=["typo"])]
    )
    _, body = failure(sb, HOME)
    description = body["error_description"]
    assert f"Assertion Issuer: '{sb.authority}/{HOME}/v2.0'" in description
    assert f"Assertion Subject: '{MI_OBJECT_ID}'" in description
    assert "Assertion Audience: 'fb60f99c-7a34-4190-8149-302f77469936'" in description


def test_it_accepts_the_exchange_app_id_as_fic_audience(app_service_env):
    sb = app_service_env
    fic = _fic(sb, audiences=["fb60f99c-7a34-4190-8149-302f77469936"])
    sb.control.update_application(PORTAL_APP, federated_credentials=[fic])
    assert claims(exchange(sb, HOME).token)["tid"] == HOME


@pytest.mark.parametrize("skew", [2 * 86400, -3600], ids=["expired", "not-yet-valid"])
def test_it_refuses_an_assertion_out_of_time_range_with_700024(app_service_env, skew):
    sb = app_service_env
    sb.control.set_clock_skew(skew)
    status, body = failure(sb, HOME)
    assert status == 401
    assert_entra_error(body, 700024, "invalid_client")


def test_it_refuses_an_assertion_signed_by_another_key_with_700027(app_service_env):
    sb = app_service_env
    forged = jwt.encode(
        claims(mi_token(sb)),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        algorithm="RS256",
    )
    status, body = failure(sb, HOME, assertion=lambda: forged)
    assert_entra_error(body, 700027, "invalid_client")


def test_it_refuses_an_unknown_application_with_700016(app_service_env):
    status, body = failure(app_service_env, HOME, client_id="11111111-2222-4333-8444-555555555555")
    assert_entra_error(body, 700016, "unauthorized_client")


# -- bad requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("drop", "code"),
    [("grant_type", 900144), ("client_id", 900144), ("scope", 900144)],
)
def test_it_names_a_missing_parameter(sb, drop, code):
    data = client_credentials(sb, HOME)
    del data[drop]
    response = token_request(sb, HOME, data)
    assert response.status_code == 400
    assert_entra_error(response.json(), code, "invalid_request")
    assert f"'{drop}'" in response.json()["error_description"]


def test_it_refuses_a_missing_assertion_with_7000218(sb):
    data = client_credentials(sb, HOME)
    del data["client_assertion"], data["client_assertion_type"]
    response = token_request(sb, HOME, data)
    assert response.status_code == 401
    assert_entra_error(response.json(), 7000218, "invalid_client")


def test_it_refuses_a_wrong_grant_type(sb):
    response = token_request(sb, HOME, client_credentials(sb, HOME, grant_type="password"))
    assert response.status_code == 400
    assert_entra_error(response.json(), 70003, "unsupported_grant_type")


def test_it_refuses_a_wrong_assertion_type(sb):
    data = client_credentials(sb, HOME, client_assertion_type="urn:example:saml")
    response = token_request(sb, HOME, data)
    assert_entra_error(response.json(), 90011, "invalid_request")


@pytest.mark.parametrize("assertion", ["not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30"])
def test_it_refuses_a_malformed_assertion_with_50027(sb, assertion):
    response = token_request(sb, HOME, client_credentials(sb, HOME, client_assertion=assertion))
    assert response.status_code == 400
    assert_entra_error(response.json(), 50027, "invalid_request")


def test_it_refuses_an_oversized_body_in_entra_shape(sb):
    data = client_credentials(sb, HOME, padding="x" * 70_000)
    response = token_request(sb, HOME, data)
    assert response.status_code == 400
    assert_entra_error(response.json(), 9002313, "invalid_request")


def test_it_refuses_a_get_on_the_token_endpoint(sb):
    response = requests.get(
        f"{sb.authority}/{HOME}/oauth2/v2.0/token", verify=sb.ca_path, timeout=10
    )
    assert response.status_code == 400
    assert_entra_error(response.json(), 900561, "invalid_request")


def test_it_refuses_a_non_form_body(sb):
    response = token_request(
        sb, HOME, data=b"\x00\xff{not form", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert_entra_error(response.json(), 9002313, "invalid_request")


def test_it_refuses_client_credentials_on_organizations_with_50059(sb):
    response = token_request(sb, "organizations", client_credentials(sb, HOME))
    assert_entra_error(response.json(), 50059, "invalid_request")


def test_it_refuses_a_nonsense_tenant_with_900023(sb):
    response = token_request(sb, "not a tenant!", client_credentials(sb, HOME))
    assert_entra_error(response.json(), 900023, "invalid_request")


def test_it_echoes_the_client_request_id_as_correlation_id(sb):
    request_id = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
    response = token_request(
        sb, ADATUM, client_credentials(sb, ADATUM), headers={"client-request-id": request_id}
    )
    assert response.json()["correlation_id"] == request_id
