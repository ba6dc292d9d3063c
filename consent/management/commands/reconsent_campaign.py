"""manage.py reconsent_campaign [--profile KEY] [--dry-run] [--email]

A re-consent campaign for every tenant whose consent lacks a permission its profile requires
and that no campaign has an invitation waiting for (the console's "Start a re-consent
campaign", from the shell). Ends with the line
`campaign <id>: <N> tenants, <K> invitations created` (the id is `dry-run` and K is 0 on a
dry run, which writes nothing; `none` when no tenant needs it and nothing is started).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import ngettext

from consent.campaigns import needing_reconsent
from consent.models import Campaign
from consent.tasks import email_invitations
from tenants import profiles

ACTOR = "manage.py reconsent_campaign"


class Command(BaseCommand):
    help = "Start a re-consent campaign for the tenants whose consent lacks a permission."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--profile", default="", help="only tenants of this access profile")
        parser.add_argument("--dry-run", action="store_true", help="list them, create nothing")
        parser.add_argument(
            "--email", action="store_true", help="email each contact their link now"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        profile = options["profile"]
        if profile and profile not in profiles.PROFILES:
            raise CommandError(
                f"Unknown access profile {profile!r}: one of {', '.join(profiles.PROFILES)}."
            )
        found = needing_reconsent(profile, uncovered=True)
        for tenant, missing in found:
            self.stdout.write(f"{tenant.tenant_id}  {tenant}  lacks {' '.join(missing)}")
        tenants = ngettext("%d tenant", "%d tenants", len(found)) % len(found)
        if options["dry_run"]:
            self.stdout.write(f"campaign dry-run: {tenants}, 0 invitations created")
            return
        if not found:
            self.stdout.write("campaign none: 0 tenants, 0 invitations created")
            return
        campaign, created = Campaign.objects.start(
            actor=ACTOR, access_profile=profile, email=options["email"]
        )
        if options["email"]:
            codes = [str(m.invitation.code) for m in campaign.members.select_related("invitation")]
            sent, not_sent = email_invitations(codes, actor=ACTOR)
            self.stdout.write(f"emailed {sent}, not emailed {not_sent} (no contact, or refused)")
        invitations = ngettext("%d invitation", "%d invitations", created) % created
        self.stdout.write(f"campaign {campaign.code}: {tenants}, {invitations} created")
