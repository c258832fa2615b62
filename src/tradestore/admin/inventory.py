"""What a database is and what it holds: server version, schema, size, rows per table, series.

These work on a bare engine, whatever the database's schema revision, so that tools can
report on a database that ``DatabaseManager.connect()`` would refuse. Reachability and the
health report are :mod:`tradestore.health`'s, shared with the manager.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from tradestore import schema
from tradestore.dialects.operations import operations
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
    )


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
