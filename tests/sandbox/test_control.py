"""The control API: exact counters, faults, clock skew and directory changes, each taking
effect on the next request."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientAssertionCredential, ManagedIdentityCredential

from entra_sandbox.control import ControlError

from .demo import (
    ADATUM,
    GRAPH,
    HOME,
    MI_CLIENT_ID,
    NORTHWIND,
    PORTAL_APP,
    WOODGROVE,
    claims,
    client_credentials,
    consent,
    mi_token,
    token_request,
)


def exchange_credential(sb, tenant: str) -> ClientAssertionCredential:
    mi = ManagedIdentityCredential(client_id=MI_CLIENT_ID)
    return ClientAssertionCredential(
        tenant,
        PORTAL_APP,
        lambda: mi.get_token("api://AzureADTokenExchange/.default").token,
        authority=sb.authority,
        connection_verify=sb.ca_path,
    )


def graph_probe(sb, token: str) -> requests.Response:
    return requests.get(
        f"{sb.resource_urls['graph']}/v1.0/organization",
        headers={"Authorization": f"Bearer {token}"},
        verify=sb.ca_path,
        timeout=10,
    )


# -- counters ----------------------------------------------------------------------------


def test_it_counts_requests_exactly_by_kind_and_tenant(app_service_env):
    sb = app_service_env
    consent(sb, NORTHWIND)
    credential = exchange_credential(sb, NORTHWIND)
    token = credential.get_token(GRAPH).token
    credential.get_token(GRAPH)  # cached by azure-identity: no request
    graph_probe(sb, token)
    token_request(sb, ADATUM, client_credentials(sb, ADATUM))  # + one mi request
    assert sb.control.counters() == {
        "total": 5,
        "by_kind": {"mi": 2, "token": 2, "graph": 1},
        "by_tenant": {
            HOME: {"mi": 2},
            NORTHWIND: {"token": 1, "graph": 1},
            ADATUM: {"token": 1},
        },
    }
    sb.control.reset_counters()
    assert sb.control.counters() == {"total": 0, "by_kind": {}, "by_tenant": {}}


def test_it_does_not_count_control_requests(sb):
    sb.control.directory()
    sb.control.issued_tokens()
    assert sb.control.counters()["total"] == 0


# -- faults ------------------------------------------------------------------------------


def test_it_injects_latency(sb):
    sb.control.add_fault(target="mi", latency_ms=300)
    started = time.monotonic()
    mi_token(sb)
    assert time.monotonic() - started >= 0.3


def test_it_serves_50_concurrent_requests_with_latency(sb):
    sb.control.add_fault(target="*", latency_ms=500)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        tokens = list(pool.map(lambda _: mi_token(sb), range(50)))
    assert len(set(tokens)) == 50
    # Serial would take 25 s; concurrent is a little over one latency.
    assert time.monotonic() - started < 5


def test_it_throttles_with_429_and_retry_after_in_entra_shape(sb):
    sb.control.add_fault(target="token", status=429, retry_after=7, count=1)
    response = token_request(sb, HOME, client_credentials(sb, HOME))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    body = response.json()
    assert body["error"] == "temporarily_unavailable"
    assert body["error_description"].startswith("AADSTS90055: ")
    # count=1: the next request is served normally.
    assert token_request(sb, HOME, client_credentials(sb, HOME)).status_code == 200


def test_it_lets_azure_identity_retry_through_a_count_limited_fault(app_service_env):
    sb = app_service_env
    sb.control.add_fault(target="token", status=503, retry_after=0, count=2)
    token = exchange_credential(sb, HOME).get_token(GRAPH)
    assert claims(token.token)["tid"] == HOME
    assert sb.control.counters()["by_kind"]["token"] == 3


def test_it_faults_one_tenant_only(sb):
    consent(sb, NORTHWIND)
    sb.control.add_fault(target="token", tenant="northwind.example", status=503)
    assert token_request(sb, NORTHWIND, client_credentials(sb, NORTHWIND)).status_code == 503
    assert token_request(sb, HOME, client_credentials(sb, HOME)).status_code == 200
    sb.control.clear_faults()
    assert token_request(sb, NORTHWIND, client_credentials(sb, NORTHWIND)).status_code == 200


def test_it_faults_the_managed_identity_endpoint(sb):
    sb.control.add_fault(target="mi", status=503, count=1)
    with pytest.raises(requests.HTTPError):
        mi_token(sb)
    assert mi_token(sb)


def test_it_faults_a_resource(sb):
    consent(sb, NORTHWIND)
    token = token_request(sb, NORTHWIND, client_credentials(sb, NORTHWIND)).json()["access_token"]
    sb.control.add_fault(target="graph", status=429, retry_after=3, tenant=NORTHWIND)
    response = graph_probe(sb, token)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.json()["error"]["code"] == "TooManyRequests"


def test_it_holds_a_hanging_request_until_faults_are_cleared(sb):
    sb.control.add_fault(target="discovery", hang=True)
    result = {}

    def discover() -> None:
        result["status"] = requests.get(
            f"{sb.authority}/{HOME}/v2.0/.well-known/openid-configuration",
            verify=sb.ca_path,
            timeout=30,
        ).status_code

    thread = threading.Thread(target=discover)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive()
    sb.control.clear_faults()
    thread.join(5)
    assert result["status"] == 200


def test_it_validates_faults(sb):
    with pytest.raises(ControlError) as info:
        sb.control.add_fault(target="nothing", status=500)
    assert info.value.status == 400


# -- clock and directory -----------------------------------------------------------------


def test_it_skews_the_sts_clock(sb):
    sb.control.set_clock_skew(3 * 86400)
    response = token_request(sb, HOME, client_credentials(sb, HOME))
    assert response.json()["error_codes"] == [700024]
    sb.control.set_clock_skew(0)
    token = token_request(sb, HOME, client_credentials(sb, HOME)).json()["access_token"]
    sb.control.set_clock_skew(600)
    assert claims(token)["iat"] < time.time() + 60  # issued before the skew


def test_it_revokes_consent_on_the_next_request(sb):
    consent(sb, NORTHWIND)
    assert token_request(sb, NORTHWIND, client_credentials(sb, NORTHWIND)).status_code == 200
    sb.control.revoke(NORTHWIND)
    response = token_request(sb, NORTHWIND, client_credentials(sb, NORTHWIND))
    assert response.json()["error_codes"] == [700016]


def test_it_never_revokes_the_home_tenant_sp_by_default(sb):
    sb.control.revoke(HOME)
    assert token_request(sb, HOME, client_credentials(sb, HOME)).status_code == 200


def test_it_disables_and_enables(sb):
    consent(sb, WOODGROVE)
    sb.control.disable(WOODGROVE)
    response = token_request(sb, WOODGROVE, client_credentials(sb, WOODGROVE))
    assert response.json()["error_codes"] == [7000112]
    sb.control.enable(WOODGROVE, application=PORTAL_APP)
    assert token_request(sb, WOODGROVE, client_credentials(sb, WOODGROVE)).status_code == 200


def test_it_sets_roles_on_the_next_token(sb):
    consent(sb, NORTHWIND)
    sb.control.set_roles(NORTHWIND, {"graph": ["Directory.Read.All"]})
    token = token_request(sb, NORTHWIND, client_credentials(sb, NORTHWIND)).json()["access_token"]
    assert claims(token)["roles"] == ["Directory.Read.All"]


def test_it_deletes_a_tenant(sb):
    sb.control.delete_tenant(ADATUM)
    response = token_request(sb, ADATUM, client_credentials(sb, ADATUM))
    assert response.json()["error_codes"] == [90002]
    with pytest.raises(ControlError) as info:
        sb.control.delete_tenant(ADATUM)
    assert info.value.status == 404


def test_it_updates_an_application(sb):
    sb.control.update_application(PORTAL_APP, redirect_uris=["http://127.0.0.1:9/cb"])
    app = next(a for a in sb.control.directory()["applications"] if a["client_id"] == PORTAL_APP)
    assert app["redirect_uris"] == ["http://127.0.0.1:9/cb"]
    with pytest.raises(ControlError):
        sb.control.update_application(PORTAL_APP, secret="nope")


def _user(sb, upn: str) -> dict:
    users = [u for t in sb.control.directory()["tenants"] for u in t["users"]]
    return next(u for u in users if u["upn"] == upn)


def test_it_updates_a_user_by_upn_or_object_id(sb):
    upn = "operator@fabrikam-mssp.example"
    changed = sb.control.update_user(upn, app_roles=[f"{PORTAL_APP}/Portal.Admin"])
    assert (changed["tenant"], changed["app_roles"]) == (HOME, [f"{PORTAL_APP}/Portal.Admin"])
    sb.control.update_user(changed["object_id"], enabled=False)
    assert _user(sb, upn)["enabled"] is False
    assert _user(sb, upn)["app_roles"] == [f"{PORTAL_APP}/Portal.Admin"]


@pytest.mark.parametrize(
    ("user", "fields", "status"),
    [
        ("nobody@fabrikam-mssp.example", {"enabled": False}, 404),
        ("operator@fabrikam-mssp.example", {"password": "x"}, 400),
        ("operator@fabrikam-mssp.example", {"enabled": "no"}, 400),
        ("operator@fabrikam-mssp.example", {"app_roles": "Portal.Admin"}, 400),
        ("operator@fabrikam-mssp.example", {"groups": ["SOC EMEA"]}, 400),
        ("operator@fabrikam-mssp.example", {"groups": "3b9e6f12-8c4d-4a57-9e21-6d0f3a8b5c74"}, 400),
        (
            "operator@fabrikam-mssp.example",
            {"enabled": False, "app_roles": ["99999999-9999-4999-8999-999999999999/X"]},
            400,
        ),
    ],
)
def test_it_refuses_a_bad_user_change_and_changes_nothing(sb, user, fields, status):
    before = sb.control.directory()
    with pytest.raises(ControlError) as info:
        sb.control.update_user(user, **fields)
    assert info.value.status == status
    assert sb.control.directory() == before


def test_it_lists_every_issued_token(sb):
    assertion = mi_token(sb)
    token = token_request(sb, HOME, client_credentials(sb, HOME)).json()["access_token"]
    issued = sb.control.issued_tokens()
    assert assertion in issued
    assert token in issued


def test_it_resets_to_the_scenario(sb):
    consent(sb, ADATUM)
    sb.control.add_fault(target="token", status=500)
    sb.control.reset()
    assert sb.control.directory()["tenants"][5]["service_principals"] == []
    response = token_request(sb, ADATUM, client_credentials(sb, ADATUM))
    assert response.json()["error_codes"] == [700016]


def test_it_reports_an_unknown_tenant_to_the_control_client(sb):
    with pytest.raises(ControlError) as info:
        sb.control.revoke("nowhere.example")
    assert info.value.status == 404


def test_it_refuses_exchange_after_revocation_even_with_a_cached_assertion(app_service_env):
    sb = app_service_env
    consent(sb, NORTHWIND)
    credential = exchange_credential(sb, NORTHWIND)
    credential.get_token(GRAPH)
    sb.control.revoke(NORTHWIND)
    with pytest.raises(ClientAuthenticationError):
        exchange_credential(sb, NORTHWIND).get_token(GRAPH)


def test_it_keeps_serving_while_a_client_stalls_before_tls(sb):
    url = urlsplit(sb.authority)
    with socket.create_connection((url.hostname, url.port)):
        # connected, never says hello
        response = requests.get(
            f"{sb.authority}/{HOME}/v2.0/.well-known/openid-configuration",
            verify=sb.ca_path,
            timeout=5,
        )
    assert response.status_code == 200
