"""manage.py run_scheduler [--once] [--tick SECONDS]

Re-verifies every active tenant on VERIFY_INTERVAL without an operator: each tick queues the
tenants that are due and puts back verifications whose worker died. `db_worker` runs them.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections
from django.utils.translation import ngettext

from tenants.verification.scheduler import tick


class Command(BaseCommand):
    help = "Queue due tenant verifications every tick (see VERIFY_INTERVAL)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="run one tick and exit")
        parser.add_argument(
            "--tick",
            type=float,
            default=None,
            help="seconds between ticks (default: VERIFY_SCHEDULER_TICK)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        interval = options["tick"] or settings.VERIFY_SCHEDULER_TICK
        while True:
            result = tick()
            if result.enqueued or result.requeued or options["once"]:
                self.stdout.write(
                    ngettext(
                        "queued %d due verification", "queued %d due verifications", result.enqueued
                    )
                    % result.enqueued
                    + f", requeued {result.requeued} orphaned"
                )
            if options["once"]:
                return
            time.sleep(interval)
            # A long-lived process: drop a connection the database closed meanwhile.
            close_old_connections()
