"""What a database is and what it holds: reachability, server version, schema, sizes, row counts.

:func:`stats` is the library call behind ``tradestore stats``: rows per table (split by mode
where a table has one), open and closed trades, open orders, pending proposals, bots by
status, the database's size and, on SQLite, the free pages ``optimize`` would reclaim.

These work on a bare engine, whatever the database's schema revision, so that tools can
report on a database that ``DatabaseManager.connect()`` would refuse.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, TextClause, func, inspect, or_, select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tradestore import schema
from tradestore.domain import MODES
from tradestore.engine import build_engine
from tradestore.errors import StorageError
from tradestore.models import Base, OHLCVModel
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
    """How many distinct (exchange, symbol, timeframe) candle series are stored."""
    c = OHLCVModel.__table__.c
    keys = select(c.exchange, c.symbol, c.timeframe).distinct().subquery()
    return int(await conn.scalar(select(func.count()).select_from(keys)) or 0)


@dataclass(frozen=True)
class FreeSpace:
    """SQLite's free pages: space inside the file that ``tradestore optimize`` (VACUUM) gives back."""

    pages: int
    page_size: int

    @property
    def bytes(self) -> int:
        """``pages * page_size``."""
        return self.pages * self.page_size


async def free_space(conn: AsyncConnection, url: URL) -> FreeSpace | None:
    """SQLite's free pages; ``None`` on PostgreSQL, where autovacuum manages space instead."""
    if backend_name(url) != "sqlite":
        return None
    pages = int(await conn.scalar(text("PRAGMA freelist_count")) or 0)
    size = int(await conn.scalar(text("PRAGMA page_size")) or 0)
    return FreeSpace(pages, size)


def _columns(connection: Connection, tables: tuple[str, ...]) -> dict[str, set[str]]:
    reflected = inspect(connection)
    return {name: {c["name"] for c in reflected.get_columns(name)} for name in tables}


async def rows_by_mode(conn: AsyncConnection, columns: dict[str, set[str]]) -> dict[str, dict[str, int]]:
    """Per table with a ``mode`` column, rows per mode (only the modes present)."""
    found: dict[str, dict[str, int]] = {}
    for name, names in sorted(columns.items()):
        if "mode" not in names:
            continue
        table = Base.metadata.tables[name]
        rows = await conn.execute(select(table.c.mode, func.count()).group_by(table.c.mode))
        found[name] = {str(mode): int(n) for mode, n in sorted(rows.all(), key=lambda r: mode_order(r[0]))}
    return found


def mode_order(mode: str) -> tuple[int, str]:
    """Sort key for modes: tradestore's order (live, paper, …), then unknown ones by name."""
    return (MODES.index(mode) if mode in MODES else len(MODES), mode)


async def _count(conn: AsyncConnection, table: str, *where: Any) -> int:
    t = Base.metadata.tables[table]
    return int(await conn.scalar(select(func.count()).select_from(t).where(*where)) or 0)


async def _grouped(conn: AsyncConnection, table: str, column: str) -> dict[str, int]:
    t = Base.metadata.tables[table]
    rows = await conn.execute(select(t.c[column], func.count()).group_by(t.c[column]).order_by(t.c[column]))
    return {str(value): int(n) for value, n in rows.all()}


@dataclass(frozen=True)
class Stats:
    """What ``tradestore stats`` shows; a figure is ``None`` where the database has no table for it."""

    database: str
    backend: str
    server_version: str
    schema_revision: str | None
    schema_head: str | None
    schema_status: str | None
    size_bytes: int | None
    series: int
    rows: dict[str, int] = field(default_factory=dict)
    rows_by_mode: dict[str, dict[str, int]] = field(default_factory=dict)
    open_trades: int | None = None
    closed_trades: int | None = None
    open_orders: int | None = None
    pending_proposals: int | None = None
    bots_by_status: dict[str, int] | None = None
    free_pages: int | None = None
    free_bytes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict."""
        return asdict(self)


async def stats(url: URL) -> Stats:
    """Count what the database at ``url`` holds, whatever its schema revision.

    Trades are open without an exit time and closed with one; pending proposals are those
    still awaiting review (status pending, ``expires_at`` not passed).

    Raises:
        StorageError: the database cannot be reached (password masked).
    """
    engine = await open_engine(url)
    try:
        async with engine.connect() as conn:
            version = await conn.scalar(version_query(url))
            state = await conn.run_sync(schema.read_state)
            columns = await conn.run_sync(_columns, state.tables)
            present = set(state.tables)
            figures: dict[str, Any] = {}
            if "trades" in present:
                exit_time = Base.metadata.tables["trades"].c.exit_time
                figures["open_trades"] = await _count(conn, "trades", exit_time.is_(None))
                figures["closed_trades"] = await _count(conn, "trades", exit_time.is_not(None))
            if "proposals" in present:
                p = Base.metadata.tables["proposals"].c
                waiting = [p.status == "pending", or_(p.expires_at.is_(None), p.expires_at > datetime.now(UTC))]
                figures["pending_proposals"] = await _count(conn, "proposals", *waiting)
            free = await free_space(conn, url)
            return Stats(
                database=mask(url),
                backend=backend_name(url),
                server_version=str(version),
                schema_revision=state.revision,
                schema_head=state.head,
                schema_status=state.status,
                size_bytes=await database_size(conn, url),
                series=await series_count(conn) if "ohlcv" in present else 0,
                rows=await row_counts(conn, state.tables),
                rows_by_mode=await rows_by_mode(conn, columns),
                free_pages=None if free is None else free.pages,
                free_bytes=None if free is None else free.bytes,
                **figures,
            )
    finally:
        await engine.dispose()
