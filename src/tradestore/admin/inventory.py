"""What a database is and what it holds: server version, schema, size, rows per table, series.

:func:`inventory` is the library call behind ``tradestore stats``: besides the above, rows per
table split by mode (where a table has one), open and closed trades, open orders, pending
proposals, bots by status and, on SQLite, the free pages ``tradestore optimize`` would reclaim.

These work on a bare engine, whatever the database's schema revision, so that tools can
report on a database that ``DatabaseManager.connect()`` would refuse. Reachability and the
health report are :mod:`tradestore.health`'s, shared with the manager.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, inspect, or_, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from tradestore import schema
from tradestore.dialects.operations import operations
from tradestore.domain import BOT_STATUSES, MODES, OPEN_ORDER_STATUSES
from tradestore.health import open_engine
from tradestore.models import Base, SeriesModel
from tradestore.urls import backend_name, mask


@dataclass(frozen=True)
class Inventory:
    """What :func:`inventory` found.

    Attributes:
        database: the URL, password masked.
        backend: ``'sqlite'`` or ``'postgresql'``.
        server_version: SQLite's library version or PostgreSQL's ``server_version``.
        schema_revision, schema_head, schema_status: as in :class:`tradestore.schema.SchemaState`.
        size_bytes: bytes on disk (``None`` when unknown).
        series: distinct (exchange, symbol, timeframe) candle series stored.
        rows: rows per tradestore table present (no entry for a table that is absent).
        rows_by_mode: per table with a ``mode`` column, rows per mode present.
        open_trades, closed_trades: trades of status open and closed (before revision 0002: without
            and with an exit time); cancelled trades are neither.
        open_orders: orders in one of ``OPEN_ORDER_STATUSES``.
        pending_proposals: proposals awaiting review (pending, ``expires_at`` not passed).
        bots_by_status: registered bots per status.
        free_pages, free_bytes: SQLite's free pages, the space ``optimize`` (VACUUM) gives back.
        A figure is ``None`` where the database has no table for it (or, for free pages, on PostgreSQL).
    """

    database: str
    backend: str
    server_version: str
    schema_revision: str | None
    schema_head: str
    schema_status: str
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


async def inventory(url: URL) -> Inventory:
    """Describe the database at ``url``: version, schema state, size, rows per table, candle series.

    Raises:
        StorageError: a missing SQLite file, or a database that does not answer (password masked).
    """
    ops = operations(url)
    engine = await open_engine(url, must_exist=True)
    try:
        async with engine.connect() as conn:
            version = (await conn.exec_driver_sql(ops.version_sql)).scalar()
            state = await conn.run_sync(schema.read_state)
            counts = await row_counts(conn, state.tables)
            series = await series_count(conn) if SeriesModel.__tablename__ in state.tables else 0
            size = await ops.size(conn)
            columns = await conn.run_sync(_columns, state.tables)
            by_mode = await rows_by_mode(conn, columns)
            figures = await _activity(conn, set(state.tables), columns)
            free = await ops.free_pages(conn)
    finally:
        await engine.dispose()
    return Inventory(
        database=mask(url),
        backend=backend_name(url),
        server_version=str(version),
        schema_revision=state.revision,
        schema_head=state.head,
        schema_status=state.status,
        size_bytes=size,
        series=series,
        rows=counts,
        rows_by_mode=by_mode,
        free_pages=None if free is None else free[0],
        free_bytes=None if free is None else free[0] * free[1],
        **figures,
    )


async def _activity(conn: AsyncConnection, present: set[str], columns: dict[str, set[str]]) -> dict[str, Any]:
    """Open and closed trades, open orders, pending proposals, bots: the figures whose tables are present."""
    figures: dict[str, Any] = {}
    if "trades" in present:
        t = Base.metadata.tables["trades"].c
        if "status" in columns["trades"]:  # revision 0002 on: the trade's own status
            figures["open_trades"] = await _count(conn, "trades", t.status == "open")
            figures["closed_trades"] = await _count(conn, "trades", t.status == "closed")
        else:  # an older database: a trade is closed once it has an exit time
            figures["open_trades"] = await _count(conn, "trades", t.exit_time.is_(None))
            figures["closed_trades"] = await _count(conn, "trades", t.exit_time.is_not(None))
    if "orders" in present:
        status = Base.metadata.tables["orders"].c.status
        figures["open_orders"] = await _count(conn, "orders", status.in_(OPEN_ORDER_STATUSES))
    if "proposals" in present:
        p = Base.metadata.tables["proposals"].c
        waiting = [p.status == "pending", or_(p.expires_at.is_(None), p.expires_at > datetime.now(UTC))]
        figures["pending_proposals"] = await _count(conn, "proposals", *waiting)
    if "bots" in present:
        figures["bots_by_status"] = await bots_by_status(conn)
    return figures


async def bots_by_status(conn: AsyncConnection) -> dict[str, int]:
    """Registered bots per status present, in the order of ``BOT_STATUSES`` (unknown ones after, by name).

    A status no bot has is left out, so no bots at all is ``{}`` (the table is there, empty).
    """
    status = Base.metadata.tables["bots"].c.status
    rows = (await conn.execute(select(status, func.count()).group_by(status))).all()
    return {str(name): int(n) for name, n in sorted(rows, key=lambda r: status_order(r[0]))}


def status_order(status: str) -> tuple[int, str]:
    """Sort key for bot statuses: tradestore's order (starting, running, stopped, error), then by name."""
    return (BOT_STATUSES.index(status) if status in BOT_STATUSES else len(BOT_STATUSES), status)


def _columns(connection: Connection, tables: tuple[str, ...]) -> dict[str, set[str]]:
    reflected = inspect(connection)
    return {name: {c["name"] for c in reflected.get_columns(name)} for name in tables}


async def rows_by_mode(conn: AsyncConnection, columns: dict[str, set[str]]) -> dict[str, dict[str, int]]:
    """Per table with a ``mode`` column (``columns``: each table's column names), rows per mode present."""
    found: dict[str, dict[str, int]] = {}
    for name, names in sorted(columns.items()):
        if "mode" not in names:
            continue
        table = Base.metadata.tables[name]
        rows = (await conn.execute(select(table.c.mode, func.count()).group_by(table.c.mode))).all()
        found[name] = {str(mode): int(n) for mode, n in sorted(rows, key=lambda r: mode_order(r[0]))}
    return found


def mode_order(mode: str) -> tuple[int, str]:
    """Sort key for modes: tradestore's order (live, paper, …), then unknown ones by name."""
    return (MODES.index(mode) if mode in MODES else len(MODES), mode)


async def _count(conn: AsyncConnection, table: str, *where: Any) -> int:
    t = Base.metadata.tables[table]
    return int(await conn.scalar(select(func.count()).select_from(t).where(*where)) or 0)


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
