"""Scenario loading and validation."""

from __future__ import annotations

import pytest

from entra_sandbox.directory import ScenarioError, load_directory

from .demo import DEMO_SCENARIO, HOME, MI_CLIENT_ID, PORTAL_APP, TAILSPIN

TENANT = "11111111-1111-4111-8111-111111111111"
APP = "22222222-2222-4222-8222-222222222222"


def minimal(**extra) -> dict:
    scenario = {
        "tenants": [{"id": TENANT, "name": "T", "domain": "t.example"}],
        "applications": [{"tenant": TENANT, "client_id": APP, "name": "A"}],
    }
    scenario.update(extra)
    return scenario


def test_it_loads_the_demo_scenario():
    directory = load_directory(DEMO_SCENARIO)
    assert directory.tenant("fabrikam-mssp.example").id == HOME
    assert directory.tenant(TAILSPIN).services == ["graph", "arm", "loganalytics"]
    assert directory.managed_identity(client_id=MI_CLIENT_ID).tenant == HOME
    # An app's home tenant always has its service principal.
    assert directory.service_principal(HOME, PORTAL_APP) is not None
    admin = directory.tenant(HOME).user("admin@fabrikam-mssp.example")
    assert admin.roles_for(PORTAL_APP) == ["Portal.Admin"]


def test_it_loads_toml_text_and_dicts():
    text = f'[[tenants]]\nid = "{TENANT}"\nname = "T"\ndomain = "t.example"\n'
    assert load_directory(text).tenant(TENANT).name == "T"
    assert load_directory(minimal()).application(APP).name == "A"


def test_it_applies_settings_and_consents():
    directory = load_directory(
        minimal(
            settings={"mi_token_lifetime": 600},
            consents=[{"tenant": "t.example", "application": APP, "roles": {"graph": ["X"]}}],
        )
    )
    assert directory.settings["mi_token_lifetime"] == 600
    assert directory.service_principal(TENANT, APP).roles == {"graph": ["X"]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"tenants": [{"id": "nope", "domain": "t.example"}]},
            r"tenants\[0\]\.id: 'nope' is not a GUID",
        ),
        (
            {"applications": [{"tenant": "x.example", "client_id": APP}]},
            r"applications\[0\]\.tenant: unknown tenant 'x.example'",
        ),
        (
            {"managed_identities": [{"tenant": TENANT, "client_id": "bad", "object_id": APP}]},
            r"managed_identities\[0\]\.client_id",
        ),
        (
            {
                "consents": [
                    {"tenant": TENANT, "application": "33333333-3333-4333-8333-333333333333"}
                ]
            },
            r"consents\[0\]\.application: unknown application",
        ),
        ({"settings": {"lifetime": 5}}, r"unknown setting 'lifetime'"),
    ],
)
def test_it_explains_invalid_scenarios(change, message):
    with pytest.raises(ScenarioError, match=message):
        load_directory(minimal(**change))


def test_it_refuses_unknown_services_and_app_role_references():
    bad_service = minimal()
    bad_service["tenants"][0]["services"] = ["graph", "sharepoint"]
    with pytest.raises(ScenarioError, match="unknown service 'sharepoint'"):
        load_directory(bad_service)
    bad_role = minimal()
    bad_role["tenants"][0]["users"] = [
        {"upn": "a@t.example", "app_roles": ["44444444-4444-4444-8444-444444444444/Admin"]}
    ]
    with pytest.raises(ScenarioError, match="unknown application"):
        load_directory(bad_role)


def test_it_refuses_a_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ScenarioError, match="not found"):
        load_directory(tmp_path / "missing.toml")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_directory("[[tenants]\nid=\n")


def test_it_loads_groups_and_the_group_claims_setting():
    group = "55555555-5555-4555-8555-555555555555"
    scenario = minimal()
    scenario["tenants"][0]["groups"] = [{"id": group, "name": "SOC"}]
    undeclared = "66666666-6666-4666-8666-666666666666"
    scenario["tenants"][0]["users"] = [{"upn": "a@t.example", "groups": [group, undeclared]}]
    scenario["applications"][0]["group_membership_claims"] = "SecurityGroup"
    directory = load_directory(scenario)
    tenant = directory.tenant(TENANT)
    assert tenant.user("a@t.example").groups == [group, undeclared]
    # A group a user is in but the scenario does not declare exists, named by its id.
    assert {g.id: g.name for g in tenant.groups.values()} == {group: "SOC", undeclared: undeclared}
    assert directory.application(APP).group_membership_claims == "SecurityGroup"
    assert load_directory(minimal()).application(APP).group_membership_claims == "None"


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("users", [{"upn": "a@t.example", "groups": ["sales"]}], r"users\[0\]\.groups: 'sales'"),
        ("groups", [{"id": "x", "name": "X"}], r"groups\[0\]\.id: 'x' is not a GUID"),
        ("app", "Everything", r"group_membership_claims: expected one of None, SecurityGroup"),
    ],
)
def test_it_explains_invalid_groups(where, value, message):
    scenario = minimal()
    if where == "app":
        scenario["applications"][0]["group_membership_claims"] = value
    else:
        scenario["tenants"][0][where] = value
    with pytest.raises(ScenarioError, match=message):
        load_directory(scenario)
