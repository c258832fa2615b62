"""Guarantee 9: property-based tests (hypothesis) on both backends.

Any valid bar, trade, position or event round-trips exactly; ``get_gaps`` equals a plain
Python reference on random series with random holes and random windows; ``get_statistics``
equals a plain-Python ``Decimal`` reference on random trades and filters. CI runs 40 examples
of each per backend; ``--reliability-runs N`` runs N.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_HALF_UP, Context, Decimal
from functools import reduce
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import URL

from tradestore import (
    ALL_EXCHANGES,
    DatabaseManager,
    NotFoundError,
    OHLCVBar,
    OHLCVRepository,
    Position,
    PositionRepository,
    SystemEventRepository,
    Trade,
    TradeRepository,
)
from tradestore.domain import MODES, SEVERITIES, SIDES
from tradestore.models import Base

EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MONDAY = datetime(1970, 1, 5, tzinfo=UTC)
FIXED = {"1m": 60, "5m": 300, "1h": 3600, "4h": 14_400, "1d": 86_400, "3d": 259_200, "1w": 604_800}


@pytest.fixture
def store(url: URL | str) -> Iterator[tuple[asyncio.Runner, DatabaseManager]]:
    """A manager on a fresh schema, driven from a runner of its own (hypothesis calls are sync)."""
    with asyncio.Runner() as runner:
        db = DatabaseManager(url)
        runner.run(db.connect())
        runner.run(db.drop_all())
        runner.run(db.create_all())
        yield runner, db
        runner.run(db.drop_all())
        runner.run(db.disconnect())


def _settings(runs: Callable[[int], int]) -> settings:
    return settings(
        max_examples=runs(40),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


async def _empty(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(table.delete())


# --- strategies -------------------------------------------------------------------------

names = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1, max_size=30)
#: Exact decimals with up to 24 integer digits and 18 places, trailing zeros kept.
money = st.builds(
    lambda units, places: Decimal(units).scaleb(-places), st.integers(-(10**24), 10**24), st.integers(0, 18)
)
positive = money.map(abs).filter(lambda d: d > 0)
zones = st.builds(lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-14 * 60, 14 * 60))
moments = st.builds(
    lambda micros, zone: (EPOCH + timedelta(microseconds=micros)).astimezone(zone),
    st.integers(0, 4_000_000_000 * 10**6),
    zones,
)
#: JSON leaves. Floats stay between 1e-4 and 1e15, where Python writes them without an
#: exponent: PostgreSQL's JSONB rewrites 1e+300 as 1000…0, which reads back as an int.
json_floats = st.floats(min_value=1e-4, max_value=1e15) | st.floats(min_value=-1e15, max_value=-1e-4)
json_leaves = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | names | json_floats
json_objects = st.dictionaries(
    names,
    st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3)),
)


def _month(index: int) -> datetime:
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def _slot(timeframe: str, index: int) -> datetime:
    """The start of bar ``index`` of ``timeframe`` (counted from its origin)."""
    if timeframe == "1M":
        return _month(1970 * 12 + index)
    return (MONDAY if timeframe == "1w" else EPOCH) + timedelta(seconds=FIXED[timeframe] * index)


@st.composite
def bars_(draw: st.DrawFn) -> OHLCVBar:
    timeframe = draw(st.sampled_from([*FIXED, "1M"]))
    low = draw(money)
    open_, close = low + draw(money.map(abs)), low + draw(money.map(abs))
    high = max(open_, close) + draw(money.map(abs))
    return OHLCVBar(
        draw(names),
        draw(names),
        timeframe,
        _slot(timeframe, draw(st.integers(0, 1500))).astimezone(draw(zones)),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=draw(money.map(abs)),
        quote_volume=draw(st.none() | money.map(abs)),
        trades_count=draw(st.none() | st.integers(0, 2**62)),
    )


trades_ = st.builds(
    Trade,
    trade_id=names,
    symbol=names,
    exchange=names,
    side=st.sampled_from(SIDES),
    action=st.sampled_from(("open", "close", "liquidated")),
    entry_price=money,
    quantity=positive,
    entry_time=moments,
    leverage=positive,
    exit_price=st.none() | money,
    exit_time=st.none() | moments,
    realized_pnl=st.none() | money,
    realized_pnl_pct=st.none() | money,
    fee=money,
    signal_score=st.none() | money,
    strategy=st.none() | names,
    bot_id=st.none() | names,
    mode=st.sampled_from(MODES),
    metadata=st.none() | json_objects,
)
positions_ = st.builds(
    Position,
    symbol=names,
    exchange=names,
    side=st.sampled_from(SIDES),
    entry_price=money,
    quantity=positive,
    margin=money.map(abs),
    entry_time=moments,
    current_price=st.none() | money,
    unrealized_pnl=st.none() | money,
    leverage=positive,
    liquidation_price=st.none() | money,
    bot_id=st.none() | names,
    mode=st.sampled_from(MODES),
)


def _same(a: object, b: object, skip: tuple[str, ...]) -> None:
    """Every field equal (Decimal and datetime by value), except ``skip``."""
    for f in fields(a):  # type: ignore[arg-type]
        if f.name not in skip:
            assert getattr(a, f.name) == getattr(b, f.name), f.name


# --- round trips ------------------------------------------------------------------------


def test_any_valid_record_round_trips_exactly(
    store: tuple[asyncio.Runner, DatabaseManager], runs: Callable[[int], int], figures: Counter[str]
) -> None:
    runner, db = store

    @_settings(runs)
    @given(bar=bars_(), trade=trades_, position=positions_, event=st.tuples(names, names, st.none() | json_objects))
    def check(bar: OHLCVBar, trade: Trade, position: Position, event: tuple[str, str, dict[str, Any] | None]) -> None:
        runner.run(round_trip(bar, trade, position, event))
        figures[f"hypothesis round trips: bar+trade+position+event ({db.backend})"] += 1

    async def round_trip(
        bar: OHLCVBar, trade: Trade, position: Position, event: tuple[str, str, dict[str, Any] | None]
    ) -> None:
        await _empty(db)
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many([bar])
            trade_id = await TradeRepository(session).insert(trade)
            position_id = await PositionRepository(session).update_position(position)
            event_type, message, details = event
            await SystemEventRepository(session).log_event(event_type, "warning", message, details=details)
        async with db.get_session() as session:
            got = await OHLCVRepository(session).get_range(
                bar.symbol, bar.timeframe, bar.timestamp, bar.timestamp, exchange=bar.exchange
            )
            assert len(got) == 1
            _same(got[0], bar, ("id", "created_at"))
            assert got[0].timestamp.tzinfo is UTC
            stored = await TradeRepository(session).get_by_id(trade_id)
            assert stored is not None
            if trade.is_closed:  # a closed trade gets exit_time = now and status closed
                assert stored.status == ("closed" if trade.status == "open" else trade.status)
                _same(stored, trade, ("id", "created_at", "updated_at", "exit_time", "status"))
                if trade.exit_time is None:
                    assert stored.exit_time is not None and stored.exit_time >= trade.entry_time
                else:
                    assert stored.exit_time == trade.exit_time
            else:
                _same(stored, trade, ("id", "created_at", "updated_at"))
            held = await PositionRepository(session).get_open_positions(ALL_EXCHANGES, bot_id=position.bot_id)
            assert [p.id for p in held] == [position_id]
            _same(held[0], position, ("id", "updated_at"))
            (logged,) = await SystemEventRepository(session).get_recent_events()
            assert (logged.event_type, logged.severity, logged.message, logged.details) == (
                event_type,
                "warning",
                message,
                details,
            )

    check()


# --- get_gaps against a reference -------------------------------------------------------


def _floor(timeframe: str, moment: datetime) -> datetime:
    if timeframe == "1M":
        return datetime(moment.year, moment.month, 1, tzinfo=UTC)
    origin = MONDAY if timeframe == "1w" else EPOCH
    step = timedelta(seconds=FIXED[timeframe])
    return origin + (moment - origin) // step * step


def _ceil(timeframe: str, moment: datetime) -> datetime:
    start = _floor(timeframe, moment)
    return start if start == moment else _next(timeframe, start)


def _next(timeframe: str, start: datetime) -> datetime:
    if timeframe == "1M":
        return _month(start.year * 12 + start.month)
    return start + timedelta(seconds=FIXED[timeframe])


def reference_gaps(
    timeframe: str, stored: set[datetime], lo: datetime | None, hi: datetime | None
) -> list[tuple[datetime, datetime]]:
    """The README's rules, by walking every bar start from the first to the last one that counts."""
    inside = sorted(t for t in stored if (lo is None or t >= lo) and (hi is None or t <= hi))
    if not inside:
        if lo is None or hi is None:
            return []
        first, last = _ceil(timeframe, lo), _floor(timeframe, hi)
        return [(first, last)] if first <= last else []
    first = inside[0] if lo is None else _ceil(timeframe, lo)
    last = inside[-1] if hi is None else _floor(timeframe, hi)
    gaps: list[tuple[datetime, datetime]] = []
    run: list[datetime] = []
    moment = first
    while moment <= last:
        if moment in stored:
            if run:
                gaps.append((run[0], run[-1]))
                run = []
        else:
            run.append(moment)
        moment = _next(timeframe, moment)
    if run:
        gaps.append((run[0], run[-1]))
    return gaps


