"""manage.py notifications add|list|test|remove — notification destinations from the shell.

    notifications add webhook URL [--secret whsec_…] [--events a,b] [--name N]
    notifications add email ADDRESS [--events a,b] [--digest]
    notifications add teams URL | add slack URL
    notifications list
    notifications test [ID]      (every enabled destination without an ID)
    notifications remove ID

ID is a destination's code as `list` prints it (its first 8 characters are enough). The
filter by access profile is set in the console, which knows the profiles.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import ngettext

from notifications.delivery import send
from notifications.models import EVENT_TYPES, Destination

ACTOR = "manage.py notifications"


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


class Command(BaseCommand):
    help = "Add, list, test and remove notification destinations."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        add = actions.add_parser("add", help="add a destination")
        add.add_argument("kind", choices=Destination.Kind.values)
        add.add_argument("target", help="https URL, or an email address for email")
        add.add_argument("--name", default="", help="a name for the console (default: target)")
        add.add_argument("--secret", default="", help="webhooks: whsec_… (default: generated)")
        add.add_argument(
            "--events",
            default="",
            help=f"comma-separated event types (default: all): {', '.join(EVENT_TYPES)}",
        )
        add.add_argument("--digest", action="store_true", help="email: also a daily digest")
        actions.add_parser("list", help="list destinations")
        test = actions.add_parser("test", help="send a test notification")
        test.add_argument("id", nargs="?", default="")
        remove = actions.add_parser("remove", help="remove a destination")
        remove.add_argument("id")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(options)

    def _add(self, options: dict[str, Any]) -> None:
        try:
            destination = Destination.objects.add(
                kind=options["kind"],
                name=options["name"],
                target=options["target"],
                secret=options["secret"],
                event_types=_names(options["events"]),
                daily_digest=options["digest"],
                actor=ACTOR,
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"added {destination.kind} destination {destination.code}")
        if destination.kind == Destination.Kind.WEBHOOK and not options["secret"]:
            self.stdout.write(
                f"signing secret (shown once; give it to the receiver): {destination.secret}"
            )

    def _list(self, options: dict[str, Any]) -> None:
        destinations = list(Destination.objects.all())
        for d in destinations:
            events = ",".join(d.event_types) or "all events"
            state = "enabled" if d.enabled else "disabled"
            self.stdout.write(
                f"{d.code}  {d.kind:<7} {state:<8} {d.name}  {d.shown_target}  {events}"
            )
        self.stdout.write(
            ngettext("%d destination", "%d destinations", len(destinations)) % len(destinations)
        )

    def _test(self, options: dict[str, Any]) -> None:
        if options["id"]:
            destinations = [self._find(options["id"])]
        else:
            destinations = list(Destination.objects.enabled())
            if not destinations:
                raise CommandError("No enabled destination: add one with `notifications add`.")
        failed = 0
        for destination in destinations:
            delivery = send(str(destination.send_test(actor=ACTOR).code))
            answer = delivery.last_status_code or delivery.last_error
            if delivery.status == delivery.Status.DELIVERED:
                self.stdout.write(f"{destination.name}: delivered ({answer})")
            else:
                failed += 1
                then = "retrying" if delivery.status == delivery.Status.PENDING else "not retried"
                self.stdout.write(f"{destination.name}: not delivered ({answer}; {then})")
        if failed:
            raise CommandError(
                ngettext("%d destination failed", "%d destinations failed", failed) % failed
            )

    def _remove(self, options: dict[str, Any]) -> None:
        destination = self._find(options["id"])
        destination.remove(actor=ACTOR)
        self.stdout.write(f"removed {destination.kind} destination {destination.name}")

    def _find(self, ref: str) -> Destination:
        ref = ref.strip().lower()
        if len(ref) < 8:
            raise CommandError("Give at least the first 8 characters of the destination's id.")
        matches = [d for d in Destination.objects.all() if str(d.code).startswith(ref)]
        if len(matches) != 1:
            raise CommandError(
                f"No destination {ref}: `notifications list` shows them."
                if not matches
                else f"{ref} matches {len(matches)} destinations: give more of the id."
            )
        return matches[0]
