"""Running verifications: deduplication, claims and leases, batches, the scheduler, tasks."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import pytest
import requests
import time_machine
import urllib3
from django.core.management import call_command
from django.db import connections
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from requests.utils import DEFAULT_CA_BUNDLE_PATH

from mssp_portal import identity
from tenants.models import Tenant, Verification
from tenants.tasks import enqueue_verification, verify_batch, verify_tenant
from tenants.verification import runner, scheduler
from tests.conftest import ADATUM, LITWARE, NORTHWIND, TAILSPIN, WOODGROVE

Outcome = Verification.Outcome


def _at_once(count: int, work) -> list:
    """Run `work` on `count` threads released together; returns their results."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work()
        except Exception as exc:  # reported below, not swallowed
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def _tasks(name: str) -> list[DBTaskResult]:
    return list(DBTaskResult.objects.filter(task_path=f"tenants.tasks.{name}"))


@pytest.mark.django_db(transaction=True)
def test_ten_simultaneous_requests_make_one_verification(make_tenant):
    tenant = make_tenant(NORTHWIND)

    results = _at_once(
        10,
        lambda: enqueue_verification(
            Tenant.objects.get(pk=tenant.pk), Verification.Trigger.MANUAL, "admin@example"
        ),
    )

    assert Verification.objects.count() == 1
    assert sorted(created for _, created in results) == [False] * 9 + [True]
    assert {v.pk for v, _ in results} == {Verification.objects.get().pk}
    assert len(_tasks("verify_tenant")) == 1


@pytest.mark.django_db(transaction=True)
def test_ten_workers_on_one_verification_run_it_once(sandbox, consent, make_tenant):
    consent(NORTHWIND)
    tenant = make_tenant(NORTHWIND)
    verification, _ = tenant.request_verification(Verification.Trigger.MANUAL)
    sandbox.control.reset_counters()

    results = _at_once(10, lambda: runner.run_verification(str(verification.code)))

    assert len([r for r in results if r is not None]) == 1
    verification.refresh_from_db()
    assert verification.outcome == Outcome.VERIFIED
    assert verification.attempts == 1
    assert sandbox.control.counters()["by_tenant"][NORTHWIND]["token"] == 2
    # Done is done: running it again does nothing.
    assert runner.run_verification(str(verification.code)) is None


def test_a_killed_workers_verification_is_picked_up_when_its_lease_expires(
    sandbox, consent, make_tenant, settings
):
    consent(NORTHWIND)
    tenant = make_tenant(NORTHWIND)
    verification, _ = tenant.request_verification(Verification.Trigger.MANUAL)
    # A worker claims it, then dies before recording anything.
    dead = runner.claim(str(verification.code))
    assert dead.state == Verification.State.RUNNING

    assert runner.run_verification(str(verification.code)) is None  # the lease still holds

    with time_machine.travel(timezone.now() + timedelta(seconds=settings.VERIFY_LEASE + 1)):
        finished = runner.run_verification(str(verification.code))

    assert finished.outcome == Outcome.VERIFIED
    assert finished.attempts == 2
    # Had the first worker only been slow, its late result is not written over this one.
    assert runner.finish(dead, runner.Result(Outcome.NO_ACCESS, "not_consented")) is None
    verification.refresh_from_db()
    assert verification.outcome == Outcome.VERIFIED
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.VERIFIED


def test_it_ignores_unknown_and_malformed_codes(db):
    assert runner.run_verification("00000000-0000-0000-0000-000000000000") is None
    assert runner.run_verification("not-a-uuid") is None


@pytest.mark.django_db(transaction=True)
def test_a_batch_verifies_a_fleet_in_parallel(sandbox, consent, make_tenant):
    for tid in (NORTHWIND, TAILSPIN, WOODGROVE):
        consent(tid)
    tenants = [
        make_tenant(NORTHWIND, "full-soc"),
        make_tenant(TAILSPIN, "full-soc"),
        make_tenant(WOODGROVE),
        make_tenant(ADATUM),
    ]
    codes = [str(t.request_verification(Verification.Trigger.CLI)[0].code) for t in tenants]
    sandbox.control.reset_counters()

    finished = runner.run_batch(codes, concurrency=4)

    assert [v.outcome for v in finished] == [
        Outcome.VERIFIED,
        Outcome.INCOMPLETE,
        Outcome.VERIFIED,
        Outcome.NO_ACCESS,
    ]
    # The runs overlapped, and shared one assertion: one managed-identity request.
    assert max(v.started_at for v in finished) < min(v.finished_at for v in finished)
    assert sandbox.control.counters()["by_kind"]["mi"] == 1


