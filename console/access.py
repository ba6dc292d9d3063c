"""Which objects a staff member may open. Every console view gets tenants and invitations
through these helpers, so a rule about who sees what is written once."""

from __future__ import annotations

import uuid

from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from consent.models import Invitation
from tenants.models import Tenant


def get_tenant_for_user(request: HttpRequest, tenant_code: uuid.UUID) -> Tenant:
    """The tenant with this public code. Every staff member sees every tenant (no
    per-customer scoping of staff yet); unknown codes are 404."""
    return get_object_or_404(Tenant, code=tenant_code)


def get_invitation_for_user(request: HttpRequest, invitation_code: uuid.UUID) -> Invitation:
    return get_object_or_404(Invitation.objects.select_related("tenant"), code=invitation_code)
