"""OHLCVRepository on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.dialects.sqlite import aiosqlite
from sqlalchemy.exc import IntegrityError

from factories import T0, bar, bars
from tradestore import ALL_EXCHANGES, DatabaseManager, OHLCVBar, OHLCVRepository, SeriesInfo
from tradestore.dialects import Backend, PostgresBackend, SQLiteBackend, sqlite_functions
from tradestore.errors import DuplicateError, NotFoundError, ValidationError
from tradestore.models import OHLCVModel


async def count_rows(db: DatabaseManager) -> int:
    async with db.get_session() as session:
        return int(await session.scalar(select(func.count()).select_from(OHLCVModel)) or 0)


async def test_upsert_then_read_back_exactly(db: DatabaseManager) -> None:
    exact = [
        bar(
            0,
            open="0.00000001",
            high="123456789012.12345678",
            low="0.00000001",
            close="0.5",
            volume="123456789012.12345678",
            quote_volume="0.00000001",
            trades_count=7,
        ),
        bar(1, open="-0.5", high="0", low="-1", close="-0.25", volume="0"),
    ]
    async with db.get_session() as session:
        assert await OHLCVRepository(session).upsert_many(exact) == 2
    async with db.get_session() as session:
        got = await OHLCVRepository(session).get_range("BTCUSDT", "1m", T0, T0 + timedelta(minutes=1))
    assert [(b.timestamp, b.open, b.high, b.low, b.close, b.volume, b.quote_volume, b.trades_count) for b in got] == [
        (b.timestamp, b.open, b.high, b.low, b.close, b.volume, b.quote_volume, b.trades_count) for b in exact
    ]
    assert got[0].high == Decimal("123456789012.12345678") and got[0].open == Decimal("0.00000001")
    assert all(b.timestamp.tzinfo is UTC for b in got)
    # Bars have no row id and no per-row creation time any more (see the README's "What a bar stores").
    assert all(b.id is None and b.created_at is None for b in got)


async def test_upsert_overwrites_and_last_duplicate_wins(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(bars(3))
        written = await repo.upsert_many([bar(1, close="100.9"), bar(2, close="100.1"), bar(1, close="100.7")])
        assert written == 2
        got = await repo.get_range("BTCUSDT", "1m", T0, T0 + timedelta(minutes=5))
    assert [b.close for b in got] == [Decimal("100.5"), Decimal("100.7"), Decimal("100.1")]
    assert await count_rows(db) == 3


async def test_insert_many_is_atomic_and_raises_integrity_error(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        assert await OHLCVRepository(session).insert_many(iter(bars(2))) == 2
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        with pytest.raises(IntegrityError):
            await repo.insert_many([bar(5), bar(6), bar(1)])  # bar(1) is already stored
        assert await repo.insert_many([]) == 0
        # The session is still usable and nothing of the failed call was kept.
        assert len(await repo.get_latest("BTCUSDT", "1m", limit=10)) == 2
    assert await count_rows(db) == 2


async def test_insert_many_rejects_a_key_repeated_in_one_call(db: DatabaseManager) -> None:
    with pytest.raises(IntegrityError):
        async with db.get_session() as session:
            await OHLCVRepository(session).insert_many([bar(0), bar(1), bar(0)])
    assert await count_rows(db) == 0


async def test_large_batches_are_chunked_inside_one_transaction(
    db: DatabaseManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Backend, "chunk_rows", 7)
    for cls in Backend.__subclasses__():
        monkeypatch.setattr(cls, "chunk_rows", 7)
    async with db.get_session() as session:
        assert await OHLCVRepository(session).upsert_many(bars(100)) == 100
    assert await count_rows(db) == 100
    with pytest.raises(IntegrityError):
        async with db.get_session() as session:
            await OHLCVRepository(session).insert_many([*bars(200)[100:], bar(3)])  # last chunk fails
    assert await count_rows(db) == 100


async def test_copy_path_keeps_every_write_promise(db: DatabaseManager, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL writes large batches with COPY; forced here for a handful of rows (no-op on SQLite)."""
    monkeypatch.setattr(PostgresBackend, "copy_min_rows", 1)
    copied: list[bool] = []
    original = PostgresBackend._copied

    async def spy(self: PostgresBackend, *args: Any) -> int | None:
        result = await original(self, *args)  # the rows COPY inserted, or None when it gave way
        copied.append(result is not None)
        return result

    monkeypatch.setattr(PostgresBackend, "_copied", spy)
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        assert await repo.upsert_many(bars(5)) == 5  # no key stored yet: straight into the table
        # Keys already stored: through a temporary table and ON CONFLICT; the last duplicate wins.
        assert await repo.upsert_many([bar(3, close="100.9"), bar(7), bar(3, close="100.7")]) == 2
        got = await repo.get_range("BTCUSDT", "1m", T0, T0 + timedelta(hours=1))
        assert [(b.timestamp.minute, b.close) for b in got] == [
            (0, Decimal("100.5")), (1, Decimal("100.5")), (2, Decimal("100.5")), (3, Decimal("100.7")),
            (4, Decimal("100.5")), (7, Decimal("100.5")),
        ]  # fmt: skip
        with pytest.raises(IntegrityError):
            await repo.insert_many([bar(8), bar(3)])  # bar(3) is stored
        with pytest.raises(IntegrityError):
            await repo.insert_many([bar(9), bar(10), bar(9)])  # bar(9) twice
        assert await repo.insert_many(bars(12)[8:]) == 4
        assert [s.count for s in await repo.list_series()] == [10]  # the ledger counted COPY's new rows
        assert await repo.upsert_many([bar(n, close="100.9") for n in range(8, 15)], on_conflict="ignore") == 3
        assert [s.count for s in await repo.list_series()] == [13]
    assert await count_rows(db) == 13
    # COPY wrote the upserts and the last insert; the failed inserts were replayed as statements.
    assert copied == ([True, True, False, False, True, True] if db.backend == "postgresql" else [])


