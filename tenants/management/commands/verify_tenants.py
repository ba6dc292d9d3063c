"""manage.py verify_tenants [TENANT_ID …] [--all] [--enqueue]

Verifies the named tenants (or every active one with --all) now, in parallel, and prints a
summary table; with --enqueue it only queues them for the task worker.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mssp_portal.untrusted import for_log
from tenants.models import Tenant, Verification
from tenants.tasks import enqueue_verification
from tenants.verification import diagnosis
from tenants.verification.runner import run_batch


class Command(BaseCommand):
    help = "Verify tenants now (or queue them) and print what each verification found."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tenant_ids", nargs="*", metavar="TENANT_ID", help="Entra tenant ids")
        parser.add_argument("--all", action="store_true", help="every tenant not offboarded")
        parser.add_argument(
            "--enqueue", action="store_true", help="queue for the task worker instead of running"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = self._tenants(options["tenant_ids"], options["all"])
        requested_by = "cli"
        if options["enqueue"]:
            for tenant in tenants:
                verification, created = enqueue_verification(
                    tenant, Verification.Trigger.CLI, requested_by
                )
                state = "queued" if created else f"already {verification.state}"
                self.stdout.write(f"{tenant.tenant_id}  {state}  {verification.code}")
            return
        codes = [
            str(t.request_verification(Verification.Trigger.CLI, requested_by)[0].code)
            for t in tenants
        ]
        run_batch(codes)
        finished = {
            str(v.code): v
            for v in Verification.objects.filter(code__in=codes).select_related("tenant")
        }
        self._table([finished[c] for c in codes])

    def _tenants(self, ids: list[str], everything: bool) -> list[Tenant]:
        if everything == bool(ids):
            raise CommandError("name tenant ids, or use --all (not both)")
        if everything:
            return list(Tenant.objects.active().order_by("display_name", "tenant_id"))
        wanted = []
        for raw in ids:
            try:
                wanted.append(uuid.UUID(raw))
            except ValueError:
                raise CommandError(f"not a tenant id: {for_log(raw, 80)}") from None
        found = {t.tenant_id: t for t in Tenant.objects.filter(tenant_id__in=wanted)}
        missing = [str(w) for w in wanted if w not in found]
        if missing:
            raise CommandError(f"unknown tenant(s): {', '.join(missing)}")
        offboarded = [str(w) for w in wanted if found[w].status == Tenant.Status.OFFBOARDED]
        if offboarded:
            raise CommandError(f"offboarded, not verified: {', '.join(offboarded)}")
        return [found[w] for w in wanted]

    def _table(self, verifications: list[Verification]) -> None:
        rows = [("TENANT", "NAME", "OUTCOME", "DIAGNOSIS", "STATUS", "SECONDS")]
        for v in verifications:
            seconds = f"{v.duration.total_seconds():.2f}" if v.duration else "-"
            title = diagnosis.get(v.diagnosis).title if v.diagnosis else "-"
            if v.state != Verification.State.DONE:
                title = f"({v.get_state_display().lower()} elsewhere)"
            status = v.tenant.get_status_display() + (" (stale)" if v.tenant.stale_since else "")
            rows.append(
                (
                    str(v.tenant.tenant_id),
                    # Customer-controlled: one printable line, bounded.
                    for_log(v.tenant.display_name or "-", 30),
                    v.get_outcome_display() or "-",
                    title,
                    status,
                    seconds,
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )
        outcomes = [v.outcome for v in verifications]
        summary = ", ".join(
            f"{outcomes.count(o)} {label.lower()}"
            for o, label in Verification.Outcome.choices
            if outcomes.count(o)
        )
        self.stdout.write(f"{len(verifications)} tenant(s): {summary or 'nothing run'}")