def _two_batches_one_hanging(sandbox, consent, make_tenant, settings) -> tuple[list, list]:
    """Batch one: Northwind, whose token request hangs until the test clears the sandbox's
    faults, and Tailspin; batch two, queued: Woodgrove and Litware; then, queued last, a
    consent's verification of Adatum."""
    settings.VERIFY_HTTP_TIMEOUT = 120  # the hang ends when the test releases it
    tenants = []
    for tid in (NORTHWIND, TAILSPIN, WOODGROVE, LITWARE, ADATUM):
        consent(tid)
        tenants.append(make_tenant(tid, "graph-reporting"))
    sandbox.control.add_fault(target="token", tenant=NORTHWIND, hang=True, count=1)
    codes = [
        str(t.request_verification(Verification.Trigger.SCHEDULE)[0].code) for t in tenants[:4]
    ]
    codes.append(str(tenants[4].request_verification(Verification.Trigger.CONSENT)[0].code))
    return codes[:2], codes[2:]


def _in_background(run) -> threading.Thread:
    def target() -> None:
        try:
            run()
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    return thread


def _wait_for(condition, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert thread.is_alive(), "the batch ended before the condition held"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _done(codes: list[str]) -> int:
    return Verification.objects.filter(code__in=codes, state=Verification.State.DONE).count()


@pytest.mark.django_db(transaction=True)
def test_a_workers_batch_takes_queued_verifications_while_its_slow_one_runs(
    sandbox, consent, make_tenant, settings
):
    settings.VERIFY_CONCURRENCY = 2
    batch, other_batch = _two_batches_one_hanging(sandbox, consent, make_tenant, settings)

    # The task the worker runs for a batch (the scheduler hands rounds over as these).
    thread = _in_background(lambda: verify_batch.call(batch))
    # Tailspin's thread, done with its own, verifies the others while Northwind hangs.
    _wait_for(lambda: _done(other_batch) == 3, thread)
    assert Verification.objects.get(code=batch[0]).state == Verification.State.RUNNING
    sandbox.control.clear_faults()
    thread.join(60)

    mine = Verification.objects.filter(code__in=batch)
    assert {(v.outcome, v.attempts) for v in mine} == {(Outcome.VERIFIED, 1)}
    # Their own tasks find nothing left to do: each verified once.
    assert runner.run_batch(other_batch, concurrency=2) == [None, None, None]
    taken = Verification.objects.filter(code__in=other_batch).order_by("started_at")
    assert {(v.outcome, v.attempts) for v in taken} == {(Outcome.VERIFIED, 1)}
    # The consent's, queued last, was taken first: a customer is waiting for it.
    assert taken[0].trigger == Verification.Trigger.CONSENT


@pytest.mark.django_db(transaction=True)
def test_a_batch_stops_taking_others_after_its_help_seconds(
    sandbox, consent, make_tenant, settings
):
    # So that the worker's other tasks (notifications) are not held up by one long batch.
    settings.VERIFY_CONCURRENCY, settings.VERIFY_HELP_SECONDS = 2, 0
    batch, other_batch = _two_batches_one_hanging(sandbox, consent, make_tenant, settings)

    thread = _in_background(lambda: verify_batch.call(batch))
    _wait_for(lambda: _done(batch[1:]) == 1, thread)
    sandbox.control.clear_faults()
    thread.join(60)

    assert _done(batch) == 2
    assert _done(other_batch) == 0


def test_a_verification_somebody_waits_for_is_taken_before_the_rounds_batches(db):
    verify_batch.enqueue(["00000000-0000-4000-8000-000000000001"])
    verify_tenant.enqueue("00000000-0000-4000-8000-000000000002")

    first = DBTaskResult.objects.ready().first()

    assert first.task_path == "tenants.tasks.verify_tenant"


@pytest.mark.django_db(transaction=True)
def test_other_batches_keep_to_their_own_verifications(sandbox, consent, make_tenant, settings):
    # verify_tenants and the bench run their batch and nothing else.
    batch, other_batch = _two_batches_one_hanging(sandbox, consent, make_tenant, settings)

    finished: list = []
    thread = _in_background(lambda: finished.extend(runner.run_batch(batch, concurrency=2)))
    _wait_for(lambda: _done(batch[1:]) == 1, thread)
    sandbox.control.clear_faults()
    thread.join(60)

    assert [v.outcome for v in finished] == [Outcome.VERIFIED, Outcome.VERIFIED]
    assert _done(other_batch) == 0


def test_the_scheduler_queues_due_tenants_in_batches(make_tenant, settings):
    settings.VERIFY_BATCH_SIZE = 2
    now = timezone.now()
    interval = timedelta(seconds=settings.VERIFY_INTERVAL)
    never = make_tenant(NORTHWIND)
    overdue = make_tenant(TAILSPIN, last_checked_at=now - interval - timedelta(minutes=1))
    stale = make_tenant(
        WOODGROVE,
        last_checked_at=now - timedelta(seconds=settings.VERIFY_STALE_INTERVAL + 60),
        stale_since=now - timedelta(hours=1),
        status=Tenant.Status.VERIFIED,
    )
    make_tenant(ADATUM, last_checked_at=now - timedelta(minutes=1))  # checked just now
    make_tenant(
        "b3d6f8a1-5c2e-4a97-9d14-7f0e2b6c8a53",
        status=Tenant.Status.OFFBOARDED,
        last_checked_at=None,
    )

    result = scheduler.tick()

    assert result.enqueued == 3
    queued = Verification.objects.filter(state=Verification.State.QUEUED)
    assert {v.tenant for v in queued} == {never, overdue, stale}
    assert {v.trigger for v in queued} == {Verification.Trigger.SCHEDULE}
    batches = _tasks("verify_batch")
    assert sorted(len(t.args_kwargs["args"][0]) for t in batches) == [1, 2]
    # Open verifications keep tenants from being queued twice.
    assert scheduler.tick().enqueued == 0


def test_the_scheduler_requeues_orphaned_verifications_once_per_lease(make_tenant, settings):
    lease = timedelta(seconds=settings.VERIFY_LEASE)
    tenant = make_tenant(NORTHWIND)
    crashed, _ = tenant.request_verification(Verification.Trigger.SCHEDULE)
    runner.claim(str(crashed.code))
    lost = make_tenant(TAILSPIN).request_verification(Verification.Trigger.SCHEDULE)[0]

    with time_machine.travel(timezone.now() + lease + timedelta(seconds=1)):
        fresh = make_tenant(WOODGROVE).request_verification(Verification.Trigger.SCHEDULE)[0]
        assert scheduler.requeue_orphans() == 2
        assert scheduler.requeue_orphans() == 0  # not again within a lease

    requeued = {code for t in _tasks("verify_batch") for code in t.args_kwargs["args"][0]}
    assert requeued == {str(crashed.code), str(lost.code)}
    assert str(fresh.code) not in requeued
    crashed.refresh_from_db()
    assert crashed.state == Verification.State.QUEUED


@pytest.mark.django_db(transaction=True)
def test_the_task_worker_runs_queued_verifications(sandbox, consent, make_tenant):
    consent(NORTHWIND)
    consent(WOODGROVE)
    single = make_tenant(NORTHWIND)
    enqueue_verification(single, Verification.Trigger.CONSENT)
    make_tenant(WOODGROVE)
    scheduler.tick()

    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)

    assert set(Verification.objects.values_list("outcome", flat=True)) == {Outcome.VERIFIED}
    assert Verification.objects.count() == 2
    assert {t.status for t in DBTaskResult.objects.all()} == {"SUCCESSFUL"}


