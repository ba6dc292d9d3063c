"""The statements every verification of a fleet runs, written once as SQL: claim its row,
read it with its tenant, renew or end its lease, apply the result to the tenant.

The ORM compiled each of them anew for every verification: about 1.5 ms of CPU per
verification (the conditional claim alone took 0.5 ms against 0.03 ms for its SQL), a fifth
of a Graph-only check (`bench/verify_fleet.py --cprofile`). They are built with
`mssp_portal.statements` (once per vendor and set of columns, values converted by their
fields both ways). Anything else about verifications stays with the ORM.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mssp_portal.statements import db, from_row, prep, quote, update_sql
from tenants.models import Tenant, Verification

_V = Verification._meta
_T = Tenant._meta
RUNNING = Verification.State.RUNNING


@functools.cache
def _claim_sql(vendor: str) -> str:
    table, state, lease = quote(_V.db_table), quote("state"), quote("lease_expires_at")
    return (
        f"UPDATE {table} SET {state} = %s, {quote('started_at')} = %s, {lease} = %s, "
        f"{quote('attempts')} = {quote('attempts')} + 1 WHERE {quote('code')} = %s AND "
        f"({state} = %s OR ({state} = %s AND {lease} < %s))"
    )


def claim(code: str, now: datetime, lease_end: datetime) -> bool:
    """Queued, or running under an expired lease → running under a new one, counting the
    attempt; False if the row is not claimable (or not there). Raises ValidationError when
    `code` is not a UUID."""
    conn = db()
    params = [
        RUNNING,
        prep(Verification, "started_at", now, conn),
        prep(Verification, "lease_expires_at", lease_end, conn),
        prep(Verification, "code", code, conn),
        Verification.State.QUEUED,
        RUNNING,
        prep(Verification, "lease_expires_at", now, conn),
    ]
    with conn.cursor() as cursor:
        cursor.execute(_claim_sql(conn.vendor), params)
        return cursor.rowcount == 1


@functools.cache
def _read_sql(vendor: str) -> str:
    columns = [f"v.{quote(f.column)}" for f in _V.concrete_fields]
    columns += [f"t.{quote(f.column)}" for f in _T.concrete_fields]
    return (
        f"SELECT {', '.join(columns)} FROM {quote(_V.db_table)} v JOIN {quote(_T.db_table)} t "
        f"ON t.{quote(_T.pk.column)} = v.{quote(_V.get_field('tenant').column)} "
        f"WHERE v.{quote('code')} = %s"
    )


def read(code: str) -> Verification | None:
    """The verification with its tenant (what `select_related("tenant")` loads)."""
    conn = db()
    with conn.cursor() as cursor:
        cursor.execute(_read_sql(conn.vendor), [prep(Verification, "code", code, conn)])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(_V.concrete_fields)
    verification = from_row(Verification, row[:split], conn)
    verification.tenant = from_row(Tenant, row[split:], conn)
    return verification


def update_holding(verification: Verification, **values: Any) -> bool:
    """Set `values` on the verification's row if this worker still holds it: running, and
    claimed as many times as when this worker claimed it (the attempt count is the fencing
    token)."""
    names = tuple(values)
    where = f"{quote(_V.pk.column)} = %s AND {quote('state')} = %s AND {quote('attempts')} = %s"
    conn = db()
    params = [prep(Verification, n, values[n], conn) for n in names]
    params += [verification.pk, RUNNING, verification.attempts]
    with conn.cursor() as cursor:
        cursor.execute(update_sql(conn.vendor, Verification, names, where), params)
        return cursor.rowcount == 1


def update_tenant(tenant: Tenant, names: Sequence[str]) -> bool:
    """Save the tenant's `names` fields, unless it was offboarded meanwhile (then its
    history keeps the result and the tenant is left alone)."""
    names = tuple(dict.fromkeys(names))
    where = f"{quote(_T.pk.column)} = %s AND {quote('status')} <> %s"
    conn = db()
    params = [prep(Tenant, n, getattr(tenant, _T.get_field(n).attname), conn) for n in names]
    params += [tenant.pk, Tenant.Status.OFFBOARDED]
    with conn.cursor() as cursor:
        cursor.execute(update_sql(conn.vendor, Tenant, names, where), params)
        return cursor.rowcount == 1
