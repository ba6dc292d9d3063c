"""manage.py create_invitation --customer NAME --tenant GUID|DOMAIN [--profile KEY] [--days N]

Prints the invitation URL to send to the customer, and nothing else, so scripts can use it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from consent import links
from consent.forms import InvitationForm
from consent.models import Invitation, InvitationRefused
from tenants import profiles


class Command(BaseCommand):
    help = "Create a consent invitation for a customer and print its URL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customer", required=True, help="the customer's name, as shown")
        parser.add_argument(
            "--tenant",
            default="",
            help="the customer's tenant ID, or a domain they verified (looked up in Entra)",
        )
        parser.add_argument(
            "--profile",
            default=profiles.DEFAULT_PROFILE,
            help=f"access profile: {', '.join(profiles.PROFILES)}",
        )
        parser.add_argument(
            "--days",
            default=str(settings.INVITATION_DEFAULT_DAYS),
            help="days until the invitation expires",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        form = InvitationForm(
            data={
                "customer_name": options["customer"],
                "tenant": options["tenant"],
                "access_profile": options["profile"],
                "days": options["days"],
            }
        )
        if not form.is_valid():
            names = {"customer_name": "--customer", "access_profile": "--profile"}
            problems = [
                f"{names.get(field, '--' + field)}: {' '.join(messages)}"
                for field, messages in form.errors.items()
            ]
            if "access_profile" in form.errors:
                problems.append(f"Profiles: {', '.join(profiles.PROFILES)}.")
            raise CommandError("No invitation created. " + " ".join(problems))

        data = form.cleaned_data
        expected = data["tenant"]
        try:
            invitation = Invitation.objects.create_invitation(
                customer_name=data["customer_name"],
                expected_tenant_id=expected.tenant_id,
                expected_domain=expected.domain,
                access_profile=data["access_profile"],
                days=data["days"],
                actor="cli",
            )
        except InvitationRefused as refused:
            raise CommandError(f"No invitation created. --tenant: {refused}") from None
        self.stdout.write(links.invitation_url(invitation))
