"""Helpers for the consent tests: invitations for the demo customers, callback URLs as Entra
builds them, and a way to see everything the portal recorded."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from audit.models import AuditEvent
from consent.models import ConsentTicket, Invitation
from tenants.models import Tenant, Verification
from tests.conftest import NORTHWIND

CALLBACK = "/consent/callback/"


def make_invitation(
    customer: str = "Northwind Traders",
    tenant: str | None = NORTHWIND,
    profile: str = "defender-xdr-readonly",
    days: int = 14,
    domain: str = "",
) -> Invitation:
    return Invitation.objects.create(
        customer_name=customer,
        expected_tenant_id=uuid.UUID(tenant) if tenant else None,
        expected_domain=domain,
        access_profile=profile,
        expires_at=timezone.now() + timedelta(days=days),
        created_by="admin@fabrikam-mssp.example",
    )


def issue(invitation: Invitation) -> str:
    """What clicking "Grant admin consent" hands to Entra: a fresh `state`."""
    _ticket, state = invitation.issue_ticket()
    return state


def query(*pairs: tuple[str, str]) -> str:
    """A query string exactly as given: repeated keys and odd bytes stay as they are."""
    return "&".join(f"{quote(key, safe='')}={quote(value, safe='')}" for key, value in pairs)


def callback_url(*pairs: tuple[str, str]) -> str:
    return f"{CALLBACK}?{query(*pairs)}"


def success(state: str, tenant: str = NORTHWIND) -> str:
    """Entra's redirect after an administrator accepted."""
    return callback_url(
        ("admin_consent", "True"),
        ("tenant", tenant),
        ("scope", "https://graph.microsoft.com/.default"),
        ("state", state),
    )


@dataclass(frozen=True)
class Recorded:
    """Everything the consent flow can write, counted."""

    tenants: int
    verifications: int
    tasks: int
    used_tickets: int
    audit_actions: tuple[str, ...]
    invitation_statuses: tuple[str, ...]


def recorded() -> Recorded:
    return Recorded(
        tenants=Tenant.objects.count(),
        verifications=Verification.objects.count(),
        tasks=DBTaskResult.objects.count(),
        used_tickets=ConsentTicket.objects.filter(used_at__isnull=False).count(),
        audit_actions=tuple(
            AuditEvent.objects.order_by("at", "pk").values_list("action", flat=True)
        ),
        invitation_statuses=tuple(
            Invitation.objects.order_by("pk").values_list("status", flat=True)
        ),
    )


def nothing_recorded_since(before: Recorded) -> bool:
    return recorded() == before
