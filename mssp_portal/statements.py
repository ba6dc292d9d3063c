"""Statements on the hot paths, built once as SQL from the models' metadata instead of
compiled by the ORM every time.

What a fleet runs once per verification (`tenants/verification/rows.py`) and what every
status change writes (an audit record, a notification event, the read of the
destinations) cost the ORM 0.3 to 0.8 ms of CPU each to compile, against tens of
microseconds for the statement itself (`bench/verify_fleet.py --cprofile`). Here each
statement's text is built once per database vendor, model and set of columns, and run with
the thread's cursor, so query logging and `connection.execute_wrappers` still see it. Every
value goes through its field's own conversions, `pre_save` and `get_db_prep_save` on the
way in and the field's and backend's converters on the way out: a row is written and read
exactly as the ORM would. Model signals are not sent: only models without receivers go
through here (checked by `tests/test_statements.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.db.models.expressions import Col


def db() -> BaseDatabaseWrapper:
    """This thread's connection itself. `django.db.connection` is a proxy that looks the
    connection up again on every attribute, and field conversions read several: resolved
    once per statement, that is a tenth of a statement's CPU saved."""
    return connections[DEFAULT_DB_ALIAS]


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def prep(model: type[Model], name: str, value: Any, conn: BaseDatabaseWrapper) -> Any:
    """`value` for the column of `model`'s field `name`, as the ORM would send it."""
    return model._meta.get_field(name).get_db_prep_save(value, conn)


@functools.cache
def _insert_sql(vendor: str, model: type[Model]) -> tuple[str, tuple[Field, ...]]:
    meta = model._meta
    fields = tuple(f for f in meta.local_concrete_fields if f is not meta.auto_field)
    returning = ""
    if meta.auto_field is not None and connection.features.can_return_columns_from_insert:
        returning, _params = connection.ops.return_insert_columns([meta.auto_field])
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders}) {returning}"
    return sql.rstrip(), fields


def insert(instance: Model) -> Model:
    """INSERT a new `instance` as `save()` would (defaults and `auto_now_add` applied, its
    automatic primary key set from the database), without model signals."""
    model, conn = type(instance), db()
    meta = model._meta
    sql, fields = _insert_sql(conn.vendor, model)
    params = [f.get_db_prep_save(f.pre_save(instance, add=True), conn) for f in fields]
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        if meta.auto_field is not None:
            if conn.features.can_return_columns_from_insert:
                pk = cursor.fetchone()[0]
            else:
                pk = conn.ops.last_insert_id(cursor, meta.db_table, meta.pk.column)
            setattr(instance, meta.auto_field.attname, pk)
    instance._state.adding = False
    instance._state.db = conn.alias
    return instance


@functools.cache
def _select_sql(vendor: str, model: type[Model], where: str) -> str:
    columns = ", ".join(quote(f.column) for f in model._meta.concrete_fields)
    return f"SELECT {columns} FROM {quote(model._meta.db_table)} WHERE {where}"


def select(model: type[Model], where: str, params: Sequence[Any]) -> list[Any]:
    """The rows of `model` matching `where` (SQL with %s placeholders, column names of
    lower-case letters only, which need no quoting), as model instances."""
    conn = db()
    with conn.cursor() as cursor:
        cursor.execute(_select_sql(conn.vendor, model, where), params)
        return [from_row(model, row, conn) for row in cursor.fetchall()]


def from_row(model: type[Model], values: Sequence[Any], conn: BaseDatabaseWrapper) -> Any:
    """An instance of `model` from the values of its concrete columns, in their order."""
    converted = []
    for value, (column, converters) in zip(values, _converters(conn.vendor, model), strict=True):
        for converter in converters:
            value = converter(value, column, conn)
        converted.append(value)
    return model.from_db(conn.alias, _attnames(model), converted)


@functools.cache
def _attnames(model: type[Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


@functools.cache
def _converters(vendor: str, model: type[Model]) -> list[tuple[Col, list[Any]]]:
    """Per column of `model`, what the ORM applies to a value read from this vendor.

    Cached per vendor, not per connection (threads come and go with every batch): the
    backend's converters stay bound to the operations of the connection that built the
    list, and every caller passes its own connection in. That holds because they read only
    settings through their own (the time zone); one that needed an open connection of its
    own would need this cache keyed differently."""
    found = []
    for field in model._meta.concrete_fields:
        column = Col(model._meta.db_table, field)
        found.append(
            (column, connection.ops.get_db_converters(column) + field.get_db_converters(connection))
        )
    return found


@functools.cache
def update_sql(vendor: str, model: type[Model], names: tuple[str, ...], where: str) -> str:
    """UPDATE of `model`'s fields `names` (one %s each, in that order) WHERE `where`."""
    meta = model._meta
    assignments = ", ".join(f"{quote(meta.get_field(n).column)} = %s" for n in names)
    return f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {where}"
