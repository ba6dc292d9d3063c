"""mssp_portal.statements writes and reads rows exactly as the ORM does, on SQLite and
PostgreSQL, for the models that go through it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import signals
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from mssp_portal import statements
from notifications.models import Destination, Event

pytestmark = pytest.mark.django_db

# Every model written or read through `statements` (audit.log, notifications.events).
THROUGH_STATEMENTS = (AuditEvent, Event, Destination)


def _fields(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def test_insert_writes_the_row_save_would_and_sets_its_primary_key():
    before = timezone.now()
    event = AuditEvent(
        actor="ops@fabrikam.example",
        action="tenant.status_changed",
        tenant_id=str(uuid.uuid4()),  # a string, as callers pass it
        outcome=AuditEvent.Outcome.SUCCESS,
        detail={"from": "verified", "to": "no_access", "note": "Ünïcode <b>", "n": [1, None]},
    )

    with CaptureQueriesContext(connection) as queries:
        statements.insert(event)
    stored = AuditEvent.objects.get(pk=event.pk)

    assert len(queries) == 1
    assert event.pk is not None and not event._state.adding
    assert _fields(stored) | {"tenant_id": str(stored.tenant_id)} == _fields(event)
    assert isinstance(stored.tenant_id, uuid.UUID)
    assert stored.detail["note"] == "Ünïcode <b>" and stored.detail["n"] == [1, None]
    assert stored.at >= before and stored.at.tzinfo is not None
    second = statements.insert(
        AuditEvent(actor="system", action="tenant.onboarded", outcome="success")
    )
    assert second.pk > event.pk
    assert AuditEvent.objects.get(pk=second.pk).tenant_id is None


def test_insert_raises_integrity_error_on_a_unique_column_and_writes_nothing():
    statements.insert(Event(type="tenant.stale", data={}, dedupe_key="stale:1"))

    with pytest.raises(IntegrityError), transaction.atomic():
        statements.insert(Event(type="tenant.stale", data={}, dedupe_key="stale:1"))

    assert Event.objects.filter(dedupe_key="stale:1").count() == 1


def test_select_reads_the_instances_the_orm_reads():
    yes = Destination.objects.create(
        kind="webhook",
        name="PSA ünï",
        target="https://psa.example/hook",
        event_types=["tenant.status_changed"],
        access_profiles=["full-soc"],
        created_by="admin",
        last_digest_at=timezone.now() - timedelta(days=1),
    )
    Destination.objects.create(
        kind="webhook", name="off", target="https://off.example", enabled=False, created_by="a"
    )

    found = statements.select(Destination, "enabled = %s", [True])

    # The same rows as the manager's own definition, which fan_out's SQL stands in for.
    assert [_fields(d) for d in found] == [_fields(d) for d in Destination.objects.enabled()]
    assert [_fields(d) for d in found] == [_fields(yes)]
    assert found[0].event_types == ["tenant.status_changed"]
    assert found[0].wants("tenant.status_changed", "full-soc")
    assert not found[0].wants("tenant.status_changed", "graph-reporting")


@pytest.mark.parametrize("model", THROUGH_STATEMENTS, ids=lambda m: m.__name__)
def test_models_written_through_statements_have_no_signal_receivers(model):
    """statements.insert sends no pre_save/post_save: a receiver added to one of these
    models would silently miss every row written there."""
    for signal in (signals.pre_save, signals.post_save):
        assert not signal.has_listeners(model), f"{signal} has receivers for {model.__name__}"
