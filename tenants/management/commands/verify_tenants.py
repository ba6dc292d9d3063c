"""manage.py verify_tenants [TENANT_ID …] [--all] [--enqueue] [--json]

Verifies the named tenants (or every active one with --all) now, in parallel, and prints a
summary table (or, with --json, one JSON document); with --enqueue it only queues them for
the task worker.

Exit status, for cron jobs and CI checks: 0 every selected tenant is verified; 1 some tenant
is not (incomplete, no access, transient, or still running elsewhere); 2 usage error;
3 a platform error on the MSSP's side (identity or federated credential): the statuses shown
are then the last ones known, not new findings.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import ngettext

from mssp_portal.untrusted import for_log
from tenants.models import Tenant, Verification
from tenants.tasks import enqueue_verification
from tenants.verification import diagnosis
from tenants.verification.runner import run_batch

NOT_ALL_VERIFIED, USAGE, PLATFORM = 1, 2, 3


def _exit_code(verifications: list[Verification]) -> int:
    outcomes = {v.outcome for v in verifications}
    if Verification.Outcome.PLATFORM_ERROR in outcomes:
        return PLATFORM
    if any(v.outcome != Verification.Outcome.VERIFIED for v in verifications):
        return NOT_ALL_VERIFIED
    return 0


class Command(BaseCommand):
    help = "Verify tenants now (or queue them) and print what each verification found."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tenant_ids", nargs="*", metavar="TENANT_ID", help="Entra tenant ids")
        parser.add_argument("--all", action="store_true", help="every tenant not offboarded")
        parser.add_argument(
            "--enqueue", action="store_true", help="queue for the task worker instead of running"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON document")

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
        verifications = [finished[c] for c in codes]
        exit_code = _exit_code(verifications)
        if options["json"]:
            self._json(verifications, exit_code)
        else:
            self._table(verifications)
            if exit_code == PLATFORM:
                self.stdout.write(
                    "Platform error on the MSSP's side: the statuses above are the last ones "
                    "known. Run `manage.py doctor` for the fix."
                )
        if exit_code:
            sys.exit(exit_code)

    def _json(self, verifications: list[Verification], exit_code: int) -> None:
        tenants = [
            {
                "tenant_id": str(v.tenant.tenant_id),
                "name": v.tenant.display_name,
                "outcome": v.outcome or None,
                "diagnosis": v.diagnosis or None,
                "status": v.tenant.status,
                "stale": v.tenant.stale_since is not None,
                "state": v.state,
                "seconds": v.duration.total_seconds() if v.duration else None,
            }
            for v in verifications
        ]
        self.stdout.write(json.dumps({"exit_code": exit_code, "tenants": tenants}, indent=2))

    def _tenants(self, ids: list[str], everything: bool) -> list[Tenant]:
        if everything == bool(ids):
            raise CommandError(
                "name tenant ids, or use --all (not both): e.g. `manage.py verify_tenants "
                "<tenant id> <tenant id>`, or `manage.py verify_tenants --all` for every tenant "
                "not offboarded",
                returncode=USAGE,
            )
        if everything:
            return list(Tenant.objects.active().order_by("display_name", "tenant_id"))
        wanted = []
        for raw in ids:
            try:
                wanted.append(uuid.UUID(raw))
            except ValueError:
                raise CommandError(
                    f"not a tenant id: {for_log(raw, 80)}", returncode=USAGE
                ) from None
        found = {t.tenant_id: t for t in Tenant.objects.filter(tenant_id__in=wanted)}
        missing = [str(w) for w in wanted if w not in found]
        if missing:
            unknown = ngettext("unknown tenant", "unknown tenants", len(missing))
            raise CommandError(f"{unknown}: {', '.join(missing)}", returncode=USAGE)
        offboarded = [str(w) for w in wanted if found[w].status == Tenant.Status.OFFBOARDED]
        if offboarded:
            raise CommandError(
                f"offboarded, not verified: {', '.join(offboarded)}", returncode=USAGE
            )
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
        count = len(verifications)
        tenants = ngettext("%d tenant", "%d tenants", count) % count
        self.stdout.write(f"{tenants}: {summary or 'nothing run'}")
