"""Which objects a staff member may open. Every console view gets tenants and invitations
through these helpers, so a rule about who sees what is written once.

Admins (and local superusers) see every tenant. An operator's scope comes from the tenant
groups granted to them (`TenantGroup.objects.granted_to`: their Entra groups and app roles
as last read from Entra, or a manual membership):

* groups with scope "only": the union of their tenants;
* groups with scope "except": every tenant but theirs; with "only" groups too, their tenants
  are taken out of that union (an exclusion always wins);
* no group at all: `STAFF_UNMAPPED_SCOPE` — "auto" (the default): every tenant while no
  tenant group is mapped to anything (a portal that does not scope staff works as before),
  none as soon as one is (so an operator taken out of their Entra group loses their
  tenants, never gains the fleet); or always "all", or always "none". Every tenant for
  some staff, once scoping is in use: a group with scope "except" and no tenants.

A tenant outside the scope does not exist for the request: 404, never 403, and no count,
list, export, search or API answer includes it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404

from accounts import roles
from consent.models import Invitation
from tenants.models import Tenant, TenantGroup

_SCOPE_CACHE = "_console_tenant_scope"


@dataclass(frozen=True)
class Scope:
    """What a staff member sees: every tenant, or the tenants of `only` groups minus those
    of `excluded` groups (every tenant minus them when `only` is None)."""

    unscoped: bool
    only: tuple[int, ...] | None = None
    excluded: tuple[int, ...] = ()

    def apply(self, tenants: QuerySet[Tenant]) -> QuerySet[Tenant]:
        if self.unscoped:
            return tenants
        members = TenantGroup.tenants.through.objects
        if self.only is not None:
            # A subquery, not a join: a tenant in two granted groups is still one row.
            tenants = tenants.filter(
                pk__in=members.filter(tenantgroup_id__in=self.only).values("tenant_id")
            )
        if self.excluded:
            tenants = tenants.exclude(
                pk__in=members.filter(tenantgroup_id__in=self.excluded).values("tenant_id")
            )
        return tenants


ALL = Scope(unscoped=True)
NOTHING = Scope(unscoped=False, only=())


def scope_for_user(user: object) -> Scope:
    """The tenant scope of a signed-in user (or of an API token's owner)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return NOTHING
    if user.is_superuser or user.has_perm(roles.ADMINISTER):
        return ALL
    identity = getattr(user, "staff_identity", None)
    granted = TenantGroup.objects.granted_to(
        user=user,
        entra_groups=list(identity.groups) if identity else [],
        app_roles=list(identity.roles) if identity else [],
    )
    only = tuple(g.pk for g in granted if g.scope == TenantGroup.Scope.ONLY)
    excluded = tuple(g.pk for g in granted if g.scope == TenantGroup.Scope.EXCEPT)
    if not granted:
        unmapped = settings.STAFF_UNMAPPED_SCOPE
        if unmapped == "auto":
            unmapped = "none" if TenantGroup.objects.scoping_in_use() else "all"
        return ALL if unmapped == "all" else NOTHING
    return Scope(unscoped=False, only=only or None, excluded=excluded)


def scope_for(request: HttpRequest) -> Scope:
    """The scope of the request: its API token's owner, else its user (computed once)."""
    cached = getattr(request, _SCOPE_CACHE, None)
    if cached is not None:
        return cached
    token = getattr(request, "api_token", None)
    if token is not None:
        owner = token.owner
        # Tokens from before scoping have no owner: admins created all of them.
        if owner is None:
            scope = ALL
        elif not owner.has_perm(roles.OPERATE):
            scope = NOTHING  # the creator lost their role: the token reads nothing
        else:
            scope = scope_for_user(owner)
    else:
        scope = scope_for_user(request.user)
    setattr(request, _SCOPE_CACHE, scope)
    return scope


def visible_tenants(request: HttpRequest) -> QuerySet[Tenant]:
    """Every tenant this request may see: the one queryset every console view starts from."""
    return scope_for(request).apply(Tenant.objects.all())


def is_scoped(request: HttpRequest) -> bool:
    return not scope_for(request).unscoped


def get_tenant_for_user(request: HttpRequest, tenant_code: uuid.UUID) -> Tenant:
    """The tenant with this public code, if the request may see it; else 404 (an unknown
    tenant and one out of scope answer alike)."""
    return get_object_or_404(visible_tenants(request), code=tenant_code)


def visible_tenant_ids(request: HttpRequest) -> QuerySet[Tenant] | None:
    """The Entra tenant ids in scope, as a subquery for rows that carry a tenant id (audit
    events, invitations); None when unscoped (no filter at all)."""
    if scope_for(request).unscoped:
        return None
    return visible_tenants(request).values("tenant_id")


def visible_invitations(request: HttpRequest) -> QuerySet[Invitation]:
    """Invitations the request may see: unscoped staff all of them; scoped staff those of
    tenants in scope (by the tenant it onboarded or the one it expects)."""
    invitations = Invitation.objects.select_related("tenant")
    ids = visible_tenant_ids(request)
    if ids is None:
        return invitations
    return invitations.filter(tenant__in=visible_tenants(request)) | invitations.filter(
        tenant__isnull=True, expected_tenant_id__in=ids
    )


def get_invitation_for_user(request: HttpRequest, invitation_code: uuid.UUID) -> Invitation:
    return get_object_or_404(visible_invitations(request), code=invitation_code)


def get_group_for_user(request: HttpRequest, group_code: uuid.UUID) -> TenantGroup:
    """Tenant groups are managed by admins only (unscoped): others never reach here."""
    if is_scoped(request):
        raise Http404
    return get_object_or_404(TenantGroup, code=group_code)
