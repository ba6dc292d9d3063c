"""manage.py tenant_groups add NAME [--description TEXT] [--except]
manage.py tenant_groups assign NAME TENANT_ID…
manage.py tenant_groups map NAME (--entra-group OBJECT_ID | --app-role VALUE)
manage.py tenant_groups members NAME [USERNAME…]
manage.py tenant_groups list

Tenant groups scope staff: an operator mapped to a group (by an Entra security group's
object id or an app role value of the home tenant) sees only its tenants, or, for a group
added with --except, every tenant but its tenants. `members` sets the users given the
group's scope by hand (break-glass accounts, which have no Entra groups); none clears it.
Each change is audited with actor "cli".
Exit status: 0 done, 2 usage error (unknown group or tenant, a bad id, a name taken).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import ngettext

from mssp_portal.untrusted import for_log
from tenants.models import Tenant, TenantGroup

ACTOR = "cli"


class Command(BaseCommand):
    help = "Create tenant groups, put tenants in them, map Entra groups or app roles to them."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="create a group")
        add.add_argument("name")
        add.add_argument("--description", default="")
        add.add_argument(
            "--except",
            dest="except_",
            action="store_true",
            help="staff mapped to it see every tenant except its tenants",
        )
        assign = sub.add_parser("assign", help="put tenants (Entra tenant ids) in a group")
        assign.add_argument("name")
        assign.add_argument("tenant_ids", nargs="+", metavar="TENANT_ID")
        mapping = sub.add_parser("map", help="grant a group's scope to an Entra group or app role")
        mapping.add_argument("name")
        which = mapping.add_mutually_exclusive_group(required=True)
        which.add_argument("--entra-group", metavar="OBJECT_ID", default="")
        which.add_argument("--app-role", metavar="VALUE", default="")
        members = sub.add_parser("members", help="set the manual members (break-glass)")
        members.add_argument("name")
        members.add_argument("usernames", nargs="*", metavar="USERNAME")
        sub.add_parser("list", help="every group, its scope, mappings and tenant count")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(options)

    def _group(self, name: str) -> TenantGroup:
        group = TenantGroup.objects.filter(name=name).first()
        if group is None:
            raise CommandError(
                f"No tenant group named {for_log(name, 100)!r}. "
                "See them with: manage.py tenant_groups list",
                returncode=2,
            )
        return group

    def _add(self, options: dict[str, Any]) -> None:
        name = " ".join(options["name"].split())
        if not name or len(name) > 100:
            raise CommandError("A group name is 1 to 100 characters.", returncode=2)
        if TenantGroup.objects.filter(name=name).exists():
            raise CommandError(f"A tenant group named {for_log(name)!r} exists.", returncode=2)
        scope = TenantGroup.Scope.EXCEPT if options["except_"] else TenantGroup.Scope.ONLY
        group = TenantGroup.objects.create_group(
            name=name, description=options["description"], scope=scope, actor=ACTOR
        )
        self.stdout.write(f"created {group.name} ({group.get_scope_display().lower()})")

    def _assign(self, options: dict[str, Any]) -> None:
        group = self._group(options["name"])
        ids = []
        for raw in options["tenant_ids"]:
            try:
                ids.append(uuid.UUID(raw))
            except ValueError:
                raise CommandError(
                    f"{for_log(raw, 100)!r} is not a tenant id (a GUID).", returncode=2
                ) from None
        tenants = list(Tenant.objects.filter(tenant_id__in=ids))
        unknown = sorted({str(i) for i in ids} - {str(t.tenant_id) for t in tenants})
        if unknown:
            raise CommandError(f"Unknown tenant: {', '.join(unknown)}", returncode=2)
        added = group.assign(tenants, actor=ACTOR)
        already = len(tenants) - added
        message = ngettext("%d tenant added", "%d tenants added", added) % added
        if already:
            message += (
                ngettext(", %d was in it already", ", %d were in it already", already) % already
            )
        self.stdout.write(f"{group.name}: {message}")

    def _map(self, options: dict[str, Any]) -> None:
        group = self._group(options["name"])
        entra_group, app_role = options["entra_group"], options["app_role"].strip()
        if entra_group:
            try:
                uuid.UUID(entra_group)
            except ValueError:
                raise CommandError(
                    "--entra-group takes the group's object id (a GUID), as tokens carry it.",
                    returncode=2,
                ) from None
        elif not app_role:
            raise CommandError("--app-role takes a role value, e.g. Portal.SOC.EMEA.", returncode=2)
        what = f"Entra group {entra_group}" if entra_group else f"app role {app_role}"
        if group.map(actor=ACTOR, entra_group=entra_group, app_role=app_role):
            self.stdout.write(f"{group.name}: mapped to {what}")
        else:
            self.stdout.write(f"{group.name}: already mapped to {what}")

    def _members(self, options: dict[str, Any]) -> None:
        group = self._group(options["name"])
        User = get_user_model()
        wanted = list(dict.fromkeys(options["usernames"]))
        users = list(User.objects.filter(username__in=wanted))
        unknown = sorted(set(wanted) - {u.get_username() for u in users})
        if unknown:
            raise CommandError(
                f"Unknown user: {', '.join(for_log(u, 150) for u in unknown)}", returncode=2
            )
        group.set_members(users, actor=ACTOR)
        names = ", ".join(sorted(u.get_username() for u in users)) or "none"
        self.stdout.write(f"{group.name}: manual members {names}")

    def _list(self, options: dict[str, Any]) -> None:
        groups = list(TenantGroup.objects.all())
        if not groups:
            self.stdout.write("No tenant groups. Create one with: manage.py tenant_groups add NAME")
            return
        for group in groups:
            count = group.tenants.count()
            mappings = [f"entra-group {g}" for g in group.entra_group_ids] + [
                f"app-role {r}" for r in group.app_roles
            ]
            self.stdout.write(
                f"{group.name}\t{group.scope}\t"
                + ngettext("%d tenant", "%d tenants", count) % count
                + "\t"
                + (", ".join(mappings) or "not mapped")
            )
