"""The shared cache: Django's database cache, with an atomic `incr`.

Rate limits (django-ratelimit) count requests with `cache.add` then `cache.incr`. Their
counts must hold across gunicorn workers and hosts, so they live in the database every
process shares (the portal runs no Redis or memcached). Django's DatabaseCache increments
by reading then writing, so two workers can both read 7 and both write 8 (the reason
django-ratelimit flags it, django_ratelimit.E003). Here the read and the write are one
transaction holding the row: PostgreSQL locks it (`SELECT … FOR UPDATE`), SQLite takes
the database's write lock when the transaction begins (`transaction_mode` IMMEDIATE in
settings).
"""

from __future__ import annotations

import base64
import pickle
from typing import Any

from django.core.cache.backends.db import DatabaseCache
from django.db import connections, models, router, transaction
from django.utils import timezone


class AtomicDatabaseCache(DatabaseCache):
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
