"""Consent burst (issue 15): a re-consent campaign sends hundreds of customers to the
consent callback at once. Can the portal take them all?

N consented tenants in a generated sandbox scenario (a child process), N invitations each
with a fresh consent ticket (`state`), the portal under gunicorn as the README's production
command runs it (`CONN_MAX_AGE=60 … --workers 4`) on PostgreSQL, and one task worker
(`db_worker --interval 0.1`) for the first verifications. N callbacks
(`/consent/callback/?admin_consent=True&tenant=…&state=…`, what Entra's redirect
carries) are sent with `--clients` of them in flight at once, each on a connection of its
own as separate browsers would; then as many requests for a trivial page of the same
server (the staff sign-in page) the same way.

Prints callbacks per second next to the trivial page's, p95 latency, the CPU each request
cost the portal (gunicorn's processes), PostgreSQL's server and this client (Linux /proc),
5xx answers, and lost consents (a ticket redeemed without a tenant, or a tenant without its first
verification), then waits for the worker and counts the tenants verified. Targets: ≥ 50 %
of the trivial page's throughput, no 5xx, none lost, every tenant verified.
The per-address rate limits are lifted (a campaign's customers come from N addresses;
here they all come from 127.0.0.1).

    .venv/bin/python bench/consent_burst.py --database-url postgres://…/empty_db
        [--consents 500] [--clients 100]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from verify_fleet import cpu_seconds, parent_pid  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fire(urls: list[str], clients: int) -> tuple[float, list[float], list[int]]:
    """GET every URL, `clients` at a time, a new connection each, no redirects followed.
    Returns (wall seconds, latencies, status codes)."""
    import requests

    def one(url: str) -> tuple[float, int]:
        started = time.perf_counter()
        try:
            with requests.Session() as session:
                status = session.get(url, allow_redirects=False, timeout=120).status_code
        except requests.RequestException:
            status = 599  # no answer at all: counted with the 5xx
        return time.perf_counter() - started, status

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(one, urls))
    return time.perf_counter() - started, [r[0] for r in results], [r[1] for r in results]


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and parent_pid(int(entry.name)) == pid
    ]


class CpuMeter:
    """CPU seconds of the parts of the burst, per phase: the portal (gunicorn's master and
    workers), PostgreSQL (the postmaster and every server process, a backend per kept
    connection), the task worker, and this client (its request threads). A process that
    started during a phase counts from zero."""

    def __init__(self, web: int, postmaster: int, worker: subprocess.Popen | None) -> None:
        self.web, self.postmaster, self.worker = web, postmaster, worker

    def read(self) -> dict[str, dict[int, float]]:
        parts = {
            "portal": [self.web, *children(self.web)],
            "postgres": [self.postmaster, *children(self.postmaster)],
            "worker": [self.worker.pid] if self.worker else [],
        }
        reading = {name: {pid: cpu_seconds(pid) for pid in pids} for name, pids in parts.items()}
        times = os.times()
        reading["client"] = {os.getpid(): times.user + times.system}
        return reading

    @staticmethod
    def per_request_ms(before: dict, after: dict, requests: int) -> dict[str, float]:
        return {
            name: 1000 * sum(t - before[name].get(pid, 0.0) for pid, t in pids.items()) / requests
            for name, pids in after.items()
        }


def postmaster_pid() -> int:
    """The PostgreSQL server's main process: the parent of this connection's backend."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    postmaster = parent_pid(backend)
    if postmaster is None:
        raise SystemExit("cannot read PostgreSQL's processes (not on this machine?)")
    return postmaster


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--consents", type=int, default=500)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--database-url", required=True, help="an empty PostgreSQL database")
    parser.add_argument(
        "--worker-after",
        action="store_true",
        help="start the task worker once the burst is over (the callbacks alone on the CPU)",
    )
    args = parser.parse_args()

    from verify_fleet import configure_django, scenario

    from entra_sandbox.testing import run_sandbox

    workdir = Path(tempfile.mkdtemp(prefix="consent-burst-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tenant_ids = [
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"burst-tenant-{i}")) for i in range(args.consents)
    ]
    print(f"sandbox: {args.consents} consented tenants (child process)")
    with run_sandbox(scenario(tenant_ids), state_dir=workdir / "sandbox", subprocess=True) as sb:
        os.environ.update(
            {
                "PORTAL_BASE_URL": base,
                "RATELIMIT_CONSENT": "1000000/m",
                "RATELIMIT_SIGN_IN": "1000000/m",
                "RATELIMIT_CONSENT_STARTS": "1000000/h",
                "STATIC_ROOT": str(workdir / "static"),
            }
        )
        configure_django(sb.env, args.database_url, 16)
        from django.core.management import call_command

        from consent.models import ConsentTicket, Invitation
        from tenants.models import Tenant, Verification

        call_command("migrate", verbosity=0)
        call_command("collectstatic", "--no-input", verbosity=0)  # as the README deploys
        states = []
        for i, tid in enumerate(tenant_ids):
            invitation = Invitation.objects.create_invitation(
                customer_name=f"Customer {i:05d}",
                access_profile="graph-reporting",
                days=7,
                actor="bench",
                expected_tenant_id=uuid.UUID(tid),
            )
            states.append((tid, invitation.issue_ticket()[1]))
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mssp_portal.settings"}
        # As the README's production command: connections kept between requests.
        web_env = {"CONN_MAX_AGE": "60", **env}
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "mssp_portal.wsgi", "--workers", "4",
             "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
            env=web_env, cwd=ROOT,
        )  # fmt: skip
        worker_command = [sys.executable, str(ROOT / "manage.py"), "db_worker", "--no-reload"]
        worker_command += ["--no-startup-delay", "--interval", "0.1"]
        worker = None if args.worker_after else subprocess.Popen(worker_command, env=env, cwd=ROOT)
        try:
            trivial = f"{base}/accounts/login/"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if fire([trivial], 1)[2] == [200]:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("gunicorn did not answer")
                time.sleep(0.2)

            callbacks = [
                f"{base}/consent/callback/?admin_consent=True&tenant={tid}&state={state}"
                for tid, state in states
            ]
            meter = CpuMeter(web.pid, postmaster_pid(), worker)
            before = meter.read()
            wall, latencies, statuses = fire(callbacks, args.clients)
            between = meter.read()
            t_wall, _, t_statuses = fire([trivial] * len(callbacks), args.clients)
            after = meter.read()
            cpu = meter.per_request_ms(before, between, len(callbacks))
            t_cpu = meter.per_request_ms(between, after, len(callbacks))
            if worker is None:
                worker = subprocess.Popen(worker_command, env=env, cwd=ROOT)

            # Every redeemed ticket has its tenant, every such tenant its first verification.
            redeemed = ConsentTicket.objects.exclude(used_at=None)
            tenants = set(Tenant.objects.values_list("tenant_id", flat=True))
            with_verification = set(
                Verification.objects.values_list("tenant__tenant_id", flat=True)
            )
            lost = sum(
                1
                for t in redeemed.values_list("tenant_id", flat=True)
                if t is None or t not in tenants or t not in with_verification
            )
            lost += len(callbacks) - redeemed.count()  # a callback that redeemed nothing
            deadline = time.monotonic() + 300
            while (
                Verification.objects.exclude(state=Verification.State.DONE).exists()
                and time.monotonic() < deadline
            ):
                time.sleep(0.5)
            verified = Tenant.objects.filter(status=Tenant.Status.VERIFIED).count()
        finally:
            for process in (web, worker):
                if process is not None:
                    process.terminate()
            for process in (web, worker):
                if process is not None:
                    process.wait(timeout=60)

    errors = sum(1 for s in statuses if s >= 500)
    rate, t_rate = len(callbacks) / wall, len(callbacks) / t_wall
    print(
        f"callbacks: {len(callbacks)}, {args.clients} in flight, statuses {sorted(set(statuses))}"
    )
    print(
        f"callbacks per second: {rate:.1f} (trivial page: {t_rate:.1f}, {sorted(set(t_statuses))})"
    )
    p50_ms, p95_ms = 1000 * statistics.median(latencies), 1000 * p95(latencies)
    print(f"callback latency: p50 {p50_ms:.0f} ms, p95 {p95_ms:.0f} ms")
    print("CPU per request (ms), callback / trivial page:")
    for part in ("portal", "postgres", "worker", "client"):
        print(f"  {part}: {cpu[part]:.2f} / {t_cpu[part]:.2f}")
    print(f"5xx: {errors}, lost consents: {lost}, tenants verified: {verified} of {len(callbacks)}")
    print(
        f"figures: callbacks_per_s={rate:.1f} trivial_per_s={t_rate:.1f} ratio={rate / t_rate:.2f} "
        f"p95_ms={p95_ms:.0f} errors_5xx={errors} lost={lost} verified={verified} "
        f"cpu_ms_portal={cpu['portal']:.2f} cpu_ms_postgres={cpu['postgres']:.2f} "
        f"cpu_ms_portal_trivial={t_cpu['portal']:.2f}"
    )
    ok = rate >= 0.5 * t_rate and errors == 0 and lost == 0 and verified == len(callbacks)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