@st.composite
def series(draw: st.DrawFn) -> tuple[str, list[datetime], datetime | None, datetime | None]:
    timeframe = draw(st.sampled_from([*FIXED, "1M"]))
    base = draw(st.integers(0, 600))
    present = draw(st.sets(st.integers(0, 40), max_size=41))
    stored = [_slot(timeframe, base + i) for i in sorted(present)]

    def bound() -> datetime | None:
        slot = _slot(timeframe, base + draw(st.integers(-3, 44)))
        if draw(st.booleans()):  # not a bar start: somewhere inside the bar
            slot = slot + (_next(timeframe, slot) - slot) * draw(st.floats(0.01, 0.99))
        return draw(st.none() | st.just(slot))

    lo, hi = bound(), bound()
    return timeframe, stored, lo, hi


def test_get_gaps_equals_the_reference(
    store: tuple[asyncio.Runner, DatabaseManager], runs: Callable[[int], int], figures: Counter[str]
) -> None:
    runner, db = store

    @_settings(runs)
    @given(case=series())
    def check(case: tuple[str, list[datetime], datetime | None, datetime | None]) -> None:
        runner.run(compare(*case))
        figures[f"hypothesis get_gaps series checked ({db.backend})"] += 1

    async def compare(timeframe: str, stored: list[datetime], lo: datetime | None, hi: datetime | None) -> None:
        await _empty(db)
        bars = [OHLCVBar("BTCUSDT", "binance", timeframe, t, "1", "1", "1", "1", "1") for t in stored]
        async with db.get_session() as session:
            repo = OHLCVRepository(session)
            await repo.upsert_many(bars)
            await repo.upsert_many(
                [OHLCVBar("OTHER", "binance", timeframe, _slot(timeframe, 0), "1", "1", "1", "1", "1")]
            )
            if not stored and (lo is None or hi is None):  # an unknown series is not "no gaps"
                with pytest.raises(NotFoundError):
                    await repo.get_gaps("BTCUSDT", timeframe, start=lo, end=hi)
                return
            got = await repo.get_gaps("BTCUSDT", timeframe, start=lo, end=hi)
        assert got == reference_gaps(timeframe, set(stored), lo, hi)

    check()


