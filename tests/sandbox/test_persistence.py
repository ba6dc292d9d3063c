"""A sandbox with a state dir keeps its directory, signing key and CA across restarts, as
real Entra does (`make demo` restarts it next to a portal whose database persists)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from urllib.parse import urlencode

import requests

from entra_sandbox.directory import load_directory
from entra_sandbox.testing import run_sandbox

from .demo import (
    ADATUM,
    DEMO_SCENARIO,
    GRAPH,
    HOME,
    NORTHWIND,
    PORTAL_APP,
    PORTAL_ROLES,
    TAILSPIN,
    WOODGROVE,
    claims,
    client_credentials,
    consent,
    https,
    token_request,
)

CALLBACK = "http://localhost:8000/consent/callback/"
SMALL = {
    "tenants": [
        {"id": HOME, "name": "Home", "domain": "home.example"},
        {"id": NORTHWIND, "name": "Northwind", "domain": "northwind.example"},
    ],
    "applications": [
        {"tenant": HOME, "client_id": PORTAL_APP, "name": "Portal", "multi_tenant": True}
    ],
}


def accept_consent(sb, tenant: str, admin: str) -> None:
    """Admin consent through the consent page's form, as a customer's admin gives it."""
    query = {"client_id": PORTAL_APP, "redirect_uri": CALLBACK, "state": "s", "scope": GRAPH}
    response = https(sb).post(
        f"{sb.login_url}/{tenant}/v2.0/adminconsent?{urlencode(query)}",
        data={"user": admin, "action": "accept"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text
    assert "admin_consent=True" in response.headers["Location"]


def app_token(sb, tenant: str) -> requests.Response:
    return token_request(sb, tenant, client_credentials(sb, tenant))


def portal_sp(directory: dict, tenant: str) -> dict | None:
    t = next(t for t in directory["tenants"] if t["id"] == tenant)
    return next((s for s in t["service_principals"] if s["application"] == PORTAL_APP), None)


def saved_directory(state_dir: Path) -> dict:
    return json.loads((state_dir / "directory.json").read_text())["directory"]


def test_it_keeps_a_consent_given_on_the_consent_page_across_a_restart(tmp_path):
    with run_sandbox(DEMO_SCENARIO, state_dir=tmp_path) as sb:
        accept_consent(sb, NORTHWIND, "admin@northwind.example")
        before = claims(app_token(sb, NORTHWIND).json()["access_token"])
        directory = sb.control.directory()
    with run_sandbox(DEMO_SCENARIO, state_dir=tmp_path) as sb:
        assert sb.notices == []
        after = claims(app_token(sb, NORTHWIND).json()["access_token"])
        assert sb.control.directory() == directory
    assert after["roles"] == before["roles"] == ["Organization.Read.All"]
    assert after["oid"] == before["oid"]


def test_it_keeps_control_api_changes_across_a_restart(tmp_path):
    with run_sandbox(DEMO_SCENARIO, state_dir=tmp_path) as sb:
        for tenant in (NORTHWIND, TAILSPIN, WOODGROVE):
            consent(sb, tenant)
        sb.control.set_roles(NORTHWIND, {"graph": ["Directory.Read.All"]}, application=PORTAL_APP)
        sb.control.revoke(TAILSPIN)
        sb.control.disable(WOODGROVE)
        sb.control.delete_tenant(ADATUM)
        sb.control.update_application(
            PORTAL_APP, name="Renamed Portal", redirect_uris=["http://localhost:9000/cb/"]
        )
        directory = sb.control.directory()
    with run_sandbox(DEMO_SCENARIO, state_dir=tmp_path) as sb:
        assert sb.control.directory() == directory
        northwind = claims(app_token(sb, NORTHWIND).json()["access_token"])
        tailspin = app_token(sb, TAILSPIN).json()
        woodgrove = app_token(sb, WOODGROVE).json()
        adatum = app_token(sb, ADATUM).json()
    assert northwind["roles"] == ["Directory.Read.All"]
    assert tailspin["error_codes"] == [700016]
    assert woodgrove["error_codes"] == [7000112]
    assert adatum["error_codes"] == [90002]
    app = next(a for a in directory["applications"] if a["client_id"] == PORTAL_APP)
    assert (app["name"], app["redirect_uris"]) == ("Renamed Portal", ["http://localhost:9000/cb/"])


def test_it_keeps_a_re_enabled_service_principal_enabled(tmp_path):
    with run_sandbox(DEMO_SCENARIO, state_dir=tmp_path) as sb:
        consent(sb, WOODGROVE)
        sb.control.disable(WOODGROVE)
        sb.control.enable(WOODGROVE)
    with run_sandbox(DEMO_SCENARIO, state_dir=tmp_path) as sb:
        assert app_token(sb, WOODGROVE).status_code == 200


def test_it_saves_the_scenarios_directory_on_reset(tmp_path):
    with run_sandbox(DEMO_SCENARIO, state_dir=tmp_path) as sb:
        consent(sb, NORTHWIND)
        sb.control.delete_tenant(ADATUM)
        sb.control.reset()
        assert saved_directory(tmp_path) == load_directory(DEMO_SCENARIO).to_json()
    with run_sandbox(DEMO_SCENARIO, state_dir=tmp_path) as sb:
        assert portal_sp(sb.control.directory(), NORTHWIND) is None
        assert app_token(sb, ADATUM).json()["error_codes"] == [700016]


def test_it_discards_the_saved_directory_when_the_scenario_changes(tmp_path):
    with run_sandbox(SMALL, state_dir=tmp_path, subprocess=True) as sb:
        consent(sb, NORTHWIND)
    changed = {**SMALL, "settings": {"access_token_lifetime": 600}}
    with run_sandbox(changed, state_dir=tmp_path, subprocess=True) as sb:
        assert portal_sp(sb.control.directory(), NORTHWIND) is None
    log = (tmp_path / "sandbox.log").read_text().splitlines()
    assert [line for line in log if "discarded" in line] == [
        f"entra_sandbox: discarded the saved directory {tmp_path / 'directory.json'}: "
        "the scenario changed since it was saved; starting from the scenario"
    ]


def test_it_starts_from_the_scenario_when_the_saved_file_is_corrupt(tmp_path):
    (tmp_path / "directory.json").write_text('{"format": 1, "directory": ')
    with run_sandbox(DEMO_SCENARIO, state_dir=tmp_path) as sb:
        [notice] = sb.notices
        assert "directory.json: it is not a saved directory (JSONDecodeError" in notice
        assert sb.control.directory() == load_directory(DEMO_SCENARIO).to_json()
    assert (tmp_path / "directory.json.corrupt").read_text() == '{"format": 1, "directory": '
    assert saved_directory(tmp_path) == load_directory(DEMO_SCENARIO).to_json()


def test_it_starts_from_the_scenario_when_the_saved_file_has_another_shape(tmp_path):
    with run_sandbox(SMALL, state_dir=tmp_path):
        pass
    document = json.loads((tmp_path / "directory.json").read_text())
    del document["directory"]["tenants"][0]["users"]
    (tmp_path / "directory.json").write_text(json.dumps(document))
    with run_sandbox(SMALL, state_dir=tmp_path) as sb:
        [notice] = sb.notices
        assert "it is not a saved directory (KeyError: 'users')" in notice


def test_it_keeps_the_signing_key_and_the_ca_across_a_restart(tmp_path):
    with run_sandbox(DEMO_SCENARIO, state_dir=tmp_path) as sb:
        consent(sb, NORTHWIND)
        token = app_token(sb, NORTHWIND).json()["access_token"]
        ca = Path(sb.ca_path).read_bytes()
        # The token's issuer names the authority, port included: the restart keeps it.
        port = int(sb.authority.rsplit(":", 1)[1])
    with run_sandbox(DEMO_SCENARIO, state_dir=tmp_path, port=port) as sb:
        assert Path(sb.ca_path).read_bytes() == ca
        response = requests.get(
            f"{sb.resource_urls['graph']}/v1.0/organization",
            headers={"Authorization": f"Bearer {token}"},
            verify=sb.ca_path,
            timeout=10,
        )
    assert response.status_code == 200, response.text


def test_it_persists_nothing_without_a_state_dir():
    with run_sandbox(SMALL) as sb:
        consent(sb, NORTHWIND)
        assert not (sb.state_dir / "directory.json").exists()
    with run_sandbox(SMALL, subprocess=True) as sb:
        consent(sb, NORTHWIND)
        state_dir = Path(sb.ca_path).parent
        assert not (state_dir / "directory.json").exists()
        assert not (state_dir / "signing-key.pem").exists()


def test_it_saves_the_latest_directory_under_concurrent_changes(tmp_path):
    admins = {
        NORTHWIND: "admin@northwind.example",
        TAILSPIN: "admin@tailspin.example",
        WOODGROVE: "admin@woodgrove.example",
    }
    with run_sandbox(DEMO_SCENARIO, state_dir=tmp_path) as sb:

        def churn(tenant: str) -> None:
            for _ in range(5):
                accept_consent(sb, tenant, admins[tenant])
                sb.control.disable(tenant)
                sb.control.set_roles(tenant, PORTAL_ROLES, application=PORTAL_APP)
                sb.control.enable(tenant)

        threads = [threading.Thread(target=churn, args=(t,)) for t in admins]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert saved_directory(tmp_path) == sb.control.directory()
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
