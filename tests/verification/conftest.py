"""Fixtures for the verification engine: tenants, consent granted through the sandbox's
control API, and a short retry policy so transient paths run in milliseconds."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mssp_portal import identity
from tenants.models import Tenant, Verification
from tenants.verification.runner import run_verification
from tests.conftest import PORTAL_APP

# What the demo's portal app requests, per resource (entra_sandbox/scenarios/demo.toml).
APP_PERMISSIONS = {
    "graph": ["Organization.Read.All"],
    "defender": ["Incident.Read.All"],
    "mde": ["Ti.ReadWrite.All"],
}


@pytest.fixture(autouse=True)
def fast_retries(settings) -> None:
    settings.VERIFY_RETRIES = 2
    settings.VERIFY_RETRY_BASE_DELAY = 0.01
    settings.VERIFY_RETRY_MAX_DELAY = 3
    settings.VERIFY_HTTP_TIMEOUT = 5


@pytest.fixture(autouse=True)
def cold_assertion() -> Iterator[None]:
    """Each test starts without a cached managed-identity token, so identity-endpoint
    counts and identity faults are the test's own."""
    identity.forget_assertion()
    yield
    identity.forget_assertion()


@pytest.fixture
def consent(sandbox) -> Callable[..., None]:
    """Grant the portal app's permissions in a tenant the way admin consent does (the
    service principal with its app-role assignments), through the control API."""

    def grant(tenant_id: str, roles: dict[str, list[str]] | None = None) -> None:
        sandbox.control.set_roles(tenant_id, roles or APP_PERMISSIONS, application=PORTAL_APP)

    return grant


@pytest.fixture
def make_tenant(db) -> Callable[..., Tenant]:
    def make(tenant_id: str, profile: str = "defender-xdr-readonly", **fields) -> Tenant:
        return Tenant.objects.create(
            tenant_id=tenant_id, cloud="sandbox", access_profile=profile, **fields
        )

    return make


@pytest.fixture
def verify() -> Callable[[Tenant], Verification]:
    """Queue and run one verification of `tenant` in this thread; returns it finished."""

    def run(tenant: Tenant, trigger: str = Verification.Trigger.MANUAL) -> Verification:
        verification, _ = tenant.request_verification(trigger, "test")
        finished = run_verification(str(verification.code))
        assert finished is not None, "the verification was not claimable"
        tenant.refresh_from_db()
        return finished

    return run
