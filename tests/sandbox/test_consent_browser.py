"""The admin consent round trip in a real browser (Debian's Chromium via Playwright): the
consent page on the sandbox's https host (the browser trusts the sandbox's CA by its key)
redirects to a tiny local server registered as the app's redirect URI, which records what
it received."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError

from entra_sandbox.testing import run_sandbox

from .demo import (
    DEMO_SCENARIO,
    GRAPH,
    NORTHWIND,
    PORTAL_APP,
    TAILSPIN,
    claims,
    client_credentials,
    token_request,
)

pytestmark = pytest.mark.browser


class _Recorder(BaseHTTPRequestHandler):
    hits: list[dict[str, str]]

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        if url.path != "/consent/callback/":  # e.g. the browser's favicon request
            self.send_error(404)
            return
        self.hits.append({k: v[0] for k, v in parse_qs(url.query).items()})
        body = b"<!doctype html><title>Callback</title><h1 id='landed'>Back at the app</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def callback_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    hits: list[dict[str, str]] = []
    handler = type("Recorder", (_Recorder,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/consent/callback/", hits
    finally:
        server.shutdown()
        server.server_close()


def _consent_page(sb, browser, redirect_uri: str, tenant: str = NORTHWIND):
    sb.control.update_application(PORTAL_APP, redirect_uris=[redirect_uri])
    query = urlencode(
        {"client_id": PORTAL_APP, "scope": GRAPH, "redirect_uri": redirect_uri, "state": "st-1"}
    )
    page = browser.new_page()
    page.goto(f"{sb.login_url}/{tenant}/v2.0/adminconsent?{query}")
    return page


def test_it_completes_the_consent_round_trip_in_a_browser(sb, chromium, callback_server):
    redirect_uri, hits = callback_server
    page = _consent_page(sb, chromium, redirect_uri)
    assert page.locator("#app-name").inner_text() == "Fabrikam MSSP Portal"
    assert "Read all incidents" in page.locator("#permissions").inner_text()
    page.select_option("select[name=user]", label="admin@northwind.example")
    page.get_by_role("button", name="Accept").click()
    page.wait_for_selector("#landed")
    assert hits == [
        {
            "admin_consent": "True",
            "tenant": NORTHWIND,
            "scope": "https://graph.microsoft.com/Organization.Read.All "
            "https://api.security.microsoft.com/Incident.Read.All "
            "https://api.securitycenter.microsoft.com/Ti.ReadWrite.All",
            "state": "st-1",
        }
    ]
    token = token_request(sb, NORTHWIND, client_credentials(sb, NORTHWIND)).json()["access_token"]
    assert claims(token)["roles"] == ["Organization.Read.All"]
    page.close()


def test_it_returns_a_cancel_to_the_app_in_a_browser(sb, chromium, callback_server):
    redirect_uri, hits = callback_server
    page = _consent_page(sb, chromium, redirect_uri)
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_selector("#landed")
    assert hits[0]["error"] == "consent_required"
    assert hits[0]["error_description"].startswith("AADSTS65004: ")
    assert hits[0]["state"] == "st-1"
    page.close()


def test_it_returns_a_consent_refused_for_a_missing_service_in_a_browser(
    sb, chromium, callback_server
):
    redirect_uri, hits = callback_server
    page = _consent_page(sb, chromium, redirect_uri, tenant=TAILSPIN)
    page.select_option("select[name=user]", label="admin@tailspin.example")
    page.get_by_role("button", name="Accept").click()
    page.wait_for_selector("#landed")
    [hit] = hits
    assert set(hit) == {"admin_consent", "tenant", "error", "error_description", "state"}
    assert (hit["admin_consent"], hit["tenant"], hit["error"], hit["state"]) == (
        "True",
        TAILSPIN,
        "invalid_client",
        "st-1",
    )
    assert hit["error_description"].startswith("AADSTS650052: The app is trying to access")
    page.close()


def test_it_trusts_only_the_pinned_ca(chromium, tmp_path):
    # A sandbox with a state dir has a CA of its own: the pin does not cover it, so the
    # browser refuses it as it would any unknown certificate.
    with run_sandbox(DEMO_SCENARIO, state_dir=tmp_path) as other:
        page = chromium.new_page()
        try:
            with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
                page.goto(f"{other.authority}/{NORTHWIND}/v2.0/.well-known/openid-configuration")
        finally:
            page.close()