# --- get_statistics against a reference -------------------------------------------------

EIGHT = Decimal("0.00000001")


WIDE = Context(prec=120)


def _ratio(a: Decimal | int, b: Decimal | int) -> Decimal:
    return WIDE.divide(Decimal(a), Decimal(b)).quantize(EIGHT, rounding=ROUND_HALF_UP, context=WIDE)


def _sum(values: list[Decimal]) -> Decimal:
    """Exact: ``sum()`` would round to the default 28 digits."""
    return reduce(EXACT.add, values, Decimal(0))


def reference_statistics(trades: list[Trade], now: datetime, days: int | None, **filters: str | None) -> dict[str, Any]:
    closed = [
        t
        for t in trades
        if t.realized_pnl is not None
        and t.exit_time is not None
        and (days is None or t.exit_time >= now - timedelta(days=days))
        and all(value is None or getattr(t, name) == value for name, value in filters.items())
    ]
    nets = [EXACT.subtract(t.realized_pnl, t.fee) for t in closed]  # type: ignore[arg-type]
    wins, losses = [n for n in nets if n > 0], [n for n in nets if n < 0]
    gross_profit = _sum(wins)
    gross_loss = EXACT.minus(_sum(losses))
    return {
        "total_trades": len(closed),
        "winning_trades": len(wins),
        "losing_trades": len(losses),
        "win_rate": _ratio(len(wins) * 100, len(closed)) if closed else Decimal(0),
        "gross_profit": gross_profit,
        "gross_loss": gross_loss,
        "net_pnl": EXACT.subtract(gross_profit, gross_loss),
        "total_fees": _sum([t.fee for t in closed]),
        "avg_win": _ratio(gross_profit, len(wins)) if wins else Decimal(0),
        "avg_loss": _ratio(gross_loss, len(losses)) if losses else Decimal(0),
        "largest_win": max(wins) if wins else Decimal(0),
        "largest_loss": EXACT.minus(min(losses)) if losses else Decimal(0),
        "profit_factor": _ratio(gross_profit, gross_loss) if losses else None,
    }


