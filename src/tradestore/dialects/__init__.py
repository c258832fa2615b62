"""The one place where SQL differs between SQLite and PostgreSQL.

* :mod:`.functions`: SQL constructs (``dec_sum``, ``dec_sub``, ``epoch_seconds`` …) that compile
  to native SQL on PostgreSQL and to tradestore's exact-decimal functions on SQLite, so a
  repository builds one statement for both backends;
* :mod:`.sqlite_functions`: those exact-decimal functions, registered on every SQLite connection;
* :mod:`.base`: the :class:`Backend` seam for the bulk paths (how values are encoded for the
  driver, how rows are written and read, the few queries whose fastest form differs);
* :mod:`.sqlite` and :mod:`.postgres`: one :class:`Backend` each.

Repositories ask :func:`backend` for the right one and never test the dialect's name.
"""

from __future__ import annotations

from sqlalchemy.engine import Dialect

from tradestore.dialects.base import Backend, Compiled, EquitySummary, NetGroup, Row
from tradestore.dialects.functions import (
    dec_max,
    dec_min,
    dec_sign,
    dec_sub,
    dec_sum,
    epoch_floor,
    epoch_seconds,
    month_index,
    period_index,
)
from tradestore.dialects.postgres import PostgresBackend
from tradestore.dialects.sqlite import SQLiteBackend
from tradestore.dialects.sqlite_functions import register_sqlite_functions

__all__ = [
    "Backend",
    "Compiled",
    "EquitySummary",
    "NetGroup",
    "PostgresBackend",
    "Row",
    "SQLiteBackend",
    "backend",
    "dec_max",
    "dec_min",
    "dec_sign",
    "dec_sub",
    "dec_sum",
    "epoch_floor",
    "epoch_seconds",
    "month_index",
    "period_index",
    "register_sqlite_functions",
]

_BACKENDS: dict[str, type[Backend]] = {"sqlite": SQLiteBackend, "postgresql": PostgresBackend}
_CACHE: dict[int, Backend] = {}


def backend(dialect: Dialect) -> Backend:
    """The :class:`Backend` for ``dialect`` (one instance per dialect object)."""
    found = _CACHE.get(id(dialect))
    if found is None or found.dialect is not dialect:
        found = _CACHE[id(dialect)] = _BACKENDS[dialect.name](dialect)
    return found
