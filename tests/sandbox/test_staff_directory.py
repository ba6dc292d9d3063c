"""What a portal needs from Entra about its own staff: the `groups` claim of sign-ins (and
its overage form), changes an administrator makes (PATCH /_sandbox/users/…), the Graph
calls that re-check a signed-in user with an app-only token, and a token naming another
tenant than the one asked for."""

from __future__ import annotations

import pytest
from azure.identity import ClientAssertionCredential, ManagedIdentityCredential

from entra_sandbox.control import ControlError
from entra_sandbox.testing import (
    group_ids,
    issue_tokens_for_another_tenant,
    set_user_access,
)

from .demo import (
    GRAPH,
    HOME,
    LITWARE_APP,
    MI_CLIENT_ID,
    NORTHWIND,
    PORTAL_APP,
    SIGN_IN_CALLBACK,
    claims,
    client_credentials,
    consent,
    https,
    msal_app,
    sign_in,
    token_request,
)

pytestmark = pytest.mark.filterwarnings("ignore:response_mode=.form_post. is recommended")

OPERATOR = "operator@fabrikam-mssp.example"
ADMIN = "admin@fabrikam-mssp.example"
SOC_EMEA = "3b9e6f12-8c4d-4a57-9e21-6d0f3a8b5c74"
SOC_AMERICAS = "9d2a7c45-1e6b-4f83-a0d9-5c8e2b4f7a16"
# What the portal's re-check needs, at least: Graph's documented least-privileged
# application permissions for appRoleAssignedTo and checkMemberGroups.
RECHECK_ROLES = ["Application.Read.All", "User.Read.All", "GroupMember.Read.All"]


def id_token_claims(sb, upn: str) -> dict:
    app = msal_app(sb)
    flow = app.initiate_auth_code_flow([], redirect_uri=SIGN_IN_CALLBACK)
    result = app.acquire_token_by_auth_code_flow(flow, sign_in(sb, flow, upn))
    assert "error" not in result, result
    return result["id_token_claims"]


def home_graph_token(sb, roles: list[str]) -> str:
    """The portal's own app-only Graph token in its home tenant, with `roles` granted."""
    sb.control.set_roles(HOME, {"graph": roles}, application=PORTAL_APP)
    response = token_request(sb, HOME, client_credentials(sb, HOME))
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def graph(sb, token: str, path: str, body: dict | None = None, **params: str):
    url = f"{sb.resource_urls['graph']}/v1.0/{path}"
    headers = {"Authorization": f"Bearer {token}"}
    if body is None:
        return https(sb).get(url, headers=headers, params=params, timeout=10)
    return https(sb).post(url, headers=headers, json=body, timeout=10)


# -- the groups claim ------------------------------------------------------------------------


def test_it_puts_the_users_group_object_ids_in_the_id_token(sb):
    assert id_token_claims(sb, OPERATOR)["groups"] == [SOC_EMEA]
    assert "groups" not in id_token_claims(sb, ADMIN)  # in no group


def test_it_names_no_groups_when_the_app_does_not_ask_for_them(sb):
    sb.control.update_application(PORTAL_APP, group_membership_claims="None")
    assert "groups" not in id_token_claims(sb, OPERATOR)


def test_it_applies_a_change_of_roles_and_groups_at_the_next_sign_in(sb):
    changed = set_user_access(
        sb, OPERATOR, app_roles=[f"{PORTAL_APP}/Portal.Admin"], groups=[SOC_AMERICAS, SOC_EMEA]
    )
    assert changed["groups"] == [SOC_AMERICAS, SOC_EMEA]
    token = id_token_claims(sb, OPERATOR)
    assert (token["roles"], token["groups"]) == (["Portal.Admin"], [SOC_AMERICAS, SOC_EMEA])
    set_user_access(sb, OPERATOR, app_roles=[], groups=[])
    token = id_token_claims(sb, OPERATOR)
    assert "roles" not in token and "groups" not in token


def test_it_keeps_up_to_200_groups_in_the_claim(sb):
    groups = group_ids(200)
    set_user_access(sb, OPERATOR, groups=groups)
    token = id_token_claims(sb, OPERATOR)
    assert token["groups"] == groups
    assert "_claim_names" not in token


def test_it_sends_the_overage_form_above_200_groups_and_graph_lists_them(sb):
    groups = group_ids(201)
    user = set_user_access(sb, OPERATOR, groups=groups)
    token = id_token_claims(sb, OPERATOR)
    assert "groups" not in token
    assert token["_claim_names"] == {"groups": "src1"}
    endpoint = token["_claim_sources"]["src1"]["endpoint"]
    assert endpoint == (
        f"{sb.resource_urls['graph']}/v1.0/users/{user['object_id']}/getMemberObjects"
    )
    app_token = home_graph_token(sb, RECHECK_ROLES)
    listed = https(sb).post(
        endpoint,
        headers={"Authorization": f"Bearer {app_token}"},
        json={"securityEnabledOnly": True},
        timeout=10,
    )
    assert listed.status_code == 200, listed.text
    assert listed.json()["value"] == groups


# -- Graph: re-checking a signed-in user --------------------------------------------------------


def test_it_lets_the_app_read_its_own_service_principal_without_permissions(sb):
    token = home_graph_token(sb, [])
    sp = graph(sb, token, f"servicePrincipals(appId='{PORTAL_APP}')")
    assert sp.status_code == 200, sp.text
    roles = {r["value"]: r["id"] for r in sp.json()["appRoles"]}
    assert set(roles) == {"Portal.Admin", "Portal.Operator"}
    # Another app's service principal (Litware's app, given one here) needs
    # Application.Read.All.
    sb.control.set_roles(HOME, {}, application=LITWARE_APP)
    other = f"servicePrincipals(appId='{LITWARE_APP}')"
    assert graph(sb, token, other).status_code == 403
    assert graph(sb, home_graph_token(sb, RECHECK_ROLES), other).status_code == 200


