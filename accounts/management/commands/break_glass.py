"""`manage.py break_glass enrol USERNAME`: give a local (break-glass) account its second
factor, a TOTP authenticator and recovery codes, replacing any it had."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import second_factor


class Command(BaseCommand):
    help = "Enrol the second factor (TOTP and recovery codes) of a break-glass account."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        enrol = sub.add_parser("enrol", help="new authenticator key and recovery codes")
        enrol.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no account named {username!r}; create it with createsuperuser")
        if not user.has_usable_password():
            raise CommandError(
                f"{username} signs in with Entra and has no password: a second factor is for "
                "local break-glass accounts only"
            )
        enrolment = second_factor.enrol(user, actor="manage.py break_glass")
        out = self.stdout.write
        out(f"Second factor enrolled for {username}; any earlier one no longer works.")
        out("Add it to an authenticator app (as a QR code, or by hand):")
        out(f"  {enrolment.config_url}")
        out(f"  secret: {enrolment.secret}")
        out("Recovery codes, each usable once (keep them with the account's password):")
        for code in enrolment.recovery_codes:
            out(f"  {code}")
        out("They are not shown again; run this command again to replace them.")
