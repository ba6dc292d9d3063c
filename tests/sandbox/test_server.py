"""The listeners: keep-alive connections (bodies drained), and the optional plain-http
browser pages."""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import urlencode

import requests

from entra_sandbox.server import Sandbox
from entra_sandbox.testing import run_sandbox

from .demo import (
    DEMO_SCENARIO,
    GRAPH,
    HOME,
    NORTHWIND,
    PORTAL_APP,
    client_credentials,
    https,
    token_request,
)


def _connections(session: requests.Session, url: str) -> int:
    pool = session.get_adapter(url).poolmanager
    return sum(p.num_connections for p in pool.pools._container.values())


def test_it_keeps_connections_alive_across_requests_with_bodies(sb):
    session = requests.Session()
    session.verify = sb.ca_path
    session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment wins
    discovery = f"{sb.authority}/{HOME}/v2.0/.well-known/openid-configuration"
    assert session.get(discovery, timeout=10).status_code == 200
    # A body no handler reads (the probe refuses before looking at it) is drained.
    unread = session.post(
        f"{sb.resource_urls['graph']}/v1.0/organization", data="x" * 5000, timeout=10
    )
    assert unread.status_code == 401
    token = session.post(
        f"{sb.authority}/{HOME}/oauth2/v2.0/token", data=client_credentials(sb, HOME), timeout=10
    )
    assert token.status_code == 200
    assert session.get(discovery, timeout=10).status_code == 200
    assert _connections(session, sb.authority) == 1


def test_it_closes_the_connection_after_an_oversized_body(sb):
    session = requests.Session()
    session.verify = sb.ca_path
    session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment wins
    url = f"{sb.authority}/{HOME}/oauth2/v2.0/token"
    huge = session.post(url, data={"padding": "x" * (3 * 1024 * 1024)}, timeout=30)
    assert huge.status_code == 400
    assert huge.headers.get("Connection") == "close"
    assert token_request(sb, HOME, client_credentials(sb, HOME)).status_code == 200


def test_it_serves_the_browser_pages_over_plain_http_only_when_asked():
    query = urlencode(
        {
            "client_id": PORTAL_APP,
            "scope": GRAPH,
            "redirect_uri": "http://localhost:8000/consent/callback/",
        }
    )
    with run_sandbox(DEMO_SCENARIO, login_port=0) as sb:
        assert sb.login_url.startswith("http://127.0.0.1:")
        assert sb.env["SANDBOX_LOGIN_URL"] == sb.login_url
        config = https(sb).get(
            f"{sb.authority}/{HOME}/v2.0/.well-known/openid-configuration", timeout=10
        )
        # Discovery sends msal's sign-in to the plain-http pages then.
        assert config.json()["authorization_endpoint"] == (
            f"{sb.login_url}/{HOME}/oauth2/v2.0/authorize"
        )
        plain = requests.get(f"{sb.login_url}/{NORTHWIND}/v2.0/adminconsent?{query}", timeout=10)
        assert plain.status_code == 200
        assert "Fabrikam MSSP Portal" in plain.text
        # The https host serves them still, and nothing else is on the plain-http port.
        secure = https(sb).get(f"{sb.authority}/{NORTHWIND}/v2.0/adminconsent?{query}", timeout=10)
        assert secure.status_code == 200
        token = requests.post(f"{sb.login_url}/{HOME}/oauth2/v2.0/token", timeout=10)
        assert token.status_code == 404


def test_it_leaves_no_temp_dir_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with run_sandbox(DEMO_SCENARIO) as sb:
        assert Path(sb.ca_path).parent.parent == tmp_path
    with run_sandbox(DEMO_SCENARIO, subprocess=True) as child:
        assert Path(child.ca_path).is_file()
    # What `serve` without --state-dir uses: a temp dir of its own, removed at stop.
    own = Sandbox(DEMO_SCENARIO).start()
    assert (own.state_dir / "sandbox.env").is_file()
    own.stop()
    assert list(tmp_path.iterdir()) == []
