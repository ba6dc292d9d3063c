"""The shared cache: Django's database cache, with an atomic `incr`.

Rate limits (django-ratelimit) count requests with `cache.add` then `cache.incr`. Their
counts must hold across gunicorn workers and hosts, so they live in the database every
process shares (the portal runs no Redis or memcached). Django's DatabaseCache increments
by reading then writing, so two workers can both read 7 and both write 8 (the reason
django-ratelimit flags it, django_ratelimit.E003). Here the read and the write are one
transaction holding the row: PostgreSQL locks it (`SELECT … FOR UPDATE`), SQLite takes
the database's write lock when the transaction begins (`transaction_mode` IMMEDIATE in
settings).

`add`, the first count of every address, is one statement here: an INSERT that takes over
the row only if it has expired (`ON CONFLICT … DO UPDATE … WHERE`, on PostgreSQL and
SQLite). Django's runs five (a COUNT(*) of the whole table to decide on culling, then a
transaction with a SELECT and an INSERT that fails when the key exists), and a COUNT(*) is
a scan of the table on PostgreSQL, as long as the number of addresses seen lately. Culling
is Django's own, checked on one `add` in CULL_EVERY per process instead of on each.
"""

from __future__ import annotations

import base64
import itertools
import pickle
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.db import DatabaseCache
from django.db import connections, models, router, transaction
from django.utils import timezone

# One `add` in this many (per process) counts the table and culls it past MAX_ENTRIES.
CULL_EVERY = 100


class AtomicDatabaseCache(DatabaseCache):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._adds = itertools.count()

    def add(
        self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        """Store `value` under `key` unless a live value is there: True if it was stored."""
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        if connection.vendor not in ("postgresql", "sqlite"):
            return super().add(key, value, timeout, version)
        key = self.make_and_validate_key(key, version=version)
        timeout = self.get_backend_timeout(timeout)
        now = timezone.now().replace(microsecond=0)
        if timeout is None:
            expires = datetime.max  # noqa: DTZ901 - never expires, as Django's own writes it
        else:
            expires = datetime.fromtimestamp(timeout, tz=UTC if settings.USE_TZ else None)
        expires = expires.replace(microsecond=0)
        encoded = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
        quote = connection.ops.quote_name
        table, key_col, value_col, expires_col = (
            quote(name) for name in (self._table, "cache_key", "value", "expires")
        )
        adapt = connection.ops.adapt_datetimefield_value
        with connection.cursor() as cursor:
            if next(self._adds) % CULL_EVERY == 0:
                cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608
                count = cursor.fetchone()[0]
                if count > self._max_entries:
                    self._cull(db, cursor, now, count)
            cursor.execute(
                f"INSERT INTO {table} ({key_col}, {value_col}, {expires_col}) "  # noqa: S608
                f"VALUES (%s, %s, %s) ON CONFLICT ({key_col}) DO UPDATE SET "
                f"{value_col} = EXCLUDED.{value_col}, {expires_col} = EXCLUDED.{expires_col} "
                f"WHERE {table}.{expires_col} < %s",
                [key, encoded, adapt(expires), adapt(now)],
            )
            return cursor.rowcount == 1

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        quote = connection.ops.quote_name
        table, value_col, expires_col, key_col = (
            quote(name) for name in (self._table, "value", "expires", "cache_key")
        )
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        with transaction.atomic(using=db), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {value_col}, {expires_col} FROM {table} WHERE {key_col} = %s{lock}",  # noqa: S608
                [key],
            )
            row = cursor.fetchone()
            expires = row and self._expiry(connection, row[1])
            if row is None or expires < timezone.now():
                raise ValueError(f"Key '{key}' not found")
            stored = connection.ops.process_clob(row[0])
            value = pickle.loads(base64.b64decode(stored.encode())) + delta  # noqa: S301
            encoded = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
            cursor.execute(
                f"UPDATE {table} SET {value_col} = %s WHERE {key_col} = %s",  # noqa: S608
                [encoded, key],
            )
        return value

    @staticmethod
    def _expiry(connection: Any, value: Any) -> Any:
        """The `expires` column as the ORM reads it (aware or naive, as get_many() does)."""
        expression = models.Expression(output_field=models.DateTimeField())
        converters = connection.ops.get_db_converters(expression)
        for converter in converters + expression.get_db_converters(connection):
            value = converter(value, expression, connection)
        return value
