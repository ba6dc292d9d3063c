"""Transient answers (429, 5xx, time-outs): retried with backoff honouring Retry-After; if
they persist, the tenant keeps its last definitive status, marked stale."""

from __future__ import annotations

import pytest

from tenants.models import PlatformAlert, Tenant, Verification
from tenants.verification.runner import run_batch
from tests.conftest import NORTHWIND, TAILSPIN, WOODGROVE

Outcome = Verification.Outcome


@pytest.fixture
def northwind(sandbox, consent, make_tenant, verify) -> Tenant:
    consent(NORTHWIND)
    tenant = make_tenant(NORTHWIND)
    assert verify(tenant).outcome == Outcome.VERIFIED
    sandbox.control.reset_counters()
    return tenant


def test_it_waits_as_long_as_retry_after_says_then_succeeds(sandbox, northwind, verify):
    sandbox.control.add_fault(target="token", tenant=NORTHWIND, status=429, retry_after=1, count=1)

    verification = verify(northwind)

    assert verification.outcome == Outcome.VERIFIED
    assert verification.results["graph"]["retries"] == 1
    assert sandbox.control.counters()["by_tenant"][NORTHWIND]["token"] == 3
    # Retry-After: 1 was honoured (the backoff alone would have waited 10 ms).
    assert verification.duration.total_seconds() >= 1


def test_it_recovers_from_503_within_its_retries(sandbox, northwind, verify):
    sandbox.control.add_fault(target="token", tenant=NORTHWIND, status=503, count=2)

    verification = verify(northwind)

    assert verification.outcome == Outcome.VERIFIED
    assert verification.results["graph"]["retries"] == 2
    assert northwind.stale_since is None


def test_it_keeps_the_last_status_marked_stale_when_entra_stays_down(sandbox, northwind, verify):
    status_since = northwind.status_since
    sandbox.control.add_fault(target="token", tenant=NORTHWIND, status=503)

    verification = verify(northwind)

    assert verification.outcome == Outcome.TRANSIENT
    assert verification.diagnosis == "entra_unavailable"
    assert verification.results["graph"]["http_status"] == 503
    assert verification.results["graph"]["retries"] == 2
    assert northwind.status == Tenant.Status.VERIFIED
    assert northwind.status_since == status_since
    assert northwind.diagnosis == "verified"
    assert northwind.stale_since == verification.finished_at
    assert not PlatformAlert.objects.exists()

    sandbox.control.clear_faults()
    assert verify(northwind).outcome == Outcome.VERIFIED
    assert northwind.stale_since is None


def test_it_does_not_wait_in_line_for_a_long_retry_after(sandbox, northwind, verify):
    # Entra's usual answer to a throttled client: Retry-After: 60. Waiting that long would
    # hold a worker thread; the scheduler comes back for stale tenants instead.
    sandbox.control.add_fault(target="token", tenant=NORTHWIND, status=429, retry_after=60)

    verification = verify(northwind)

    assert verification.outcome == Outcome.TRANSIENT
    assert verification.diagnosis == "throttled"
    assert verification.error_code == "AADSTS90055"
    assert sandbox.control.counters()["by_tenant"][NORTHWIND]["token"] == 1
    assert northwind.stale_since is not None


def test_it_retries_a_throttled_probe(sandbox, northwind, verify):
    sandbox.control.add_fault(target="graph", tenant=NORTHWIND, status=429, retry_after=0, count=1)

    verification = verify(northwind)

    assert verification.outcome == Outcome.VERIFIED
    assert verification.results["graph"]["retries"] == 1
    assert sandbox.control.counters()["by_tenant"][NORTHWIND]["graph"] == 2


def test_it_treats_a_hanging_service_as_transient(sandbox, northwind, verify, settings):
    settings.VERIFY_HTTP_TIMEOUT = 0.3
    sandbox.control.add_fault(target="defender", tenant=NORTHWIND, hang=True)

    verification = verify(northwind)

    assert verification.outcome == Outcome.TRANSIENT
    assert verification.diagnosis == "network_error"
    assert verification.results["defender"]["probe"]["detail"] == "timed out"
    assert northwind.status == Tenant.Status.VERIFIED
    assert northwind.stale_since is not None


@pytest.mark.django_db(transaction=True)
def test_a_throttled_tenant_does_not_hold_up_the_others(
    sandbox, consent, make_tenant, verify, settings
):
    tenants = []
    for tid in (NORTHWIND, TAILSPIN, WOODGROVE):
        consent(tid)
        tenants.append(make_tenant(tid, "graph-reporting"))
    # Northwind is throttled: three answers of Retry-After: 1, then it gives up.
    sandbox.control.add_fault(target="token", tenant=NORTHWIND, status=429, retry_after=1)

    codes = [str(t.request_verification(Verification.Trigger.SCHEDULE)[0].code) for t in tenants]
    throttled, *others = run_batch(codes, concurrency=2)

    assert throttled.outcome == Outcome.TRANSIENT
    assert [v.outcome for v in others] == [Outcome.VERIFIED, Outcome.VERIFIED]
    # Both others were done while Northwind's thread was still waiting.
    assert all(v.finished_at < throttled.finished_at for v in others)
    assert (
        max(v.finished_at for v in others) - throttled.started_at
        < (throttled.finished_at - throttled.started_at) / 2
    )
