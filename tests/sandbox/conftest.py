"""Fixtures for the entra_sandbox tests: one sandbox per module (demo scenario), restored
after every test, and the environment the Microsoft clients read."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from entra_sandbox.testing import browser_trust_args, run_sandbox

from .demo import DEMO_SCENARIO

# Variables that would make azure-identity pick another managed identity source.
_OTHER_MI_SOURCES = (
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
)


@pytest.fixture(scope="module")
def sb() -> Iterator[object]:
    with run_sandbox(DEMO_SCENARIO) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _restore_sandbox(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test that uses `sb` starts with zero counters; its faults, clock skew and
    directory changes are undone afterwards."""
    sandbox = request.getfixturevalue("sb") if "sb" in request.fixturenames else None
    if sandbox is not None:
        sandbox.control.reset_counters()
    yield
    if sandbox is not None:
        sandbox.control.reset()


@pytest.fixture
def app_service_env(sb, monkeypatch: pytest.MonkeyPatch) -> object:
    """azure-identity in App Service mode (IDENTITY_ENDPOINT + IDENTITY_HEADER)."""
    for name in (*_OTHER_MI_SOURCES, "AZURE_POD_IDENTITY_AUTHORITY_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", sb.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", sb.identity_header)
    return sb


@pytest.fixture
def imds_env(sb, monkeypatch: pytest.MonkeyPatch) -> object:
    """azure-identity in IMDS mode, pointed at the sandbox by AZURE_POD_IDENTITY_AUTHORITY_HOST."""
    for name in (*_OTHER_MI_SOURCES, "IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", sb.imds_url)
    return sb


@pytest.fixture
def chromium(request: pytest.FixtureRequest) -> Iterator[object]:
    """Debian's Chromium through Playwright (no Playwright browser download here), trusting
    the sandbox's CA by its key. Two sync Playwright instances cannot run at once, so the
    suite's shared `browser` fixture is used when the project defines one."""
    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("/usr/bin/chromium is not installed")
    try:
        shared = request.getfixturevalue("browser")
    except pytest.FixtureLookupError:
        shared = None
    if shared is not None:
        yield shared
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                *browser_trust_args(),
            ],
        )
        try:
            yield browser
        finally:
            browser.close()
