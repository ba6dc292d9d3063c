"""The verification's hand-written statements (tenants.verification.rows) read and write rows
exactly as the ORM does, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tenants.models import Tenant, Verification
from tenants.verification import rows

pytestmark = pytest.mark.django_db


def _tenant(**extra) -> Tenant:
    return Tenant.objects.create(
        tenant_id=uuid.uuid4(),
        display_name="Ünïcode & <Co>",
        cloud="sandbox",
        access_profile="graph-reporting",
        probe_settings={"loganalytics": {"dcr": "dcr-" + "0" * 32, "n": [1, 2.5, None]}},
        consent_reported_at=timezone.now() - timedelta(minutes=3),
        **extra,
    )


def _fields(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def test_read_loads_what_select_related_loads():
    tenant = _tenant(status=Tenant.Status.INCOMPLETE, stale_since=timezone.now())
    verification = Verification.objects.create(
        tenant=tenant,
        trigger=Verification.Trigger.SCHEDULE,
        results={"graph": {"roles_seen": ["Organization.Read.All"], "probe": None}},
        platform={"assertion": {"exp": 1_900_000_000}},
        lease_expires_at=timezone.now() + timedelta(seconds=90),
    )

    with CaptureQueriesContext(connection) as queries:
        read = rows.read(str(verification.code))
    orm = Verification.objects.select_related("tenant").get(code=verification.code)

    assert len(queries) == 1
    assert _fields(read) == _fields(orm)
    assert _fields(read.tenant) == _fields(orm.tenant)
    assert read.tenant.probe_settings["loganalytics"]["n"] == [1, 2.5, None]
    assert read.lease_expires_at.tzinfo is not None
    assert rows.read(str(uuid.uuid4())) is None


def test_claim_takes_a_queued_row_once_and_an_expired_lease_again():
    verification = Verification.objects.create(
        tenant=_tenant(), trigger=Verification.Trigger.MANUAL
    )
    code, now = str(verification.code), timezone.now()

    assert rows.claim(code, now, now + timedelta(seconds=60))
    assert not rows.claim(code, now, now + timedelta(seconds=60))  # held
    later = now + timedelta(seconds=61)
    assert rows.claim(code, later, later + timedelta(seconds=60))  # the lease expired
    verification.refresh_from_db()
    assert verification.state == Verification.State.RUNNING
    assert verification.attempts == 2
    assert verification.lease_expires_at == later + timedelta(seconds=60)
    assert not rows.claim(str(uuid.uuid4()), now, now)
    with pytest.raises(ValidationError):
        rows.claim("not-a-uuid", now, now)


def test_update_holding_writes_only_for_the_current_claim():
    verification = Verification.objects.create(
        tenant=_tenant(), trigger=Verification.Trigger.MANUAL
    )
    now = timezone.now()
    rows.claim(str(verification.code), now, now + timedelta(seconds=60))
    held = rows.read(str(verification.code))
    stale = rows.read(str(verification.code))
    stale.attempts -= 1  # what a worker presumed dead still holds

    results = {"graph": {"token": "ok", "roles_seen": ["Ünïcode"]}}
    assert not rows.update_holding(stale, diagnosis="late")
    assert rows.update_holding(held, outcome="verified", results=results, finished_at=now)
    verification.refresh_from_db()
    assert (verification.outcome, verification.results, verification.finished_at) == (
        "verified",
        results,
        now,
    )
    assert verification.diagnosis == ""


def test_update_tenant_leaves_an_offboarded_tenant_alone():
    tenant = _tenant()
    tenant.status, tenant.diagnosis = Tenant.Status.VERIFIED, "verified"
    tenant.last_checked_at = timezone.now()
    assert rows.update_tenant(tenant, ["status", "diagnosis", "last_checked_at", "status"])
    tenant.refresh_from_db()
    assert (tenant.status, tenant.diagnosis) == (Tenant.Status.VERIFIED, "verified")

    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.OFFBOARDED)
    tenant.status = Tenant.Status.NO_ACCESS
    assert not rows.update_tenant(tenant, ["status"])
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.OFFBOARDED
