"""Shared fixtures: the sandbox Entra, the portal pointed at it, and the staff personas."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from consent.models import Invitation
from tenants.models import Tenant, Verification
from tests.personas import (
    PASSWORD,
    enrol_break_glass,
    make_staff,
    make_tenant,
    signed_in_client,
)

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


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """A run ended by SIGTERM (`timeout`, a CI job cancelled) tears down like Ctrl-C does:
    the sandbox's temp dir (entra-sandbox-*) and the test database are removed. Python's
    default for SIGTERM is to exit at once, leaving both behind."""
    signal.signal(signal.SIGTERM, _interrupted)


def pytest_collection_modifyitems(config, items) -> None:
    """`postgresql` drills need a PostgreSQL server: `make test` runs the suite once on
    PostgreSQL and once on SQLite, and they belong to the first pass only (deselected, not
    skipped, on SQLite)."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        return
    deselected = [item for item in items if item.get_closest_marker("postgresql")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("postgresql")]


def point_portal_at(sb, settings, monkeypatch) -> None:
    """Configure the portal for the sandbox `sb`, the way its env file does."""
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
    point_portal_at(sb, settings, monkeypatch)
    yield sb
    sb.control.clear_faults()
    sb.control.set_clock_skew(0)
    sb.control.reset()


@pytest.fixture(autouse=True)
def fresh_rate_limits(request, django_db_blocker) -> Iterator[None]:
    """Each test starts with no request counted against the per-address rate limits. A
    test's own transaction rolls its counts back; a transactional test's flush does not
    reach the cache table, so it is cleared here."""
    yield
    marker = request.node.get_closest_marker("django_db")
    transactional = {"transactional_db", "live_server"} & set(request.fixturenames)
    if transactional or (marker and marker.kwargs.get("transaction")):
        with django_db_blocker.unblock():
            caches["default"].clear()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (Playwright's own browser download is not
    available here). It trusts the sandbox's CA by its key, as a browser with the CA
    installed would (the sign-in and consent pages are on the sandbox's https host), and
    no other certificate error.

    While Playwright's sync API is open, its event loop is this thread's running loop, so
    Django (asgiref's Local) keeps the thread's database connections in a store of their
    own for as long as the browser lives. They are closed here, before the loop stops and
    that store can no longer be reached; left open, one of them kept PostgreSQL from
    dropping the test database at the end of the run."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    from entra_sandbox.testing import browser_trust_args

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path="/usr/bin/chromium", args=[*CHROMIUM_ARGS, *browser_trust_args()]
        )
        yield chromium
        chromium.close()
        connections.close_all()


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


# --- Staff personas and a small fleet (tests/personas.py builds them) -------------------------


@pytest.fixture
def admin_user(db) -> object:
    return make_staff("admin@fabrikam-mssp.example", [roles.ADMIN_ROLE])


@pytest.fixture
def operator_user(db) -> object:
    return make_staff("operator@fabrikam-mssp.example", [roles.OPERATOR_ROLE])


@pytest.fixture
def outsider_user(db) -> object:
    """Signed in once, but holds no portal role (e.g. visitor@…, or roles removed since)."""
    return make_staff("visitor@fabrikam-mssp.example", [])


@pytest.fixture
def superuser(db) -> object:
    user = get_user_model().objects.create_superuser("breakglass", "", PASSWORD)
    enrol_break_glass(user)
    return user


@pytest.fixture
def admin_client(admin_user) -> Client:
    return signed_in_client(admin_user)


@pytest.fixture
def operator_client(operator_user) -> Client:
    return signed_in_client(operator_user)


@pytest.fixture
def outsider_client(outsider_user) -> Client:
    return signed_in_client(outsider_user)


@pytest.fixture
def northwind(db) -> Tenant:
    tenant = make_tenant(
        NORTHWIND,
        display_name="Northwind Traders",
        primary_domain="northwind.example",
        status=Tenant.Status.VERIFIED,
        last_checked_at=timezone.now(),
        last_verified_at=timezone.now(),
    )
    Verification.objects.create(
        tenant=tenant,
        trigger=Verification.Trigger.CONSENT,
        state=Verification.State.DONE,
        outcome=Verification.Outcome.VERIFIED,
        finished_at=timezone.now(),
        results={
            "graph": {
                "token": "ok",
                "tid_matches": True,
                "roles_seen": ["Organization.Read.All"],
                "roles_required": ["Organization.Read.All"],
                "roles_missing": [],
                "probe": {"status": 200, "ok": True, "detail": ""},
                "diagnosis": "",
            }
        },
    )
    return tenant


@pytest.fixture
def tailspin(db) -> Tenant:
    return make_tenant(
        TAILSPIN,
        display_name="Tailspin Toys",
        primary_domain="tailspin.example",
        status=Tenant.Status.INCOMPLETE,
        diagnosis="resource_not_provisioned",
    )


@pytest.fixture
def invitation(db, admin_user) -> Invitation:
    return Invitation.objects.create(
        customer_name="Northwind Traders",
        expected_tenant_id=NORTHWIND,
        access_profile="defender-xdr-readonly",
        expires_at=timezone.now() + timedelta(days=14),
        created_by=admin_user.get_username(),
    )


@pytest.fixture
def entra(sandbox, settings) -> object:
    """The sandbox, with this portal's sign-in redirect URI registered on the portal app
    when PORTAL_BASE_URL is not the demo's."""
    ours = settings.PORTAL_BASE_URL + reverse("accounts:callback")
    if ours != "http://localhost:8000/accounts/callback/":
        consent = settings.PORTAL_BASE_URL + reverse("consent:callback")
        sandbox.control.update_application(PORTAL_APP, redirect_uris=[consent, ours])
    return sandbox
