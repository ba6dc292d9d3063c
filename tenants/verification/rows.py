"""The statements every verification of a fleet runs, written once as SQL: claim its row,
read it with its tenant, renew or end its lease, apply the result to the tenant.

The ORM compiled each of them anew for every verification: about 1.5 ms of CPU per
verification (the conditional claim alone took 0.5 ms against 0.03 ms for its SQL), a fifth
of a Graph-only check (`bench/verify_fleet.py --cprofile`). Here each statement is built
once per database vendor and set of columns from the models' metadata and run with the
thread's cursor (so query logging and `connection.execute_wrappers` still see it). Every
value goes through its field's own conversion, `get_db_prep_save` on the way in and the
field's and backend's converters on the way out: a row is read and written exactly as the
ORM would. Anything else about verifications stays with the ORM.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Model
from django.db.models.expressions import Col

from tenants.models import Tenant, Verification

_V = Verification._meta
_T = Tenant._meta
RUNNING = Verification.State.RUNNING


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _prep(model: type[Model], name: str, value: Any) -> Any:
    return model._meta.get_field(name).get_db_prep_save(value, connection)


@functools.cache
def _claim_sql(vendor: str) -> str:
    table, state, lease = _q(_V.db_table), _q("state"), _q("lease_expires_at")
    return (
        f"UPDATE {table} SET {state} = %s, {_q('started_at')} = %s, {lease} = %s, "
        f"{_q('attempts')} = {_q('attempts')} + 1 WHERE {_q('code')} = %s AND "
        f"({state} = %s OR ({state} = %s AND {lease} < %s))"
    )


def claim(code: str, now: datetime, lease_end: datetime) -> bool:
    """Queued, or running under an expired lease → running under a new one, counting the
    attempt; False if the row is not claimable (or not there). Raises ValidationError when
    `code` is not a UUID."""
    params = [
        RUNNING,
        _prep(Verification, "started_at", now),
        _prep(Verification, "lease_expires_at", lease_end),
        _prep(Verification, "code", code),
        Verification.State.QUEUED,
        RUNNING,
        _prep(Verification, "lease_expires_at", now),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(connection.vendor), params)
        return cursor.rowcount == 1


@functools.cache
def _read_sql(vendor: str) -> str:
    columns = [f"v.{_q(f.column)}" for f in _V.concrete_fields]
    columns += [f"t.{_q(f.column)}" for f in _T.concrete_fields]
    return (
        f"SELECT {', '.join(columns)} FROM {_q(_V.db_table)} v JOIN {_q(_T.db_table)} t "
        f"ON t.{_q(_T.pk.column)} = v.{_q(_V.get_field('tenant').column)} "
        f"WHERE v.{_q('code')} = %s"
    )


def read(code: str) -> Verification | None:
    """The verification with its tenant (what `select_related("tenant")` loads)."""
    with connection.cursor() as cursor:
        cursor.execute(_read_sql(connection.vendor), [_prep(Verification, "code", code)])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(_V.concrete_fields)
    verification = _from_row(Verification, row[:split])
    verification.tenant = _from_row(Tenant, row[split:])
    return verification


def _from_row(model: type[Model], values: Sequence[Any]) -> Any:
    fields = model._meta.concrete_fields
    converted = []
    for value, (column, converters) in zip(
        values, _converters(connection.vendor, model), strict=True
    ):
        for converter in converters:
            value = converter(value, column, connection)
        converted.append(value)
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


@functools.cache
def _converters(vendor: str, model: type[Model]) -> list[tuple[Col, list[Any]]]:
    """Per column of `model`, what the ORM applies to a value read from this vendor."""
    found = []
    for field in model._meta.concrete_fields:
        column = Col(model._meta.db_table, field)
        found.append(
            (column, connection.ops.get_db_converters(column) + field.get_db_converters(connection))
        )
    return found


@functools.cache
def _update_sql(vendor: str, model: type[Model], names: tuple[str, ...], where: str) -> str:
    meta = model._meta
    assignments = ", ".join(f"{_q(meta.get_field(n).column)} = %s" for n in names)
    return f"UPDATE {_q(meta.db_table)} SET {assignments} WHERE {where}"


def update_holding(verification: Verification, **values: Any) -> bool:
    """Set `values` on the verification's row if this worker still holds it: running, and
    claimed as many times as when this worker claimed it (the attempt count is the fencing
    token)."""
    names = tuple(values)
    where = f"{_q(_V.pk.column)} = %s AND {_q('state')} = %s AND {_q('attempts')} = %s"
    params = [_prep(Verification, n, values[n]) for n in names]
    params += [verification.pk, RUNNING, verification.attempts]
    with connection.cursor() as cursor:
        cursor.execute(_update_sql(connection.vendor, Verification, names, where), params)
        return cursor.rowcount == 1


def update_tenant(tenant: Tenant, names: Sequence[str]) -> bool:
    """Save the tenant's `names` fields, unless it was offboarded meanwhile (then its
    history keeps the result and the tenant is left alone)."""
    names = tuple(dict.fromkeys(names))
    where = f"{_q(_T.pk.column)} = %s AND {_q('status')} <> %s"
    params = [_prep(Tenant, n, getattr(tenant, _T.get_field(n).attname)) for n in names]
    params += [tenant.pk, Tenant.Status.OFFBOARDED]
    with connection.cursor() as cursor:
        cursor.execute(_update_sql(connection.vendor, Tenant, names, where), params)
        return cursor.rowcount == 1
