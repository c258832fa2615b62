"""Helpers shared by the reliability tests: open a database, count rows, look at the server."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
from sqlalchemy import func, select, text

from factories import T0
from tradestore import DatabaseManager, OHLCVBar
from tradestore.models import OHLCVModel, SeriesModel


async def open_db(url: Any, **options: Any) -> DatabaseManager:
    """A connected manager on an empty database of its own, with the schema created."""
    db = DatabaseManager(url, **options)
    await db.connect()
    await db.create_all()
    return db


async def bar_counts(db: DatabaseManager) -> dict[str, int]:
    """Stored bars per symbol."""
    async with db.get_session() as session:
        rows = await session.execute(
            select(SeriesModel.symbol, func.count())
            .join(OHLCVModel, OHLCVModel.series_id == SeriesModel.id)
            .group_by(SeriesModel.symbol)
            .order_by(SeriesModel.symbol)
        )
        return {symbol: int(n) for symbol, n in rows.all()}


async def sqlite_integrity(db: DatabaseManager) -> str:
    async with db.get_session() as session:
        return str((await session.execute(text("PRAGMA integrity_check"))).scalar())


def driver_dsn(db: DatabaseManager) -> str:
    """The manager's PostgreSQL URL for asyncpg itself."""
    return db.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def pg_admin(db: DatabaseManager, sql: str, *args: Any) -> Any:
    """Run one query on a connection of its own (outside the manager's pool); its first value."""
    conn = await asyncpg.connect(driver_dsn(db), timeout=10)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def pg_terminate_pool(db: DatabaseManager) -> int:
    """``pg_terminate_backend`` every connection the manager's pool holds on its database."""
    return int(
        await pg_admin(
            db,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'tradestore' AND pid <> pg_backend_pid()",
        )
    )


async def pg_idle_in_transaction(db: DatabaseManager, *, settle: float = 3.0) -> int:
    """Sessions on the manager's database left "idle in transaction".

    A connection the client has just closed can show its last state for a few milliseconds
    until the server reads the end of the stream, so this waits up to ``settle`` seconds for
    the count to reach 0: what remains is left behind.
    """
    sql = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
    )
    deadline = asyncio.get_running_loop().time() + settle
    while True:
        left = int(await pg_admin(db, sql))
        if left == 0 or asyncio.get_running_loop().time() > deadline:
            return left
        await asyncio.sleep(0.05)


def task_bar(task: int, slot: int, *, symbol: str = "BTCUSDT") -> OHLCVBar:
    """Bar ``slot`` (a minute after 2024-01-01) as task ``task`` writes it: every field tells the task."""
    return OHLCVBar(
        symbol,
        "binance",
        "1m",
        T0 + timedelta(minutes=slot),
        open=f"{task}.25",
        high=f"{task + 1000}",
        low=f"{task}",
        close=f"{task}.5",
        volume=f"{task}.75",
        quote_volume=f"{task}.125",
        trades_count=task,
    )


def writer_of(bar: OHLCVBar) -> int:
    """The task that wrote ``bar`` if all its fields agree on one, else -1 (a mixed row)."""
    task = bar.trades_count
    if task is None:
        return -1
    return task if _fields(bar) == _fields(task_bar(task, 0)) else -1


def _fields(bar: OHLCVBar) -> tuple[Any, ...]:
    return (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.quote_volume, bar.trades_count)


def small_chunks(monkeypatch: Any, rows: int) -> None:
    """Make every backend write (and read) ``rows`` rows per round trip, so small batches span chunks."""
    from tradestore.dialects import Backend

    for cls in (Backend, *Backend.__subclasses__()):
        monkeypatch.setattr(cls, "chunk_rows", rows)
