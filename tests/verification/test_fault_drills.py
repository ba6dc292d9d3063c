"""Fault drills: a fleet of 200 consented tenants in a sandbox of its own (a child process),
and the faults an MSSP's operations meet: a worker killed mid-batch, the database cutting
every connection, Entra unreachable for a round, two schedulers at once, a full disk under
the log. Each drill checks that every tenant ends up verified exactly once (or, for a
round without Entra, marked stale and nothing worse), with no manual step.

`postgresql`-marked drills run in the PostgreSQL pass of `make test` (they need a server
whose connections can be cut); the others run on both databases.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection, connections

from mssp_portal import identity
from tenants.models import PlatformAlert, Tenant, Verification
from tenants.tasks import verify_batch
from tenants.verification import runner, scheduler
from tests.conftest import (
    point_portal_at,
)
from tests.scenarios import consented

ROOT = Path(__file__).resolve().parents[2]
Outcome = Verification.Outcome
State = Verification.State
FLEET = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"drill-tenant-{i}")) for i in range(200)]


def _scenario() -> dict:
    return consented(
        {"id": tid, "name": f"Drill {i:03d}", "domain": f"drill{i:03d}.example"}
        for i, tid in enumerate(FLEET)
    )


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fleet-sandbox")


@pytest.fixture(scope="module")
def fleet_server(fleet_dir) -> Iterator[object]:
    from entra_sandbox.testing import run_sandbox

    with run_sandbox(_scenario(), state_dir=fleet_dir, subprocess=True) as sb:
        yield sb


@pytest.fixture
def fleet(fleet_server, settings, monkeypatch) -> Iterator[object]:
    point_portal_at(fleet_server, settings, monkeypatch)
    fleet_server.control.clear_faults()
    fleet_server.control.reset_counters()
    yield fleet_server
    fleet_server.control.clear_faults()


def _tenants(count: int) -> list[str]:
    """`count` tenants of the fleet, each with a queued verification; returns the codes."""
    Tenant.objects.bulk_create(
        Tenant(tenant_id=tid, cloud="sandbox", access_profile="graph-reporting")
        for tid in FLEET[:count]
    )
    return [
        str(t.request_verification(Verification.Trigger.SCHEDULE)[0].code)
        for t in Tenant.objects.order_by("pk")
    ]


def _database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def _worker(sb, *args: str, stderr=None, **env: str) -> subprocess.Popen:
    """`manage.py db_worker` in a process of its own, on the test database and the fleet's
    sandbox, configured by environment as in production."""
    environment = {
        **os.environ,
        **sb.env,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "ENTRA_CA_BUNDLE": sb.ca_path,
        "VERIFY_RETRIES": "1",
        "VERIFY_RETRY_BASE_DELAY": "0.01",
        "LOG_LEVEL": "WARNING",
        **env,
    }
    command = [sys.executable, str(ROOT / "manage.py"), "db_worker", "--no-reload"]
    command += ["--no-startup-delay", "--interval", "0.1", *args]
    return subprocess.Popen(command, env=environment, cwd=ROOT, stderr=stderr)


def _wait_for(condition, process: subprocess.Popen | None = None, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the drill did not get there in time"
        if process is not None:
            assert process.poll() is None, "the worker exited"
        time.sleep(0.05)


def _assert_each_verified_once(count: int) -> None:
    assert not Verification.objects.exclude(state=State.DONE).exists()
    done = Counter(Verification.objects.values_list("tenant__tenant_id", flat=True))
    assert len(done) == count and set(done.values()) == {1}
    assert set(Verification.objects.values_list("outcome", flat=True)) == {Outcome.VERIFIED}
    assert set(Tenant.objects.values_list("status", flat=True)) == {Tenant.Status.VERIFIED}


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_leaves_nothing_stuck_after_the_lease(fleet, settings):
    settings.VERIFY_LEASE = 4
    codes = _tenants(200)
    fleet.control.add_fault(target="*", latency_ms=30)
    verify_batch.enqueue(codes)
    worker = _worker(fleet, VERIFY_LEASE="4", VERIFY_CONCURRENCY="8")
    try:
        _wait_for(lambda: Verification.objects.filter(state=State.DONE).count() >= 40, worker)
        worker.kill()  # SIGKILL: no clean-up of any kind
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    running = set(Verification.objects.filter(state=State.RUNNING).values_list("code", flat=True))
    left = Verification.objects.exclude(state=State.DONE).count()
    assert running and 0 < left < 200  # killed in the middle, with tenants in flight

    # Nobody holds them once the lease is over: the scheduler puts them back, a worker runs them.
    time.sleep(settings.VERIFY_LEASE + 0.5)
    fleet.control.clear_faults()
    assert scheduler.requeue_orphans() == left
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)

    _assert_each_verified_once(200)
    retried = set(Verification.objects.filter(attempts=2).values_list("code", flat=True))
    assert retried == running
    assert not Verification.objects.filter(attempts__gt=2).exists()
    # Entra was asked again only for the tenants that were in flight when the worker died.
    asked = fleet.control.counters()["by_tenant"]
    in_flight = set(
        Verification.objects.filter(code__in=running).values_list("tenant__tenant_id", flat=True)
    )
    assert all(asked[tid]["token"] == 1 for tid in FLEET if uuid.UUID(tid) not in in_flight)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_batch_reconnects_when_the_database_drops_every_connection(fleet):
    codes = _tenants(80)
    fleet.control.add_fault(target="*", latency_ms=30)
    cuts: list[int] = []

    def cut_twice() -> None:
        # What a restart does to clients: every session of the database ends at once.
        try:
            for after in (15, 45):
                _wait_for(
                    lambda n=after: Verification.objects.filter(state=State.DONE).count() >= n
                )
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                    cuts.append(cursor.fetchone()[0])
        finally:
            connections.close_all()

    cutter = threading.Thread(target=cut_twice)
    cutter.start()
    finished = runner.run_batch(codes, concurrency=8)
    cutter.join()
    connection.close()  # this thread's own connection was cut as well

    assert len(cuts) == 2 and all(cuts)
    assert all(v is not None and v.outcome == Outcome.VERIFIED for v in finished)
    _assert_each_verified_once(80)


@pytest.mark.django_db(transaction=True)
def test_a_round_without_entra_marks_tenants_stale_and_raises_one_alert(
    tmp_path, settings, monkeypatch
):
    from entra_sandbox.testing import run_sandbox

    first = run_sandbox(_scenario(), state_dir=tmp_path, subprocess=True)
    sb = first.__enter__()
    point_portal_at(sb, settings, monkeypatch)
    codes = _tenants(40)
    assert all(v.outcome == Outcome.VERIFIED for v in runner.run_batch(codes, concurrency=8))
    assert not PlatformAlert.objects.exists()
    port = int(sb.authority.rstrip("/").rsplit(":", 1)[1])

    # The whole sandbox (Entra, the identity endpoint, the APIs) goes away for a round.
    first.__exit__(None, None, None)
    again = [
        str(t.request_verification(Verification.Trigger.SCHEDULE)[0].code)
        for t in Tenant.objects.order_by("pk")
    ]
    started = time.monotonic()
    down = runner.run_batch(again, concurrency=8)
    took = time.monotonic() - started

    assert {v.outcome for v in down} == {Outcome.TRANSIENT}
    # Only the first few asked; the rest were held back, not sent into the outage.
    held = [v for v in down if "held_back_by" in v.platform]
    assert len(held) >= len(again) - 8 - runner.UNREACHABLE_HOLD_BACK
    assert took < 60
    tenants = list(Tenant.objects.all())
    assert {t.status for t in tenants} == {Tenant.Status.VERIFIED}  # not "no access"
    assert all(t.stale_since is not None for t in tenants)
    alert = PlatformAlert.objects.open().get()
    assert alert.key == "entra_unreachable"
    assert alert.title == "The portal cannot reach Entra's token endpoint"
    assert f"None of the 40 verifications of the last batch got an answer from {sb.authority}" in (
        alert.detail
    )
    assert "Check the worker's outbound network" in alert.detail

    # Entra back (same address, same directory): the next round verifies every tenant and
    # closes the alert.
    with run_sandbox(_scenario(), state_dir=tmp_path, subprocess=True, port=port) as back:
        point_portal_at(back, settings, monkeypatch)
        identity.forget_assertion()
        last = [
            str(t.request_verification(Verification.Trigger.SCHEDULE)[0].code)
            for t in Tenant.objects.order_by("pk")
        ]
        assert all(v.outcome == Outcome.VERIFIED for v in runner.run_batch(last, concurrency=8))
    assert not PlatformAlert.objects.open().exists()
    assert not Tenant.objects.exclude(stale_since=None).exists()


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_at_once_queue_one_round(make_tenant, settings):
    settings.VERIFY_BATCH_SIZE = 10
    for tid in FLEET[:50]:
        make_tenant(tid, "graph-reporting")
    barrier = threading.Barrier(2)
    ticks: list = []

    def tick() -> None:
        try:
            barrier.wait()
            ticks.append(scheduler.enqueue_due())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(ticks) == 50
    assert Verification.objects.count() == 50
    from django_tasks_db.models import DBTaskResult

    queued = [code for task in DBTaskResult.objects.all() for code in task.args_kwargs["args"][0]]
    assert sorted(queued) == sorted(
        str(c) for c in Verification.objects.values_list("code", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_a_full_disk_under_the_log_does_not_stop_verification(fleet):
    codes = _tenants(5)
    verify_batch.enqueue(codes)
    # The worker's log (stderr) is a file on a full disk: every write fails with ENOSPC.
    with open("/dev/full", "w") as full:
        worker = _worker(fleet, "--batch", stderr=full, LOG_LEVEL="INFO")
        worker.wait(timeout=120)

    _assert_each_verified_once(5)
