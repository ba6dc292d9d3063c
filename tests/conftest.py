"""Shared fixtures: the sandbox Entra, the portal pointed at it, and the staff personas."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

DEMO_SCENARIO = Path(__file__).resolve().parent.parent / "entra_sandbox/scenarios/demo.toml"

# The demo scenario's identifiers (entra_sandbox/scenarios/demo.toml).
HOME_TENANT = "7d3e1c5a-2b4f-4e8a-9c61-0f5b8d2a4e17"
PORTAL_APP = "c4b1f0de-6a3e-4f27-8d59-2e8a7c1b9f30"
MANAGED_IDENTITY_CLIENT_ID = "5e2a9c71-3d84-4b6f-a0e2-91c7d4f8b6a2"
MANAGED_IDENTITY_OBJECT_ID = "a81f3d6c-0e52-4c9b-b7a4-6d2e9f1c5b83"
NORTHWIND = "2c8f4a1e-9b3d-4e6a-8f27-5d1c0b9a7e64"  # healthy once consented
TAILSPIN = "8e5b2d7f-1a4c-4f93-b6e8-3c0d9a2f1b75"  # no Defender licence
WOODGROVE = "4a7c9e2b-6d1f-4b85-a3c0-8e2f5d7b1c96"  # app disabled later
LITWARE = "b3d6f8a1-5c2e-4a97-9d14-7f0e2b6c8a53"  # wrong-direction FIC
LITWARE_LOCAL_APP = "e1f4a7c2-8b5d-4e36-9a0f-3d6c1b8e5f29"
ADATUM = "f9a2c5e8-0b7d-4c14-8e63-1a5f9d2b7c40"  # never consents

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[object]:
    """One entra_sandbox for the whole run, serving the demo scenario."""
    from entra_sandbox.testing import run_sandbox

    with run_sandbox(DEMO_SCENARIO) as sb:
        yield sb


@pytest.fixture
def sandbox(sandbox_server, settings, monkeypatch) -> Iterator[object]:
    """The portal configured for the sandbox cloud, as `make demo` configures it: the
    settings the sandbox's env file sets, and the managed-identity variables azure-identity
    reads. Faults, clock skew and directory changes are undone after the test."""
    sb = sandbox_server
    env = sb.env
    settings.ENTRA_CLOUD = "sandbox"
    settings.ENTRA_CA_BUNDLE = sb.ca_path
    settings.SANDBOX = {
        "authority": env["AZURE_AUTHORITY_HOST"],
        "login": env["SANDBOX_LOGIN_URL"],
        "graph": env["SANDBOX_GRAPH_URL"],
        "defender": env["SANDBOX_DEFENDER_URL"],
        "mde": env["SANDBOX_MDE_URL"],
        "arm": env["SANDBOX_ARM_URL"],
        "loganalytics": env["SANDBOX_LOGANALYTICS_URL"],
    }
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_AUTHORITY_HOST"):
        monkeypatch.setenv(name, env[name])
    for name in ("AZURE_POD_IDENTITY_AUTHORITY_HOST", "MSI_ENDPOINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    yield sb
    sb.control.clear_faults()
    sb.control.set_clock_skew(0)
    sb.control.reset()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (Playwright's own browser download is not
    available here). It trusts the sandbox's CA by its key, as a browser with the CA
    installed would (the sign-in and consent pages are on the sandbox's https host), and
    no other certificate error."""
    from playwright.sync_api import sync_playwright

    from entra_sandbox.testing import browser_trust_args

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path="/usr/bin/chromium", args=[*CHROMIUM_ARGS, *browser_trust_args()]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where browser tests save screenshots for review."""
    path = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path
