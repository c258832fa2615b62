"""Build the ``AsyncEngine``: a pool suited to each backend and SQLite set up per connection."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from tradestore.dialects import register_sqlite_functions
from tradestore.urls import is_memory, is_sqlite
from tradestore.values import json_dumps

#: How long a SQLite writer waits for another one's lock before failing, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 5_000


class TradestoreSQLiteConnection(sqlite3.Connection):
    """A ``sqlite3`` connection set up the way tradestore needs, whoever opens it.

    Set up in the constructor, so it happens in aiosqlite's worker thread, on every new
    connection: WAL for file databases, ``synchronous=NORMAL``, foreign keys, a busy timeout,
    a larger page cache, the exact-decimal collation and functions, and no implicit BEGIN
    (tradestore emits ``BEGIN IMMEDIATE`` itself, see :func:`build_engine`).
    """

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self.isolation_level = None
        memory = str(database) in ("", ":memory:") or "mode=memory" in str(database)
        if not memory:
            self.execute("PRAGMA journal_mode=WAL")
        self.execute("PRAGMA synchronous=NORMAL")
        self.execute("PRAGMA foreign_keys=ON")
        self.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        self.execute("PRAGMA cache_size=-65536")  # 64 MiB
        register_sqlite_functions(self)


def prepare_sqlite_file(url: URL) -> None:
    """Create the folder of a SQLite file, and the file itself readable by its owner only."""
    if is_memory(url) or not url.database:
        return
    path = Path(url.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(path, 0o600)  # whatever the umask


def build_engine(url: URL, *, pool_size: int, max_overflow: int, echo: bool) -> AsyncEngine:
    """An engine for ``url`` (an async-driver URL from :func:`tradestore.urls.resolve`).

    SQLite: every transaction starts with ``BEGIN IMMEDIATE``, taking the write lock up front
    so that a read-then-write unit of work never fails half-way with "database is locked";
    an in-memory database is one connection shared by the manager (``StaticPool``).
    PostgreSQL: a ``pool_size`` + ``max_overflow`` pool with pre-ping, sessions in UTC.
    """
    common: dict[str, Any] = {"echo": echo, "json_serializer": json_dumps}
    if is_sqlite(url):
        prepare_sqlite_file(url)
        connect_args = {"factory": TradestoreSQLiteConnection, "check_same_thread": False}
        if is_memory(url):
            engine = create_async_engine(url, poolclass=StaticPool, connect_args=connect_args, **common)
        else:
            engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=max_overflow, connect_args=connect_args, **common
            )
        event.listen(engine.sync_engine, "begin", _begin_immediate)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        connect_args={"server_settings": {"timezone": "UTC", "application_name": "tradestore"}},
        **common,
    )


def _begin_immediate(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