@pytest.mark.parametrize("symbol", ["BTCUSDT", "None", "TAB\tNEW\nLINE\\"])
async def test_copy_stores_awkward_values_exactly(
    db: DatabaseManager, monkeypatch: pytest.MonkeyPatch, symbol: str
) -> None:
    """COPY's text format (escaped names, NULLs among values) stores what the array statement stores."""
    awkward: list[dict[str, Any]] = [
        {"open": "1E+2", "high": "123456789012.123456789012", "low": "-0.00", "close": "1E-7", "volume": "0"},
        {"quote_volume": "1E+5", "trades_count": 2**62},
        {"quote_volume": None, "trades_count": None},
    ]
    written = [bar(i, symbol=symbol, **fields) for i, fields in enumerate(awkward)]
    got = {}
    copied: list[bool] = []
    original = PostgresBackend._copied

    async def spy(self: PostgresBackend, *args: Any) -> int | None:
        result = await original(self, *args)  # the rows COPY inserted, or None when it gave way
        copied.append(result is not None)
        return result

    monkeypatch.setattr(PostgresBackend, "_copied", spy)
    for threshold, exchange in ((1, "copy"), (10**9, "arrays")):
        monkeypatch.setattr(PostgresBackend, "copy_min_rows", threshold)
        async with db.get_session() as session:
            repo = OHLCVRepository(session)
            await repo.upsert_many([dataclasses.replace(b, exchange=exchange) for b in written])
            got[exchange] = await repo.get_range(symbol, "1m", T0, T0 + timedelta(hours=1), exchange=exchange)
    fields = ("symbol", "timestamp", "open", "high", "low", "close", "volume", "quote_volume", "trades_count")
    rows = {k: [tuple(str(getattr(b, f)) for f in fields) for b in v] for k, v in got.items()}
    assert rows["copy"] == rows["arrays"] and len(rows["copy"]) == 3
    assert [b.quote_volume for b in got["copy"]] == [None, Decimal("1E+5"), None]
    assert got["copy"][0].high == Decimal("123456789012.123456789012") and got["copy"][0].symbol == symbol
    assert copied == ([True] if db.backend == "postgresql" else [])  # COPY itself, not its fallback


