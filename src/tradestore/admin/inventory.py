"""What a database is and what it holds: reachability, server version, schema, sizes, row counts.

These work on a bare engine, whatever the database's schema revision, so that tools can
report on a database that ``DatabaseManager.connect()`` would refuse.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import TextClause, func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tradestore import schema
from tradestore.engine import build_engine
from tradestore.errors import StorageError
from tradestore.models import Base, SeriesModel
from tradestore.urls import backend_name, is_memory, is_sqlite, mask

VERSION_SQL = {"sqlite": "SELECT sqlite_version()", "postgresql": "SHOW server_version"}


def version_query(url: URL) -> TextClause:
    """The query that asks the server for its version (and proves it answers)."""
    return text(VERSION_SQL[backend_name(url)])


def describe(exc: BaseException, url: URL) -> str:
    """The text of ``exc`` on one line, with the URL's password cut out."""
    message = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    if url.password:
        message = message.replace(str(url.password), "***")
    return message


def sqlite_path(url: URL) -> str | None:
    """The file of a SQLite file URL; ``None`` for PostgreSQL and in-memory SQLite."""
    if not is_sqlite(url) or is_memory(url) or not url.database:
        return None
    return url.database


def file_size(url: URL) -> int | None:
    """Bytes of a SQLite file and its write-ahead log; ``None`` when there is no file."""
    path = sqlite_path(url)
    if path is None:
        return None
    sizes = [os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p)]
    return sum(sizes) if sizes else None


async def open_engine(url: URL, *, must_exist: bool = True) -> AsyncEngine:
    """An engine for ``url`` whose database has answered a first query.

    Args:
        url: an async-driver URL (see :func:`tradestore.urls.resolve`).
        must_exist: refuse a SQLite file that does not exist yet instead of creating it.

    Raises:
        StorageError: the file is missing, or the database does not answer (password masked).
    """
    path = sqlite_path(url)
    if must_exist and path is not None and not os.path.exists(path):
        raise StorageError(f"no database file at {path} (create it with `tradestore db upgrade --url {mask(url)}`)")
    engine = build_engine(url, pool_size=2, max_overflow=2, echo=False)
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(VERSION_SQL[backend_name(url)])
    except Exception as exc:
        await engine.dispose()
        if isinstance(exc, StorageError):  # already translated at the engine boundary, password masked
            raise
        raise StorageError(f"cannot connect to {mask(url)}: {describe(exc, url)}") from None
    return engine


@dataclass(frozen=True)
class Health:
    """The answer to "is it up, which is it, and is its schema the one this code needs"."""

    status: str
    backend: str
    database: str
    server_version: str | None = None
    latency_ms: float | None = None
    schema_revision: str | None = None
    schema_head: str | None = None
    schema_status: str | None = None
    size_bytes: int | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict (``error`` only when there is one)."""
        fields = asdict(self)
        if fields["error"] is None:
            del fields["error"]
        return fields


async def health(url: URL) -> Health:
    """Reach the database and report on it; never raises for a database that does not answer."""
    base: dict[str, Any] = {"backend": backend_name(url), "database": mask(url)}
    try:
        engine = await open_engine(url)
    except StorageError as exc:
        return Health(status="unhealthy", error=str(exc), size_bytes=file_size(url), **base)
    try:
        started = time.perf_counter()
        async with engine.connect() as conn:
            version = await conn.scalar(version_query(url))
            latency = round((time.perf_counter() - started) * 1000, 3)
            state = await conn.run_sync(schema.read_state)
            size = await database_size(conn, url)
    except Exception as exc:
        return Health(status="unhealthy", error=describe(exc, url), size_bytes=file_size(url), **base)
    finally:
        await engine.dispose()
    return Health(
        status="healthy",
        server_version=str(version),
        latency_ms=latency,
        schema_revision=state.revision,
        schema_head=state.head,
        schema_status=state.status,
        size_bytes=size,
        **base,
    )


async def database_size(conn: AsyncConnection, url: URL) -> int | None:
    """Bytes on disk: the SQLite file with its log, or PostgreSQL's ``pg_database_size``."""
    if backend_name(url) == "postgresql":
        return int(await conn.scalar(text("SELECT pg_database_size(current_database())")) or 0)
    return file_size(url)


async def row_counts(conn: AsyncConnection, tables: tuple[str, ...] | None = None) -> dict[str, int]:
    """Rows per tradestore table present (all of :data:`tradestore.schema.TABLES` by default)."""
    counts: dict[str, int] = {}
    for name in tables if tables is not None else schema.TABLES:
        table = Base.metadata.tables[name]
        counts[name] = int(await conn.scalar(select(func.count()).select_from(table)) or 0)
    return counts


async def series_count(conn: AsyncConnection) -> int:
    """How many candle series hold bars (read from the series ledger)."""
    return int(await conn.scalar(select(func.count()).where(SeriesModel.bar_count > 0)) or 0)