def test_it_lists_who_holds_the_apps_roles(sb):
    token = home_graph_token(sb, RECHECK_ROLES)
    sp = graph(sb, token, f"servicePrincipals(appId='{PORTAL_APP}')").json()
    role_values = {r["id"]: r["value"] for r in sp["appRoles"]}
    assigned = graph(sb, token, f"servicePrincipals/{sp['id']}/appRoleAssignedTo").json()["value"]
    held = {(a["principalDisplayName"], role_values[a["appRoleId"]]) for a in assigned}
    assert held == {("Fabrikam Admin", "Portal.Admin"), ("Fabrikam Operator", "Portal.Operator")}
    assert {a["resourceId"] for a in assigned} == {sp["id"]}
    set_user_access(sb, OPERATOR, app_roles=[])
    assigned = graph(sb, token, f"servicePrincipals/{sp['id']}/appRoleAssignedTo").json()["value"]
    assert [a["principalDisplayName"] for a in assigned] == ["Fabrikam Admin"]
    # Without Application.Read.All (or a higher one) the list is refused.
    weak = home_graph_token(sb, ["User.Read.All", "GroupMember.Read.All"])
    refused = graph(sb, weak, f"servicePrincipals/{sp['id']}/appRoleAssignedTo")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "Authorization_RequestDenied"


def test_it_lists_a_users_app_role_assignments_with_directory_read_all(sb):
    token = home_graph_token(sb, ["Directory.Read.All"])
    sp_id = graph(sb, token, f"servicePrincipals(appId='{PORTAL_APP}')").json()["id"]
    mine = graph(
        sb, token, f"users/{OPERATOR}/appRoleAssignments", **{"$filter": f"resourceId eq {sp_id}"}
    )
    assert mine.status_code == 200, mine.text
    [assignment] = mine.json()["value"]
    assert (assignment["principalType"], assignment["resourceId"]) == ("User", sp_id)
    refused = graph(sb, home_graph_token(sb, RECHECK_ROLES), f"users/{OPERATOR}/appRoleAssignments")
    assert refused.status_code == 403  # Directory.Read.All is the least privilege here
    bad_filter = graph(
        sb, token, f"users/{OPERATOR}/appRoleAssignments", **{"$filter": "appRoleId eq 1"}
    )
    assert bad_filter.status_code == 400


def test_it_checks_group_membership_for_the_app(sb):
    token = home_graph_token(sb, RECHECK_ROLES)
    user = graph(sb, token, f"users/{OPERATOR}").json()
    assert user["accountEnabled"] is True
    checked = graph(
        sb, token, f"users/{user['id']}/checkMemberGroups", {"groupIds": [SOC_AMERICAS, SOC_EMEA]}
    )
    assert checked.status_code == 200, checked.text
    assert checked.json()["value"] == [SOC_EMEA]
    set_user_access(sb, OPERATOR, groups=[SOC_AMERICAS], enabled=False)
    again = graph(sb, token, f"users/{OPERATOR}/checkMemberGroups", {"groupIds": [SOC_EMEA]})
    assert again.json()["value"] == []
    assert graph(sb, token, f"users/{OPERATOR}").json()["accountEnabled"] is False


@pytest.mark.parametrize(
    ("roles", "body", "status"),
    [
        (["User.Read.All"], {"groupIds": [SOC_EMEA]}, 403),  # needs a group permission too
        (["GroupMember.Read.All"], {"groupIds": [SOC_EMEA]}, 403),  # and a user permission
        (RECHECK_ROLES, {"groupIds": group_ids(21)}, 400),  # at most 20 per request
        (RECHECK_ROLES, {"groupIds": ["not-a-guid"]}, 400),
        (RECHECK_ROLES, {"groupIds": []}, 400),
    ],
)
def test_it_refuses_a_bad_membership_check(sb, roles, body, status):
    token = home_graph_token(sb, roles)
    assert graph(sb, token, f"users/{OPERATOR}/checkMemberGroups", body).status_code == status


def test_it_knows_only_the_tokens_tenants_users(sb):
    token = home_graph_token(sb, RECHECK_ROLES)
    missing = graph(sb, token, "users/admin@northwind.example")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "Request_ResourceNotFound"


# -- a token for another tenant --------------------------------------------------------------


def test_it_can_issue_a_token_naming_another_tenant(app_service_env):
    sb = app_service_env
    consent(sb, NORTHWIND)
    issue_tokens_for_another_tenant(sb, NORTHWIND, HOME, count=1)
    mi = ManagedIdentityCredential(client_id=MI_CLIENT_ID)
    credential = ClientAssertionCredential(
        NORTHWIND,
        PORTAL_APP,
        lambda: mi.get_token("api://AzureADTokenExchange/.default").token,
        authority=sb.authority,
        connection_verify=sb.ca_path,
    )
    forged = claims(credential.get_token(GRAPH).token)
    assert forged["tid"] == HOME
    assert forged["iss"] == forged["idp"] == f"{sb.authority}/{HOME}/"
    # Only that one token: the fault ran out.
    honest = claims(
        token_request(sb, NORTHWIND, client_credentials(sb, NORTHWIND)).json()["access_token"]
    )
    assert honest["tid"] == NORTHWIND


def test_it_refuses_a_wrong_tenant_fault_without_a_tenant_guid(sb):
    with pytest.raises(ControlError) as info:
        sb.control.add_fault(target="token", tid="northwind.example")
    assert info.value.status == 400
    assert sb.control.faults() == []