@st.composite
def books(draw: st.DrawFn) -> tuple[list[Trade], dict[str, Any]]:
    now = datetime.now(UTC)
    trades = []
    for n in range(draw(st.integers(0, 25))):
        closed = draw(st.booleans()) or draw(st.booleans())
        # Whole days plus an hour or more away from the 30-day boundary, so the clock cannot tip it.
        age = timedelta(days=draw(st.sampled_from([0, 1, 5, 28, 31, 90, 400])), hours=draw(st.integers(1, 22)))
        trades.append(
            Trade(
                f"T{n}",
                draw(st.sampled_from(["BTC", "ETH"])),
                draw(st.sampled_from(["binance", "kraken"])),
                "long",
                "close" if closed else "open",
                entry_price="100",
                quantity="1",
                entry_time=now - age - timedelta(days=1),
                exit_time=now - age if (closed and draw(st.booleans())) or closed else None,
                realized_pnl=draw(money) if closed else None,
                fee=draw(money.map(abs) | money),
                strategy=draw(st.sampled_from([None, "a", "b"])),
                bot_id=draw(st.sampled_from([None, "x", "y"])),
                mode=draw(st.sampled_from(["live", "paper"])),
            )
        )
    query = {
        "days": draw(st.sampled_from([None, 30, 7])),
        "exchange": draw(st.sampled_from([None, "binance", "kraken", ALL_EXCHANGES])),
        "symbol": draw(st.sampled_from([None, "BTC"])),
        "strategy": draw(st.sampled_from([None, "a"])),
        "bot_id": draw(st.sampled_from([None, "x"])),
        "mode": draw(st.sampled_from([None, "live", "paper"])),
    }
    return trades, query


def test_get_statistics_equals_the_reference(
    store: tuple[asyncio.Runner, DatabaseManager], runs: Callable[[int], int], figures: Counter[str]
) -> None:
    runner, db = store

    @_settings(runs)
    @given(book=books())
    def check(book: tuple[list[Trade], dict[str, Any]]) -> None:
        runner.run(compare(*book))
        figures[f"hypothesis get_statistics books checked ({db.backend})"] += 1

    async def compare(trades: list[Trade], query: dict[str, Any]) -> None:
        await _empty(db)
        async with db.get_session() as session:
            repo = TradeRepository(session)
            for trade in trades:
                await repo.insert(trade)
            got = await repo.get_statistics(**query)
        # exchange=None is the manager's default exchange; ALL_EXCHANGES no exchange filter.
        exchange = {None: db.exchange, ALL_EXCHANGES: None}.get(query["exchange"], query["exchange"])
        expected = reference_statistics(trades, datetime.now(UTC), **{**query, "exchange": exchange})
        assert {name: getattr(got, name) for name in expected} == expected

    check()


def test_event_severities_are_the_documented_ones() -> None:
    assert SEVERITIES == ("debug", "info", "warning", "error", "critical")