def test_the_scheduler_command_runs_one_tick(make_tenant, capsys):
    make_tenant(NORTHWIND)

    call_command("run_scheduler", "--once")

    assert "queued 1 due verification, requeued 0 orphaned" in capsys.readouterr().out
    assert Verification.objects.filter(trigger=Verification.Trigger.SCHEDULE).count() == 1


def test_the_engines_shared_session_keeps_no_cookie(settings):
    # One session serves every tenant's token requests and probes: a cookie one customer's
    # answer sets must never be sent with another customer's request.
    session = identity.pooled_session()
    session.cookies.set("esctx", "from-one-tenant", domain="login.example")
    assert len(session.cookies) == 0
    assert session.trust_env is False


def test_the_engines_session_trusts_only_the_configured_ca(sandbox, settings):
    # The direct path to urllib3 keeps the adapter's TLS context: the sandbox's CA is
    # trusted because it is configured, and nothing else is.
    url = f"{settings.SANDBOX['graph']}/v1.0/organization"
    answer = identity.pooled_session().request("GET", url, timeout=5, allow_redirects=False)
    assert answer.status_code == 401  # reached, no token

    settings.ENTRA_CA_BUNDLE = DEFAULT_CA_BUNDLE_PATH  # public CAs only
    with pytest.raises(requests.exceptions.SSLError):
        identity.pooled_session().request("GET", url, timeout=5, allow_redirects=False)


def test_the_engines_session_raises_what_requests_raises(sandbox, settings):
    session = identity.pooled_session()
    url = f"{settings.SANDBOX['graph']}/v1.0/organization"
    sandbox.control.add_fault(target="graph", latency_ms=1500)
    with pytest.raises(requests.ReadTimeout):
        session.request("GET", url, timeout=0.3, allow_redirects=False)

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(requests.ConnectionError):
        session.request("GET", f"https://127.0.0.1:{port}/", timeout=2, allow_redirects=False)


def test_the_engines_session_sends_each_header_once(sandbox, settings, monkeypatch):
    # Merged without regard to case, as requests merges them: the caller's "accept"
    # replaces the session's "Accept".
    sent = {}
    real = urllib3.connectionpool.HTTPConnectionPool.urlopen

    def urlopen(pool, method, url, body=None, headers=None, **kwargs):
        sent.update(headers=list(headers))
        return real(pool, method, url, body=body, headers=headers, **kwargs)

    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "urlopen", urlopen)
    url = f"{settings.SANDBOX['graph']}/v1.0/organization"
    identity.pooled_session().request(
        "GET", url, headers={"accept": "application/json"}, timeout=5, allow_redirects=False
    )
    assert [h for h in sent["headers"] if h.lower() == "accept"] == ["accept"]
