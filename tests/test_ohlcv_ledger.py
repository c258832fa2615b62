"""OHLCVRepository's ledgers on SQLite and PostgreSQL: the series ledger, the coverage ledger,
deletes, backfills that must not overwrite, and gaps of markets that close."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from factories import T0, bar, bars
from tradestore import ALL_EXCHANGES, DatabaseManager, OHLCVBar, OHLCVRepository, SeriesInfo
from tradestore.errors import NotFoundError, ValidationError
from tradestore.models import OHLCVModel


def m(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


async def test_the_series_ledger_follows_every_write_and_delete(db: DatabaseManager) -> None:
    """Random writes and deletes; after each, ``list_series`` equals a plain-Python model of what is stored."""
    rng = random.Random(13)
    model: dict[tuple[str, str], dict[datetime, Decimal]] = {}
    symbols, exchanges = ("BTCUSDT", "ETHUSDT"), ("binance", "kraken")
    for step in range(40):
        symbol, exchange = rng.choice(symbols), rng.choice(exchanges)
        stored = model.setdefault((exchange, symbol), {})
        kind = rng.choice(("replace", "ignore", "insert", "delete", "delete", "forget"))
        async with db.get_session() as session:
            repo = OHLCVRepository(session)
            if kind in ("replace", "ignore"):
                minutes = [rng.randrange(60) for _ in range(rng.randrange(1, 15))]
                batch = [bar(n, symbol=symbol, exchange=exchange, close=f"100.{step}") for n in minutes]
                written = await repo.upsert_many(batch, on_conflict="replace" if kind == "replace" else "ignore")
                fresh = {m(n) for n in minutes} - set(stored)
                assert written == (len(set(minutes)) if kind == "replace" else len(fresh))
                for n in minutes:
                    if kind == "replace" or m(n) in fresh:
                        stored[m(n)] = Decimal(f"100.{step}")
            elif kind == "insert":
                new = sorted({rng.randrange(60, 90) for _ in range(3)})
                batch = [bar(n, symbol=symbol, exchange=exchange) for n in new if m(n) not in stored]
                assert await repo.insert_many(batch) == len(batch)
                stored.update({b.timestamp: b.close for b in batch})
            elif kind == "delete" and stored:
                lo, hi = sorted((rng.randrange(90), rng.randrange(90)))
                removed = await repo.delete_range(symbol, "1m", m(lo), m(hi) + timedelta(seconds=30), exchange=exchange)
                gone = [t for t in stored if m(lo) <= t <= m(hi)]
                assert removed == len(gone)
                for t in gone:
                    del stored[t]
            elif kind == "forget" and stored:
                assert await repo.delete_series(symbol, "1m", exchange=exchange) == len(stored)
                stored.clear()
            listed = await repo.list_series(ALL_EXCHANGES)
        expected = [
            SeriesInfo(exchange, symbol, "1m", min(held), max(held), len(held))
            for (exchange, symbol), held in sorted(model.items())
            if held
        ]
        assert listed == expected, (step, kind)
        assert all(s.updated_at is not None and s.updated_at.tzinfo is UTC for s in listed)
    async with db.get_session() as session:
        total = await session.scalar(select(func.count()).select_from(OHLCVModel))
        everything = [
            (b.exchange, b.symbol, b.timestamp, b.close)
            for s in await OHLCVRepository(session).list_series(ALL_EXCHANGES)
            for b in await OHLCVRepository(session).get_range(s.symbol, "1m", s.first, s.last, exchange=s.exchange)
        ]
    assert total == sum(len(held) for held in model.values())
    assert sorted(everything) == sorted((e, s, t, c) for (e, s), held in model.items() for t, c in held.items())


async def test_ignore_keeps_stored_bars_and_counts_what_it_wrote(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        assert await repo.upsert_many(bars(3, close="100.5")) == 3
        backfill = [bar(n, close=f"100.{c}") for n, c in ((1, 1), (2, 2), (3, 3), (4, 4), (4, 44))]
        assert await repo.upsert_many(backfill, on_conflict="ignore") == 2  # bars 3 and 4 (the first 4 wins)
        got = await repo.get_range("BTCUSDT", "1m", m(0), m(10))
        assert [(b.timestamp, b.close) for b in got] == [
            (m(0), Decimal("100.5")), (m(1), Decimal("100.5")), (m(2), Decimal("100.5")),
            (m(3), Decimal("100.3")), (m(4), Decimal("100.4")),
        ]  # fmt: skip
        assert (await repo.list_series())[0].count == 5
        with pytest.raises(ValidationError, match="on_conflict"):
            await repo.upsert_many(bars(1), on_conflict="merge")  # type: ignore[arg-type]


async def test_fetched_ranges_plan_a_backfill(db: DatabaseManager) -> None:
    """upsert_many marks what it writes; mark_fetched records what the exchange had nothing for."""
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        window = (m(0), m(99))
        assert await repo.missing_ranges("BTCUSDT", "1m", *window) == [window]  # never written: all of it
        await repo.upsert_many(bars(30, skip=range(10, 20)))  # bars 0-9 and 20-29
        assert await repo.missing_ranges("BTCUSDT", "1m", *window) == [(m(10), m(19)), (m(30), m(99))]
        await repo.mark_fetched("BTCUSDT", "1m", m(12), m(15) + timedelta(seconds=59))  # the exchange had none
        assert await repo.missing_ranges("BTCUSDT", "1m", *window) == [
            (m(10), m(11)), (m(16), m(19)), (m(30), m(99)),
        ]  # fmt: skip
        assert await repo.get_gaps("BTCUSDT", "1m") == [(m(10), m(19))]
        assert await repo.get_gaps("BTCUSDT", "1m", exclude_fetched=True) == [(m(10), m(11)), (m(16), m(19))]
        await repo.mark_fetched("BTCUSDT", "1m", m(10), m(11))
        await repo.mark_fetched("BTCUSDT", "1m", m(16), m(19))  # touching marks merge into one range
        assert await repo.get_gaps("BTCUSDT", "1m", exclude_fetched=True) == []
        assert await repo.missing_ranges("BTCUSDT", "1m", *window) == [(m(30), m(99))]
        assert await repo.missing_ranges("BTCUSDT", "1m", m(5), m(25)) == []
        # Only a series' own marks count; a mark alone makes no series with bars.
        await repo.mark_fetched("ETHUSDT", "1m", m(0), m(5))
        assert await repo.missing_ranges("ETHUSDT", "1m", *window) == [(m(6), m(99))]
        assert [s.symbol for s in await repo.list_series()] == ["BTCUSDT"]
        with pytest.raises(ValidationError, match="start"):
            await repo.mark_fetched("BTCUSDT", "1m", m(5), m(4))


async def test_fetched_ranges_count_calendar_months(db: DatabaseManager) -> None:
    def month(y: int, mo: int) -> datetime:
        return datetime(y, mo, 1, tzinfo=UTC)

    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many([OHLCVBar("BTCUSDT", "binance", "1M", month(2024, n), 1, 1, 1, 1, 1) for n in (1, 2, 5)])
        assert await repo.missing_ranges("BTCUSDT", "1M", month(2024, 1), month(2024, 12)) == [
            (month(2024, 3), month(2024, 4)), (month(2024, 6), month(2024, 12)),
        ]  # fmt: skip


async def test_deletes_keep_the_ledgers_right(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(bars(50) + bars(5, symbol="ETHUSDT"))
        assert await repo.delete_range("BTCUSDT", "1m", m(0), m(9)) == 10
        assert await repo.delete_range("BTCUSDT", "1m", m(40), None) == 10
        assert await repo.delete_range("BTCUSDT", "1m", m(100), m(200)) == 0
        assert await repo.count_bars("BTCUSDT", "1m") == 30
        assert await repo.count_bars("BTCUSDT", "1m", start=m(20), end=m(24)) == 5
        series = {s.symbol: s for s in await repo.list_series()}
        assert (series["BTCUSDT"].first, series["BTCUSDT"].last, series["BTCUSDT"].count) == (m(10), m(39), 30)
        # Deleted bars count as never fetched again: a downloader fetches them anew.
        assert await repo.missing_ranges("BTCUSDT", "1m", m(0), m(49)) == [(m(0), m(9)), (m(40), m(49))]
        assert await repo.delete_series("ETHUSDT", "1m") == 5
        assert [s.symbol for s in await repo.list_series()] == ["BTCUSDT"]
        assert await repo.missing_ranges("ETHUSDT", "1m", m(0), m(4)) == [(m(0), m(4))]
        for call in (
            repo.delete_series("ETHUSDT", "1m"),
            repo.delete_range("NOPE", "1m", None, None),
            repo.get_gaps("NOPE", "1m"),
        ):
            with pytest.raises(NotFoundError, match=r"NOPE|ETHUSDT"):
                await call
        assert await repo.delete_range("BTCUSDT", "1m", None, None) == 30
        assert await repo.list_series() == []
        with pytest.raises(NotFoundError):  # a series whose bars are all gone has no gaps to report
            await repo.get_gaps("BTCUSDT", "1m")
        assert await repo.get_gaps("BTCUSDT", "1m", start=m(0), end=m(2)) == [(m(0), m(2))]


async def test_a_failed_insert_leaves_no_ledger_behind(db: DatabaseManager) -> None:
    from sqlalchemy.exc import IntegrityError

    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        with pytest.raises(IntegrityError):
            await repo.insert_many([bar(0, symbol="NEW"), bar(0, symbol="NEW")])
        assert await repo.list_series() == []
        assert await repo.missing_ranges("NEW", "1m", m(0), m(0)) == [(m(0), m(0))]


async def test_weekday_calendar_leaves_weekends_out_of_gaps(db: DatabaseManager) -> None:
    friday, monday = datetime(2024, 1, 5, tzinfo=UTC), datetime(2024, 1, 8, tzinfo=UTC)
    hourly = [friday + timedelta(hours=h) for h in range(20)] + [monday + timedelta(hours=h) for h in (2, 3)]
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many([OHLCVBar("EURUSD", "fx", "1h", t, 1, 1, 1, 1, 1) for t in hourly])
        every_day = await repo.get_gaps("EURUSD", "1h", "fx")
        weekdays = await repo.get_gaps("EURUSD", "1h", "fx", calendar="weekdays")
        with pytest.raises(ValidationError, match="calendar"):
            await repo.get_gaps("EURUSD", "1h", "fx", calendar="nyse")
    assert every_day == [(friday + timedelta(hours=20), monday + timedelta(hours=1))]
    assert weekdays == [
        (friday + timedelta(hours=20), friday + timedelta(hours=23)),
        (monday, monday + timedelta(hours=1)),
    ]


async def test_the_default_exchange_is_the_managers(db_on_kraken: DatabaseManager) -> None:
    db = db_on_kraken
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(bars(3, exchange="kraken"))
        assert len(await repo.get_latest("BTCUSDT", "1m")) == 3
        assert await repo.count_bars("BTCUSDT", "1m") == 3
        assert await repo.delete_range("BTCUSDT", "1m", m(0), m(0)) == 1


async def test_list_series_reads_the_managers_exchange_or_all_of_them(db_on_kraken: DatabaseManager) -> None:
    db = db_on_kraken
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(bars(3, exchange="kraken") + bars(2, exchange="binance"))
        assert [s.exchange for s in await repo.list_series()] == ["kraken"]
        assert [s.exchange for s in await repo.list_series("binance")] == ["binance"]
        assert [s.exchange for s in await repo.list_series(ALL_EXCHANGES)] == ["binance", "kraken"]
