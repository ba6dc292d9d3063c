"""The Django user behind an Entra staff sign-in."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts import graph, roles
from accounts.entra import SignInRefused, StaffClaims
from accounts.models import StaffIdentity
from audit.log import record


def with_groups(claims: StaffClaims) -> StaffClaims:
    """The claims with the user's groups: those of the id token, or, when Entra sent its
    overage form, read from Graph. Refuses the sign-in when Graph cannot say: scoping by
    guessed groups could show a pod tenants it must not see."""
    if not claims.groups_overage:
        return claims
    try:
        groups = graph.member_groups(claims.object_id)
    except graph.DirectoryUnavailable:
        raise SignInRefused(
            "groups_unavailable", upn=claims.username, tenant_id=claims.tenant_id
        ) from None
    return dataclasses.replace(claims, groups=tuple(groups), groups_overage=False)


@transaction.atomic
def staff_user_for(claims: StaffClaims) -> object:
    """Find (by object id) or create the user, and make its groups those of the roles.

    Entra users never get a password, `is_staff` or `is_superuser`: the Django admin stays
    with the local break-glass superusers.
    """
    User = get_user_model()
    identity = (
        StaffIdentity.objects.select_related("user")
        .select_for_update()
        .filter(object_id=claims.object_id)
        .first()
    )
    if identity is None:
        if User.objects.filter(username__iexact=claims.username).exists():
            # A local account by that name: never merge a password account into an Entra one.
            raise SignInRefused("account_conflict", upn=claims.username)
        user = User(username=claims.username)
        user.set_unusable_password()
        user.save()
        identity = StaffIdentity(user=user, tenant_id=claims.tenant_id, object_id=claims.object_id)
    user = identity.user
    if not user.is_active:
        raise SignInRefused("account_disabled", upn=claims.username)
    taken = User.objects.filter(username__iexact=claims.username).exclude(pk=user.pk).exists()
    if user.username != claims.username and not taken:
        user.username = claims.username  # renamed in Entra
    user.first_name = claims.name[:150]
    user.is_staff = False
    user.is_superuser = False
    user.save(update_fields=["username", "first_name", "is_staff", "is_superuser"])
    identity.roles = list(claims.app_roles) or claims.roles
    identity.groups = list(claims.groups)
    identity.last_sign_in_at = identity.roles_checked_at = timezone.now()
    identity.save()
    roles.apply(user, claims.roles)
    return user


def withdraw_roles(object_id: str) -> bool:
    """Entra says this user has no portal role any more: drop the groups of the portal user
    they were, so that sessions still open elsewhere lose their permissions at their next
    request instead of at their time-out. Returns whether a known user lost anything."""
    identity = StaffIdentity.objects.select_related("user").filter(object_id=object_id).first()
    if identity is None:
        return False
    had = bool(identity.roles) or identity.user.groups.exists()
    identity.roles = []
    identity.groups = []
    identity.save(update_fields=["roles", "groups"])
    roles.apply(identity.user, [])
    return had


def recheck_due(identity: StaffIdentity) -> bool:
    checked = identity.roles_checked_at
    interval = timedelta(seconds=settings.STAFF_ROLE_RECHECK)
    return checked is None or timezone.now() - checked >= interval


def recheck(identity: StaffIdentity) -> bool:
    """Read the user's app roles and groups from the home tenant again (Graph, the portal's
    own token) and apply them: the portal groups become those of the roles now held, the
    scoping groups those of now. Returns whether the user still holds a portal role. Raises
    graph.DirectoryUnavailable when Graph cannot say (the caller ends the session)."""
    access = graph.directory_access(str(identity.object_id))
    granted = roles.portal_roles(access.roles) if access.enabled else []
    before = (sorted(identity.roles), sorted(identity.groups))
    identity.roles = access.roles if access.enabled else []
    identity.groups = access.groups if access.enabled else []
    identity.roles_checked_at = timezone.now()
    identity.save(update_fields=["roles", "groups", "roles_checked_at"])
    roles.apply(identity.user, granted)
    if before != (sorted(identity.roles), sorted(identity.groups)):
        record(
            "user.roles_changed",
            "success",
            actor=identity.user.get_username(),
            detail={
                "roles": ",".join(granted) or "-",
                "groups": len(identity.groups),
                "enabled": access.enabled,
            },
        )
    return bool(granted)
