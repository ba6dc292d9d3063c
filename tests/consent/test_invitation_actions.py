"""The invitation actions on the model, which the console, `create_invitation` and the
Django admin all call: each audits itself, once."""

from __future__ import annotations

import importlib
import uuid
from datetime import timedelta

from django.apps import apps
from django.utils import timezone

from audit.log import record
from audit.models import AuditEvent
from consent.models import Invitation
from tenants.models import Tenant
from tests.personas import ADMIN, make_tenant


def _invite(tenant: Tenant | None = None, **fields: object) -> Invitation:
    return Invitation.objects.create_invitation(
        customer_name="Contoso",
        access_profile="graph-reporting",
        days=7,
        actor=ADMIN,
        expected_tenant_id=tenant.tenant_id if tenant else uuid.uuid4(),
        tenant=tenant,
        **fields,
    )


def test_it_audits_a_created_invitation_once(db):
    tenant = make_tenant()

    invitation = _invite(tenant)

    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.tenant_id) == (
        "invitation.created",
        ADMIN,
        tenant.tenant_id,
    )
    assert event.detail == {
        "invitation": str(invitation.code),
        "customer": "Contoso",
        "access_profile": "graph-reporting",
        "kind": "re-consent",
    }
    assert timedelta(days=6) < invitation.expires_at - timezone.now() <= timedelta(days=7)


def test_it_audits_a_revocation_only_when_it_revokes(db):
    invitation = _invite()

    assert invitation.revoke(actor=ADMIN, reason="sent to the wrong address")
    assert not invitation.revoke(actor=ADMIN)

    events = AuditEvent.objects.filter(action="invitation.revoked")
    assert [e.detail["reason"] for e in events] == ["sent to the wrong address"]


def test_it_finds_the_newest_usable_invitation_bound_to_the_tenant(db):
    tenant = make_tenant()
    expired = _invite(tenant)
    Invitation.objects.filter(pk=expired.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1), created_at=timezone.now() + timedelta(2)
    )
    older = _invite(tenant)
    # Two usable links for one tenant predate the one-open-invitation rule; rows like it stay.
    newer = Invitation.objects.create(
        customer_name="Contoso",
        expected_tenant_id=tenant.tenant_id,
        expires_at=timezone.now() + timedelta(days=7),
        created_by=ADMIN,
        created_at=timezone.now() + timedelta(1),
    )
    _invite()  # open, but for another tenant: not this tenant's link

    assert Invitation.objects.to_send_again(tenant) == newer
    newer.revoke(actor=ADMIN)
    assert Invitation.objects.to_send_again(tenant) == older
    older.revoke(actor=ADMIN)
    assert Invitation.objects.to_send_again(tenant) is None


def test_offboarding_from_the_model_closes_the_tenants_open_invitations(db):
    tenant, other = make_tenant(), make_tenant()
    mine, theirs = _invite(tenant), _invite(other)

    assert tenant.offboard(actor="cli")
    assert not tenant.offboard(actor="cli")

    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.status, theirs.status) == (Invitation.Status.REVOKED, Invitation.Status.OPEN)
    actions = list(AuditEvent.objects.filter(actor="cli").values_list("action", flat=True))
    assert sorted(actions) == ["invitation.revoked", "tenant.offboarded"]
    assert tenant.status == Tenant.Status.OFFBOARDED and tenant.offboarded_at is not None


def test_the_migration_renames_old_audit_actions(db):
    migration = importlib.import_module("audit.migrations.0002_rename_actions")
    old = {
        ("invitation_create", "success"): "invitation.created",
        ("consent.invitation_revoked", "success"): "invitation.revoked",
        ("offboard", "success"): "tenant.offboarded",
        ("login", "success"): "user.signed_in",
        ("login", "denied"): "user.sign_in_refused",
        ("consent.reported", "success"): "consent.reported",
    }
    for action, outcome in old:
        record(action, outcome, actor="someone", tenant_id=uuid.uuid4())

    migration.forwards(apps, None)

    renamed = sorted(AuditEvent.objects.values_list("outcome", "action"))
    assert renamed == sorted((outcome, new) for (_, outcome), new in old.items())
