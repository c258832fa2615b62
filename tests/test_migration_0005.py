"""Revision 0005 (candles v2) converts a database holding bars, in batches, and back down, on both backends."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.config import Config

from tradestore import ALL_EXCHANGES, DatabaseManager, OHLCVRepository, SeriesInfo, schema
from tradestore.engine import build_engine
from tradestore.types import ExactDecimal, UTCDateTime
from tradestore.urls import resolve

T0 = datetime(2024, 1, 1, tzinfo=UTC)
#: The candle table as revision 0001 made it.
OLD = sa.Table(
    "ohlcv",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    *(sa.Column(n, sa.String) for n in ("exchange", "symbol", "timeframe")),
    sa.Column("timestamp", UTCDateTime()),
    *(sa.Column(n, ExactDecimal()) for n in ("open", "high", "low", "close", "volume", "quote_volume")),
    sa.Column("trades_count", sa.BigInteger),
    sa.Column("created_at", UTCDateTime()),
)


def previous_revision() -> str:
    revision = schema.scripts().get_revision("0005")
    assert revision is not None and isinstance(revision.down_revision, str)
    return revision.down_revision


def old_rows(rng: random.Random) -> list[dict[str, Any]]:
    """Three series: 1m bars with holes, 1M calendar months with a hole, another exchange."""
    made = datetime(2024, 6, 1, 12, 30, tzinfo=UTC)
    series = [
        ("binance", "BTCUSDT", "1m", [T0 + timedelta(minutes=m) for m in range(130) if not 40 <= m < 45 and m != 100]),
        ("binance", "BTCUSDT", "1M", [datetime(2023, m, 1, tzinfo=UTC) for m in (1, 2, 3, 6, 7)]),
        ("kraken", "ETH/EUR", "1m", [T0 + timedelta(minutes=m) for m in range(7)]),
    ]
    rows = []
    for exchange, symbol, timeframe, starts in series:
        for i, start in enumerate(starts):
            low = Decimal(rng.randint(1, 10**12)) / Decimal(10 ** rng.randint(0, 10))
            high = low + Decimal(rng.randint(0, 10**6)) / 1000
            rows.append(
                {
                    "exchange": exchange, "symbol": symbol, "timeframe": timeframe, "timestamp": start,
                    "open": low, "high": high, "low": low, "close": high, "volume": Decimal("0.00000001") * i,
                    "quote_volume": None if i % 3 else Decimal("1E+5"), "trades_count": None if i % 4 else i,
                    "created_at": made + timedelta(seconds=i),
                }
            )  # fmt: skip
    rng.shuffle(rows)  # ids in another order than the bars
    return rows


def content(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    keys = ("exchange", "symbol", "timeframe", "timestamp", "open", "high", "low", "close", "volume")
    return sorted(tuple(r[k] for k in (*keys, "quote_volume", "trades_count")) for r in rows)


async def test_0005_converts_stored_bars_in_batches_and_back(fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    original = schema.alembic_config

    def small_batches(*args: Any, **kwargs: Any) -> Config:
        config = original(*args, **kwargs)
        config.attributes["tradestore.batch_rows"] = 7
        return config

    monkeypatch.setattr(schema, "alembic_config", small_batches)
    rows = old_rows(random.Random(5))
    engine = build_engine(resolve(fresh_url), pool_size=1, max_overflow=0, echo=False)
    try:
        await schema.upgrade(engine, previous_revision())
        async with engine.begin() as conn:
            await conn.execute(sa.insert(OLD), rows)
        seen: list[tuple[int, int]] = []
        assert await schema.upgrade(engine, "0005", progress=lambda d, t: seen.append((d, t))) == (
            previous_revision(),
            "0005",
        )
        assert seen[0] == (0, len(rows)) and seen[-1] == (len(rows), len(rows)) and len(seen) > 10
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)

        async with DatabaseManager(fresh_url) as db, db.get_session() as session:
            repo = OHLCVRepository(session)
            stored = []
            for info in await repo.list_series(ALL_EXCHANGES):
                bars = await repo.get_range(info.symbol, info.timeframe, info.first, info.last, exchange=info.exchange)
                stored += [vars(b) for b in bars]
                assert info.count == len(bars) and info.updated_at is not None
            series = await repo.list_series(ALL_EXCHANGES)
            minute_gaps = await repo.get_gaps("BTCUSDT", "1m")
            month_gaps = await repo.get_gaps("BTCUSDT", "1M")
            never_fetched = await repo.missing_ranges("BTCUSDT", "1m", T0, T0 + timedelta(minutes=139))
        assert content(stored) == content(rows)

        def m(n: int) -> datetime:
            return T0 + timedelta(minutes=n)

        assert series == [
            SeriesInfo(
                "binance", "BTCUSDT", "1M", datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 7, 1, tzinfo=UTC), 5
            ),
            SeriesInfo("binance", "BTCUSDT", "1m", m(0), m(129), 124),
            SeriesInfo("kraken", "ETH/EUR", "1m", m(0), m(6), 7),
        ]
        assert minute_gaps == [(m(40), m(44)), (m(100), m(100))]
        assert month_gaps == [(datetime(2023, 4, 1, tzinfo=UTC), datetime(2023, 5, 1, tzinfo=UTC))]
        # The bars stored before the upgrade count as fetched: the holes and the window's tail do not.
        assert never_fetched == [(m(40), m(44)), (m(100), m(100)), (m(130), m(139))]

        seen.clear()
        await schema.downgrade(engine, previous_revision(), progress=lambda d, t: seen.append((d, t)))
        assert seen[-1] == (len(rows), len(rows))
        async with engine.connect() as conn:
            back = [dict(r._mapping) for r in (await conn.execute(sa.select(OLD))).all()]
        assert content(back) == content(rows)
        # created_at becomes the series' last write (the latest created_at of its bars before the upgrade)
        latest: dict[tuple[str, str, str], datetime] = {}
        for r in rows:
            key = (r["exchange"], r["symbol"], r["timeframe"])
            latest[key] = max(latest.get(key, r["created_at"]), r["created_at"])
        assert all(r["created_at"] == latest[(r["exchange"], r["symbol"], r["timeframe"])] for r in back)
    finally:
        await engine.dispose()
