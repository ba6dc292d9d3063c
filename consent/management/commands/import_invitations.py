"""manage.py import_invitations FILE.csv [--dry-run]

Prints every row's verdict (`line N: <verdict> <customer> <tenant> [reason]`), then a summary.
Exit status: 0 when no row is invalid, 1 when some are (the valid rows are still created,
unless --dry-run), 2 on a usage error or a file that cannot be read (nothing created).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from consent import imports
from consent.imports import ImportFileError, Verdict
from mssp_portal.untrusted import for_log


class Command(BaseCommand):
    help = "Create consent invitations from a CSV file (customer_name,tenant,… header)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the CSV file (UTF-8, comma or semicolon separated)")
        parser.add_argument(
            "--dry-run", action="store_true", help="print the verdicts, create nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(
                f"Cannot read {path}: {exc.strerror or exc}. Nothing created.", returncode=2
            ) from exc
        try:
            preview = imports.preview(data, filename=path.name)
        except ImportFileError as exc:
            raise CommandError(f"{path}: {exc} Nothing created.", returncode=2) from exc

        created = []
        if not options["dry_run"]:
            # Confirming re-checks each row against the database, so print after it.
            created = imports.confirm(preview, actor="cli")
        for row in preview.rows:
            verdict = row.verdict
            if verdict == Verdict.WILL_CREATE and not options["dry_run"]:
                verdict = "created"
            # The file's text is the sender's: printed through for_log (no control chars).
            line = (
                f"line {row.line}: {verdict} {for_log(row.customer_name, 80)} "
                f"{for_log(row.tenant_id or row.tenant, 80)}"
            )
            if row.reason:
                line += f" ({for_log(row.reason, 300)})"
            self.stdout.write(line)
        counts = preview.counts
        if options["dry_run"]:
            made = f"0 created (dry run; {counts[Verdict.WILL_CREATE]} would be)"
        else:
            made = f"{len(created)} created"
        self.stdout.write(
            f"{len(preview.rows)} rows: {made}, "
            f"{counts[Verdict.ALREADY_ONBOARDED]} already onboarded, "
            f"{counts[Verdict.DUPLICATE]} duplicate in file, {counts[Verdict.INVALID]} invalid"
        )
        if counts[Verdict.INVALID]:
            raise CommandError(f"{counts[Verdict.INVALID]} row(s) invalid.", returncode=1)
