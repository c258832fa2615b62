"""Upkeep: retention (prune old events and old candles) and ``optimize`` (VACUUM/ANALYZE)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Delete, Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tradestore import timeframes
from tradestore.dialects.operations import operations
from tradestore.models import SystemEventModel
from tradestore.repositories import OHLCVRepository
from tradestore.values import to_utc


@dataclass(frozen=True)
class Pruned:
    """Rows one retention rule removed (or, on a dry run, would remove)."""

    table: str
    rule: str
    cutoff: datetime
    rows: int
    removed: bool


async def _apply(session: AsyncSession, count: Select[Any], remove: Delete, *, dry_run: bool) -> int:
    rows = int(await session.scalar(count) or 0)
    if rows and not dry_run:
        await session.execute(remove)
    return rows


async def prune_events(session: AsyncSession, older_than: datetime, *, dry_run: bool = False) -> Pruned:
    """Remove system events created before ``older_than`` (nothing on a dry run)."""
    cutoff = to_utc("older_than", older_than)
    e = SystemEventModel
    rows = await _apply(
        session,
        select(func.count()).select_from(e).where(e.created_at < cutoff),
        delete(e).where(e.created_at < cutoff),
        dry_run=dry_run,
    )
    return Pruned("system_events", "created before", cutoff, rows, removed=not dry_run)


async def prune_bars(session: AsyncSession, timeframe: str, older_than: datetime, *, dry_run: bool = False) -> Pruned:
    """Remove ``timeframe`` candles that start before ``older_than`` (nothing on a dry run).

    Series by series through :meth:`OHLCVRepository.delete_range`, which keeps the series
    ledger right and forgets the removed bars' fetched ranges.
    """
    cutoff = to_utc("older_than", older_than)
    timeframes.check(timeframe)
    repo = OHLCVRepository(session)
    last = cutoff - timedelta(microseconds=1)
    rows = 0
    for series in await repo.list_series():
        if series.timeframe != timeframe or series.first > last:
            continue
        if dry_run:
            rows += await repo.count_bars(series.symbol, timeframe, series.exchange, end=last)
        else:
            rows += await repo.delete_range(series.symbol, timeframe, None, last, exchange=series.exchange)
    return Pruned("ohlcv", f"{timeframe} bars starting before", cutoff, rows, removed=not dry_run)


async def optimize(engine: AsyncEngine) -> list[str]:
    """Reclaim space and refresh the planner's statistics; returns the statements run.

    SQLite: ``VACUUM`` (rewrites the file without free pages), ``ANALYZE``, ``PRAGMA optimize``
    and a checkpoint that empties the write-ahead log. PostgreSQL: ``ANALYZE`` (autovacuum
    reclaims space there).
    """
    async with engine.connect() as conn:
        return await operations(engine.url).optimize(conn)
