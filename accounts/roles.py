"""Entra app roles → portal groups and permissions.

Roles come only from the `roles` claim of the id token of the current sign-in, and the
user's groups are replaced with exactly what those roles give, on every sign-in: a role
removed in Entra is gone at the next sign-in (and sessions end within the idle or absolute
time-out).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import Group, Permission

ADMIN_ROLE = "Portal.Admin"
OPERATOR_ROLE = "Portal.Operator"

OPERATE = "accounts.operate"
ADMINISTER = "accounts.administer"

# group name -> codenames of accounts permissions it carries
GROUPS = {
    "Portal admins": ("operate", "administer"),
    "Portal operators": ("operate",),
}
ROLE_GROUPS = {
    ADMIN_ROLE: "Portal admins",
    OPERATOR_ROLE: "Portal operators",
}


def portal_roles(claimed: Iterable[object]) -> list[str]:
    """The portal's roles among the claimed ones (anything else is ignored)."""
    return sorted({role for role in claimed if isinstance(role, str) and role in ROLE_GROUPS})


def ensure_groups() -> dict[str, Group]:
    """The portal groups, with exactly their permissions."""
    groups = {}
    for name, codenames in GROUPS.items():
        group, _created = Group.objects.get_or_create(name=name)
        # Reset every time: a permission added to a portal group by hand does not stick.
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="accounts", codename__in=codenames)
        )
        groups[name] = group
    return groups


def apply(user: object, roles: Iterable[str]) -> None:
    """Make the user's groups exactly those of `roles`."""
    groups = ensure_groups()
    user.groups.set([groups[ROLE_GROUPS[role]] for role in portal_roles(roles)])