async def test_gaps_do_not_depend_on_the_order_rows_reach_sqlite(
    db: DatabaseManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's one-pass aggregate reports rows that came out of order; LAG() then answers."""
    assert sqlite_functions._StepGaps.finalize(_stepped([(0, 0), (120, 120), (60, 60)])) == "null"
    assert sqlite_functions._StepGaps.finalize(_stepped([(0, 0), (60, 60), (180, 180)])) == "[[60, 180]]"
    monkeypatch.setattr(sqlite_functions._StepGaps, "finalize", lambda self: "null")  # as if every pass came unordered
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(bars(20, skip=range(5, 8)))
        assert await repo.get_gaps("BTCUSDT", "1m") == [(T0 + timedelta(minutes=5), T0 + timedelta(minutes=7))]


def test_sqlite_keeps_bar_starts_as_epoch_seconds() -> None:
    """The bulk paths encode a bar start through its column type: whole epoch seconds on SQLite, as is on PostgreSQL."""
    from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg

    time = OHLCVModel.__table__.c.time
    sqlite, postgres = SQLiteBackend(aiosqlite.dialect()), PostgresBackend(pg_asyncpg.dialect())  # type: ignore[no-untyped-call]
    assert sqlite.encode(time, T0) == 1_704_067_200 and sqlite.decode(time, 1_704_067_200) == T0
    assert sqlite.decode(time, -60) == datetime(1969, 12, 31, 23, 59, tzinfo=UTC)
    assert sqlite.decode(time, 0).tzinfo is UTC
    assert postgres.encode(time, T0) is T0 and postgres.decoder(time) is None


def _stepped(rows: list[tuple[int, int]]) -> sqlite_functions._StepGaps:
    gaps = sqlite_functions._StepGaps()
    for value, ordinal in rows:
        gaps.step(value, ordinal, 60)
    return gaps


async def test_get_range_is_inclusive_oldest_first_and_filtered(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(bars(10) + bars(10, symbol="ETHUSDT") + bars(10, exchange="bybit"))
        got = await repo.get_range("BTCUSDT", "1m", T0 + timedelta(minutes=2), T0 + timedelta(minutes=5))
        other_tz = timezone(timedelta(hours=2))
        same = await repo.get_range(
            "BTCUSDT", "1m", (T0 + timedelta(minutes=2)).astimezone(other_tz), datetime(2024, 1, 1, 0, 5)
        )
        bybit = await repo.get_range("BTCUSDT", "1m", T0, T0 + timedelta(hours=1), exchange="bybit")
    assert [b.timestamp.minute for b in got] == [2, 3, 4, 5]
    assert got == same
    assert {b.exchange for b in bybit} == {"bybit"} and len(bybit) == 10


async def test_get_latest_returns_newest_oldest_first(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(bars(50))
        latest = await repo.get_latest("BTCUSDT", "1m", limit=3)
        assert await repo.get_latest("BTCUSDT", "1m", limit=0) == []
        assert await repo.get_latest("NOPE", "1m") == []
        with pytest.raises(ValidationError, match="limit"):
            await repo.get_latest("BTCUSDT", "1m", limit=-1)
    assert [b.timestamp.minute for b in latest] == [47, 48, 49]


async def test_stream_range_yields_every_bar_in_batches(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(bars(95, skip=range(40, 45)))
        streamed = [
            b
            async for b in repo.stream_range(
                "BTCUSDT", "1m", T0 + timedelta(minutes=1), T0 + timedelta(minutes=90), batch_size=10
            )
        ]
        ranged = await repo.get_range("BTCUSDT", "1m", T0 + timedelta(minutes=1), T0 + timedelta(minutes=90))
    assert streamed == ranged and len(streamed) == 85


async def test_gaps_between_stored_bars(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(bars(60))
        await repo.upsert_many(bars(60, symbol="ETHUSDT", skip=range(20, 30)))
        assert await repo.get_gaps("BTCUSDT", "1m") == []
        for minute in (10, 11, 12, 50):
            moment = T0 + timedelta(minutes=minute)
            assert await repo.delete_range("BTCUSDT", "1m", moment, moment) == 1
        gaps = await repo.get_gaps("BTCUSDT", "1m")
        eth = await repo.get_gaps("ETHUSDT", "1m")

    def m(n: int) -> datetime:
        return T0 + timedelta(minutes=n)

    assert gaps == [(m(10), m(12)), (m(50), m(50))]
    assert eth == [(m(20), m(29))]


async def test_gaps_inside_a_window(db: DatabaseManager) -> None:
    def m(n: int) -> datetime:
        return T0 + timedelta(minutes=n)

    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        assert await repo.get_gaps("BTCUSDT", "1m", start=m(0), end=m(9)) == [(m(0), m(9))]
        with pytest.raises(NotFoundError):  # an unknown series with one bound is not "no gaps"
            await repo.get_gaps("BTCUSDT", "1m", start=m(0))
        await repo.upsert_many([bar(n) for n in (5, 6, 9, 10)])
        assert await repo.get_gaps("BTCUSDT", "1m", start=m(0), end=m(12)) == [
            (m(0), m(4)),
            (m(7), m(8)),
            (m(11), m(12)),
        ]
        assert await repo.get_gaps("BTCUSDT", "1m", start=m(0)) == [(m(0), m(4)), (m(7), m(8))]
        assert await repo.get_gaps("BTCUSDT", "1m", end=m(12)) == [(m(7), m(8)), (m(11), m(12))]
        # unaligned window edges count the bars whose start lies inside the window
        assert await repo.get_gaps(
            "BTCUSDT", "1m", start=m(6) + timedelta(seconds=1), end=m(9) + timedelta(seconds=59)
        ) == [(m(7), m(8))]


@pytest.mark.parametrize(
    ("timeframe", "starts"),
    [
        ("1h", [datetime(2024, 3, 30, h, tzinfo=UTC) for h in (22, 23)] + [datetime(2024, 3, 31, 2, tzinfo=UTC)]),
        ("1w", [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 22, tzinfo=UTC)]),
        ("1M", [datetime(2023, 11, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC)]),
        ("3d", [datetime(2024, 1, 3, tzinfo=UTC), datetime(2024, 1, 12, tzinfo=UTC)]),
    ],
)
async def test_gaps_for_other_timeframes(db: DatabaseManager, timeframe: str, starts: list[datetime]) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many([OHLCVBar("BTCUSDT", "binance", timeframe, t, 1, 1, 1, 1, 1) for t in starts])
        gaps = await repo.get_gaps("BTCUSDT", timeframe)
    expected = {
        "1h": [(datetime(2024, 3, 31, 0, tzinfo=UTC), datetime(2024, 3, 31, 1, tzinfo=UTC))],
        "1w": [(datetime(2024, 1, 8, tzinfo=UTC), datetime(2024, 1, 15, tzinfo=UTC))],
        "1M": [(datetime(2023, 12, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))],
        "3d": [(datetime(2024, 1, 6, tzinfo=UTC), datetime(2024, 1, 9, tzinfo=UTC))],
    }
    assert gaps == expected[timeframe]


async def test_list_series(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(bars(5) + bars(3, symbol="ETHUSDT") + bars(2, exchange="bybit"))
        everything = await repo.list_series(ALL_EXCHANGES)
        bybit = await repo.list_series(exchange="bybit")

    def m(n: int) -> datetime:
        return T0 + timedelta(minutes=n)

    assert everything == [
        SeriesInfo("binance", "BTCUSDT", "1m", m(0), m(4), 5),
        SeriesInfo("binance", "ETHUSDT", "1m", m(0), m(2), 3),
        SeriesInfo("bybit", "BTCUSDT", "1m", m(0), m(1), 2),
    ]
    assert bybit == everything[2:]


async def test_list_series_of_all_exchanges(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(bars(2) + bars(1, exchange="bybit"))
        listed = await repo.list_series(ALL_EXCHANGES)
        assert [s.exchange for s in listed] == ["binance", "bybit"]
        assert listed == await repo.list_series(exchange="*")
        assert [s.exchange for s in await repo.list_series()] == ["binance"]  # the manager's exchange
        assert await repo.list_series("kraken") == []


async def test_decimal_columns_sort_and_compare_numerically(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        await OHLCVRepository(session).upsert_many(
            [
                bar(0, open="9", high="9", low="9", close="9"),
                bar(1, open="10", high="10", low="10", close="10"),
                bar(2, open="-2", high="-2", low="-2", close="-2"),
                bar(3, open="0.5", high="0.5", low="0.5", close="0.5"),
            ]
        )
        c = OHLCVModel.close
        ordered = (await session.scalars(select(c).order_by(c))).all()
        top, bottom = (await session.execute(select(func.max(c), func.min(c)))).one()
        above_nine = (await session.scalars(select(c).where(c > Decimal("9")))).all()
    assert ordered == [Decimal("-2"), Decimal("0.5"), Decimal("9"), Decimal("10")]
    assert (Decimal(top), Decimal(bottom)) == (Decimal("10"), Decimal("-2"))
    assert above_nine == [Decimal("10")]


async def test_bad_arguments_are_rejected_by_name(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        with pytest.raises(ValidationError, match="timeframe"):
            await repo.get_range("BTCUSDT", "7m", T0, T0)
        with pytest.raises(ValidationError, match=r"bars\[1\]"):
            await repo.upsert_many([bar(0), {"symbol": "BTCUSDT"}])  # type: ignore[list-item]
        with pytest.raises(ValidationError, match="start"):
            await repo.get_range("BTCUSDT", "1m", "2024-01-01", T0)  # type: ignore[arg-type]
    assert await count_rows(db) == 0


async def test_round_numbers_keep_their_form(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many([bar(0, open="50000", high="100000", low="10000", close="20000.0", volume="0.00000001")])
        (got,) = await repo.get_latest("BTCUSDT", "1m", limit=1)
    assert [str(v) for v in (got.open, got.high, got.low, got.close)] == ["50000", "100000", "10000", "20000.0"]


async def test_a_duplicate_bar_is_a_duplicate_error(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.insert_many(bars(3))
        with pytest.raises(DuplicateError, match="bar") as caught:
            await repo.insert_many([bar(5), bar(1)])
        assert isinstance(caught.value, IntegrityError) and caught.value.__cause__ is not None
        assert len(await repo.get_latest("BTCUSDT", "1m")) == 3  # nothing of the call was kept


async def test_gaps_of_an_unknown_series_name_where_it_exists(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(bars(3, symbol="GOOG", exchange="nasdaq") + bars(3, symbol="GOOG", exchange="bats"))
        with pytest.raises(NotFoundError, match=r"binance GOOG.*bats, nasdaq"):
            await repo.get_gaps("GOOG", "1m")
        with pytest.raises(NotFoundError, match="none"):
            await repo.get_gaps("G00G", "1m", end=T0)
        assert await repo.get_gaps("GOOG", "1m", exchange="nasdaq") == []
        # A window bounded on both sides is an answer even for an empty series: all of it is missing.
        assert await repo.get_gaps("G00G", "1m", start=T0, end=T0 + timedelta(minutes=1)) == [
            (T0, T0 + timedelta(minutes=1))
        ]


async def test_gaps_at_the_ends_of_the_calendar(db: DatabaseManager) -> None:
    first_day = datetime(1, 1, 1, tzinfo=UTC)
    last_month = datetime(9999, 12, 1, tzinfo=UTC)
    daily = [OHLCVBar("OLD", "binance", "1d", first_day + timedelta(days=d), 1, 1, 1, 1, 1) for d in (0, 3)]
    monthly = [OHLCVBar("END", "binance", "1M", datetime(9999, m, 1, tzinfo=UTC), 1, 1, 1, 1, 1) for m in (9, 12)]
    every_3d = [OHLCVBar("W", "binance", "3d", datetime(2024, 1, 3, tzinfo=UTC), 1, 1, 1, 1, 1)]
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(daily + monthly + every_3d)
        lo, hi = datetime.min, datetime.max
        stored = await repo.get_range("OLD", "1d", lo, hi)
        assert [b.timestamp for b in stored] == [first_day, first_day + timedelta(days=3)]
        assert all(b.timestamp.tzinfo is UTC for b in stored)  # asyncpg reads year 1 back naive: not here
        assert await repo.get_gaps("OLD", "1d") == [(first_day + timedelta(days=1), first_day + timedelta(days=2))]
        assert await repo.get_gaps("OLD", "1d", start=lo) == [
            (first_day + timedelta(days=1), first_day + timedelta(days=2))
        ]
        assert (await repo.get_gaps("OLD", "1d", start=lo, end=first_day + timedelta(days=4)))[-1] == (
            first_day + timedelta(days=4),
            first_day + timedelta(days=4),
        )
        months = await repo.get_gaps("END", "1M", start=datetime(9999, 8, 15), end=hi)
        assert months == [(datetime(9999, 10, 1, tzinfo=UTC), datetime(9999, 11, 1, tzinfo=UTC))]
        assert await repo.get_gaps("END", "1M", end=hi) == months
        # 3d bars are counted from 1970: the bar holding 0001-01-01 starts before year 1.
        whole = await repo.get_gaps("W", "3d", start=lo, end=datetime(1, 1, 10))
        assert whole and whole[0][0] >= first_day and all(a <= b for a, b in whole)
        tail = await repo.get_gaps("W", "3d", start=hi - timedelta(days=40), end=hi)
        assert len(tail) == 1 and tail[0][1] <= hi.replace(tzinfo=UTC) and tail[0][1] > last_month


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda repo: repo.get_latest("BTCUSDT", "1m", limit=2**63), "limit"),
        (lambda repo: repo.get_latest("BTC\udc80", "1m"), "symbol"),
        (lambda repo: repo.get_range("BTCUSDT", "1m", T0, T0, exchange="bin\x00ance"), "exchange"),
        (lambda repo: repo.get_gaps("BTCUSDT", "1m", start="2024-01-01"), "start"),
    ],
)
async def test_out_of_range_arguments_are_validation_errors(
    db: DatabaseManager, call: Callable[[OHLCVRepository], Awaitable[object]], named: str
) -> None:
    async with db.get_session() as session:
        with pytest.raises(ValidationError, match=named):
            await call(OHLCVRepository(session))
        assert await OHLCVRepository(session).list_series() == []  # nothing written, session usable


async def test_decimals_read_back_identically_on_both_backends(db: DatabaseManager) -> None:
    given = bar(0, open=Decimal("1E+5"), high=Decimal("1E+5"), low="-0", close="0.50", volume=Decimal("-0.000"))
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many([given])
        (got,) = await repo.get_latest("BTCUSDT", "1m")
    assert [str(getattr(got, f)) for f in ("open", "high", "low", "close", "volume")] == [
        "100000",
        "100000",
        "0",
        "0.50",
        "0.000",
    ]


async def test_numpy_values_from_a_dataframe_store_exactly(db: DatabaseManager) -> None:
    frame = pd.DataFrame(
        {
            "open": [42000.5, 42001.25],
            "high": [42010.0, 42011.0],
            "low": [41990.25, 41991.0],
            "close": [42005.0, 42006.0],
            "volume": [1.25, 0.1],
            "trades": np.array([7, 9], dtype=np.int64),
        },
        index=pd.date_range("2024-01-01", periods=2, freq="1min", tz="UTC"),
    )
    made = [
        OHLCVBar(
            "BTCUSDT",
            "binance",
            "1m",
            ts,
            r["open"],
            r["high"],
            r["low"],
            r["close"],
            r["volume"],
            trades_count=r["trades"],  # iterrows() made it a float64 (7.0), as the other columns are floats
        )
        for ts, r in frame.iterrows()
    ]
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        await repo.upsert_many(made)
        got = await repo.get_latest("BTCUSDT", "1m", limit=np.int64(5))  # type: ignore[arg-type]
    assert [(b.open, b.volume, b.trades_count) for b in got] == [
        (Decimal("42000.5"), Decimal("1.25"), 7),
        (Decimal("42001.25"), Decimal("0.1"), 9),
    ]


async def test_windows_at_the_calendars_ends(db: DatabaseManager) -> None:
    """Windows touching year 1 or 9999: bar starts found without overflowing; none there is a no-op."""
    lo, hi = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    first_3d = datetime(1, 1, 3, tzinfo=UTC)  # the 3d bar holding 0001-01-01 starts before year 1
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        assert await repo.missing_ranges("X", "3d", lo, lo + timedelta(days=10)) == [
            (first_3d, first_3d + timedelta(days=6))
        ]
        await repo.mark_fetched("X", "3d", lo, lo + timedelta(days=10))
        assert await repo.missing_ranges("X", "3d", lo, lo + timedelta(days=10)) == []
        assert await repo.delete_range("X", "3d", lo, hi) == 0
        assert await repo.missing_ranges("X", "3d", lo, lo + timedelta(days=4)) == [(first_3d, first_3d)]
        late_1d = (datetime(9999, 12, 31, 0, 0, 1, tzinfo=UTC), datetime(9999, 12, 31, 1, tzinfo=UTC))
        late_1m = (datetime(9999, 12, 15, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC))
        for timeframe, (start, end) in (("1d", late_1d), ("1M", late_1m)):  # no bar starts inside
            await repo.upsert_many([bar(0, timeframe=timeframe)])
            await repo.mark_fetched("BTCUSDT", timeframe, start, end)
            assert await repo.missing_ranges("BTCUSDT", timeframe, start, end) == []
            assert await repo.delete_range("BTCUSDT", timeframe, start, end) == 0
            assert await repo.count_bars("BTCUSDT", timeframe) == 1
        for start, end in ((lo, lo + timedelta(days=20)), (hi - timedelta(days=20), hi)):
            gaps = await repo.get_gaps("X", "1h", start=start, end=end, calendar="weekdays")
            hours = sum((b - a) // timedelta(hours=1) + 1 for a, b in gaps)
            assert hours == 15 * 24  # 15 weekdays each (0001-01-01 was a Monday, 9999-12-31 a Friday)


async def test_all_exchanges_is_refused_where_a_call_names_one_series(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        with pytest.raises(ValidationError, match="ALL_EXCHANGES"):
            await repo.get_latest("BTCUSDT", "1m", exchange=ALL_EXCHANGES)
        with pytest.raises(ValidationError, match="ALL_EXCHANGES"):  # it would make an exchange named '*'
            await repo.mark_fetched("BTCUSDT", "1m", T0, T0, exchange=ALL_EXCHANGES)
        assert await repo.list_series(ALL_EXCHANGES) == []
