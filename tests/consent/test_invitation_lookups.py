"""Invitations are looked up by the tenant they are bound to through an index, not by a
scan of every invitation ever made: an MSSP keeps them all, and each re-consent campaign
adds one per tenant. On both databases, with the table's statistics gathered and (on
PostgreSQL) sequential scans priced out, so the plan shows whether an index can serve the
query at all rather than what the planner prefers for a small table."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from consent.models import Invitation
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

INDEX = "invitation_expected_idx"


@pytest.fixture
def tenant() -> Tenant:
    """One tenant of 3,000 customers, each with its invitation: two thirds used (bound to
    their onboarded tenant), the rest open; this one's is open."""
    expires = timezone.now() + timedelta(days=7)
    tenants = Tenant.objects.bulk_create(
        Tenant(tenant_id=uuid.uuid4(), cloud="sandbox") for _ in range(3000)
    )
    Invitation.objects.bulk_create(
        Invitation(
            customer_name=f"Customer {i}",
            expected_tenant_id=t.tenant_id,
            expires_at=expires,
            created_by="test",
            **({"status": Invitation.Status.USED, "tenant": t} if i % 3 else {}),
        )
        for i, t in enumerate(tenants)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return tenants[1500]


def plan(queryset) -> str:
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_seqscan = off")
        return queryset.explain()


def test_the_callback_finds_the_tenants_other_open_invitations_by_index(tenant):
    # What Invitation.objects.revoke_open_for reads when a consent is recorded.
    found = plan(Invitation.objects.for_tenant(tenant).filter(status=Invitation.Status.OPEN))

    assert INDEX in found, found
    assert "Seq Scan" not in found, found


def test_the_usable_invitation_of_a_tenant_is_found_by_index(tenant):
    # What to_send_again (the link to send again) and the one-usable-invitation rule read.
    found = plan(
        Invitation.objects.usable()
        .filter(expected_tenant_id=tenant.tenant_id)
        .order_by("-created_at")[:1]
    )

    assert INDEX in found, found
    assert "Seq Scan" not in found, found
