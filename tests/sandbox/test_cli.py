"""`python -m entra_sandbox serve` in a child process (what run_sandbox(subprocess=True)
and `make demo` use)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from entra_sandbox.testing import ENV_NAMES, run_sandbox

from .demo import DEMO_SCENARIO, HOME, client_credentials, token_request


def test_it_serves_in_a_child_process_and_writes_the_state_dir(tmp_path):
    with run_sandbox(DEMO_SCENARIO, state_dir=tmp_path, subprocess=True) as sb:
        assert tuple(sb.env) == ENV_NAMES
        assert sb.authority.startswith("https://127.0.0.1:")
        assert sb.env["SANDBOX_CONTROL_URL"] == f"{sb.authority}/_sandbox"
        assert token_request(sb, HOME, client_credentials(sb, HOME)).status_code == 200
        assert sb.control.counters()["by_kind"] == {"mi": 1, "token": 1}
        env_file = (tmp_path / "sandbox.env").read_text().splitlines()
        assert env_file == [f"{k}={v}" for k, v in sb.env.items()]
        assert Path(sb.ca_path).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert sb.process.returncode is not None


def test_it_takes_a_scenario_dict_in_a_child_process(tmp_path):
    scenario = {"tenants": [{"id": HOME, "name": "Home", "domain": "home.example"}]}
    with run_sandbox(scenario, state_dir=tmp_path, subprocess=True) as sb:
        assert sb.control.directory()["tenants"][0]["domain"] == "home.example"


def test_it_exits_with_a_clear_message_on_an_invalid_scenario(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[tenants]]\nid = "not-a-guid"\ndomain = "x.example"\n')
    result = subprocess.run(
        [sys.executable, "-m", "entra_sandbox", "serve", "--scenario", str(bad), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 2
    assert "tenants[0].id: 'not-a-guid' is not a GUID" in result.stderr
