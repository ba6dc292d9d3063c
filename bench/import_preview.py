"""Bulk import preview benchmark (DESIGN.md "Performance targets": 2,000 rows ≤ 5 s).

A generated CSV of N rows, half tenant GUIDs and half domains of a generated sandbox
scenario (the sandbox in a child process, every call delayed by --latency-ms), with a few
rows of every other verdict mixed in: already onboarded, duplicates, unknown profile,
unresolvable domain, malformed email. It times `consent.imports.preview` on a throwaway
SQLite database and prints human lines, then one last line:
`figures: rows=N preview_s=… lookups=… workers=…`.

    .venv/bin/python bench/import_preview.py [--rows 2000] [--latency-ms 20] [--workers 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.verify_fleet import configure_django, cpu_seconds, scenario  # noqa: E402


def generate(rows: int, tenant_ids: list[str]) -> tuple[bytes, int]:
    """The CSV and how many distinct domains it names. Every 50th row is a problem row."""
    lines = ["customer_name,tenant,profile,contact_email,contact_name,days"]
    domains = set()
    for i in range(rows):
        tid = tenant_ids[i]
        if i % 50 == 7:
            lines.append(f"Duplicate {i},{tenant_ids[i - 1]},,,,")
        elif i % 50 == 17:
            lines.append(f"Unknown profile {i},{tid},god-mode,,,")
        elif i % 50 == 27:
            lines.append(f"Unresolvable {i},nobody-{i}.example,,,,")
            domains.add(f"nobody-{i}.example")
        elif i % 50 == 37:
            lines.append(f"Bad email {i},{tid},,not-an-email,,")
        elif i % 2:
            lines.append(
                f"Customer {i:05d},customer{i:05d}.example,,admin@customer{i}.example,Admin,"
            )
            domains.add(f"customer{i:05d}.example")
        else:
            lines.append(f"Customer {i:05d},{tid},full-soc,,,30")
    return ("\n".join(lines) + "\n").encode(), len(domains)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()

    from entra_sandbox.testing import run_sandbox

    workdir = Path(tempfile.mkdtemp(prefix="import-preview-"))
    tenant_ids = [
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-tenant-{i}")) for i in range(args.rows)
    ]
    data, domain_count = generate(args.rows, tenant_ids)
    print(f"sandbox: {args.rows} tenants, {args.latency_ms} ms on every call (child process)")
    with run_sandbox(scenario(tenant_ids), state_dir=workdir / "sandbox", subprocess=True) as sb:
        configure_django(sb.env, f"sqlite:///{workdir / 'bench.sqlite3'}", 16)
        from django.core.management import call_command

        from consent import imports
        from tenants.models import Tenant

        call_command("migrate", verbosity=0)
        # A few customers are onboarded already.
        Tenant.objects.bulk_create(
            Tenant(tenant_id=tid, cloud="sandbox", access_profile="full-soc")
            for tid in tenant_ids[::100]
        )
        if args.latency_ms:
            sb.control.add_fault(target="*", latency_ms=args.latency_ms)
        sb.control.reset_counters()

        started, cpu_started = time.perf_counter(), time.process_time()
        sandbox_cpu_started = cpu_seconds(sb.process.pid)
        preview = imports.preview(data, filename="bench.csv", workers=args.workers)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        sandbox_cpu = cpu_seconds(sb.process.pid) - sandbox_cpu_started
        counters = sb.control.counters()["by_kind"]

    verdicts = Counter(row.verdict for row in preview.rows)
    ideal = domain_count * args.latency_ms / 1000 / args.workers
    print(f"file: {len(data)} bytes, {len(preview.rows)} rows, {domain_count} distinct domains")
    print(f"verdicts: {dict(sorted(verdicts.items()))}")
    print(f"sandbox requests: {dict(sorted(counters.items()))}")
    print(f"CPU: portal {cpu:.2f} s, sandbox {sandbox_cpu:.2f} s, on {os.cpu_count()} CPU(s)")
    print(f"lookup workers: {args.workers} (lookups alone, ideally: {ideal:.2f} s)")
    print(f"preview: {wall:.2f} s (target < 5 s)")
    print(
        f"figures: rows={len(preview.rows)} preview_s={wall:.2f} lookups={domain_count} "
        f"workers={args.workers} latency_ms={args.latency_ms}"
    )
    return 0 if wall < 5 and len(preview.rows) == args.rows else 1


if __name__ == "__main__":
    sys.exit(main())
