"""``tradestore.admin.maintenance`` through its Python API, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from factories import T0, bars
from tradestore import DatabaseManager, OHLCVRepository
from tradestore.admin.maintenance import optimize, prune_bars, prune_events
from tradestore.errors import ValidationError
from tradestore.models import OHLCVModel, SystemEventModel


async def counts(db: DatabaseManager) -> tuple[int, int]:
    async with db.get_session() as session:
        events = await session.scalar(select(func.count()).select_from(SystemEventModel))
        candles = await session.scalar(select(func.count()).select_from(OHLCVModel))
    return int(events or 0), int(candles or 0)


async def test_prune_counts_on_a_dry_run_then_removes(db: DatabaseManager) -> None:
    now = datetime.now(UTC)
    async with db.get_session() as session:
        for age in (40, 40, 5):
            await session.execute(
                insert(SystemEventModel).values(
                    event_type="x", severity="info", message="m", created_at=now - timedelta(days=age)
                )
            )
        await OHLCVRepository(session).upsert_many(bars(10))  # 1m bars from T0
    cutoff = T0 + timedelta(minutes=4)
    async with db.get_session() as session:
        dry = [await prune_events(session, now - timedelta(days=30), dry_run=True),
               await prune_bars(session, "1m", cutoff, dry_run=True)]  # fmt: skip
    assert [(p.table, p.rows, p.removed) for p in dry] == [("system_events", 2, False), ("ohlcv", 4, False)]
    assert await counts(db) == (3, 10)
    async with db.get_session() as session:
        done = await prune_bars(session, "1m", cutoff)
        assert (done.rows, done.removed, done.cutoff) == (4, True, cutoff)
        assert (await prune_bars(session, "1h", cutoff)).rows == 0  # other timeframes are kept
    assert await counts(db) == (3, 6)
    async with db.get_session() as session:
        with pytest.raises(ValidationError, match="timeframe"):
            await prune_bars(session, "7m", cutoff)


async def test_optimize_runs_the_backends_statements(db: DatabaseManager, backend: str) -> None:
    async with db.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(5))
    ran = await optimize(db.engine)
    assert ran == (["VACUUM", "ANALYZE", "PRAGMA optimize", "PRAGMA wal_checkpoint(TRUNCATE)"] if backend == "sqlite"
                   else ["ANALYZE"])  # fmt: skip
    assert await counts(db) == (0, 5)
