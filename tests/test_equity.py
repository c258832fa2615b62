"""``EquityRepository``: snapshots, curves, performance figures against a plain-Python reference, reports."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from factories import trade
from performance_reference import expected
from tradestore import DatabaseManager, EquityRepository, EquitySnapshot, PerformanceReport, TradeRepository
from tradestore.dialects import sqlite_functions
from tradestore.errors import NotFoundError, ValidationError
from tradestore.models import EquitySnapshotModel
from tradestore.values import datetime_to_sqlite

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def snap(hours: float, equity: str | int | float | Decimal, *, bot: str = "b1", **fields: Any) -> EquitySnapshot:
    return EquitySnapshot(bot, T0 + timedelta(hours=hours), equity, **fields)


async def test_record_replaces_the_same_key_and_round_trips_exactly(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = EquityRepository(session)
        first = await repo.record(snap(0, "100.123456789012345678", balance="90.5", metadata={"note": Decimal("1.5")}))
        again = await repo.record(snap(0, "101", balance="0.1", unrealized_pnl="-0.25", open_positions=2))
        assert again == first
        await repo.record(snap(0, "7", mode="paper"))
    async with db.get_session() as session:
        (stored,) = await EquityRepository(session).get_curve("b1", mode="live")
        assert (stored.equity, stored.balance, stored.unrealized_pnl, stored.open_positions) == (
            Decimal("101"),
            Decimal("0.1"),
            Decimal("-0.25"),
            2,
        )
        assert stored.metadata is None and stored.id == first
        both = await EquityRepository(session).get_curve("b1")
        assert [s.mode for s in both] == ["live", "paper"]  # mode=None: no filter


async def test_record_many_is_all_or_nothing_and_last_wins(db: DatabaseManager) -> None:
    snapshots = [snap(h, Decimal(100) + h, metadata={"h": h}) for h in range(3000)]
    async with db.get_session() as session:
        repo = EquityRepository(session)
        assert await repo.record_many(snapshots) == 3000
        assert await repo.record_many([snap(5, "1"), snap(5, "2"), snap(6, "3")]) == 2
        assert await repo.record_many([]) == 0
    with pytest.raises(ValidationError, match=r"snapshots\[1\]"):
        async with db.get_session() as session:
            await EquityRepository(session).record_many([snap(7, "9"), "nope"])  # type: ignore[list-item]
    async with db.get_session() as session:
        curve = await EquityRepository(session).get_curve("b1")
        assert len(curve) == 3000
        assert [curve[5].equity, curve[6].equity, curve[7].equity] == [Decimal(2), Decimal(3), Decimal(107)]
        assert curve[2999].metadata == {"h": 2999}


def test_snapshot_validation() -> None:
    with pytest.raises(ValidationError, match="equity"):
        snap(0, "-1")
    with pytest.raises(ValidationError, match="mode"):
        snap(0, "1", mode="demo")
    with pytest.raises(ValidationError, match="open_positions"):
        snap(0, "1", open_positions=-1)
    assert snap(0, 1.1).equity == Decimal("1.1")


async def test_get_curve_every_keeps_the_last_snapshot_of_each_period(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = EquityRepository(session)
        # every 5 hours for 20 days, and one snapshot half a second before midnight
        await repo.record_many([snap(h, h) for h in range(0, 480, 5)])
        await repo.record(EquitySnapshot("b1", T0 + timedelta(days=3) - timedelta(milliseconds=500), "777"))
        curve = await repo.get_curve("b1")
        periods: list[tuple[str, Callable[[datetime], object]]] = [
            ("1d", lambda t: t.date()),
            ("6h", lambda t: (t.date(), t.hour // 6)),
            ("1w", lambda t: t.isocalendar()[:2]),
            ("1M", lambda t: (t.year, t.month)),
        ]
        for every, key in periods:
            last: dict[object, EquitySnapshot] = {}
            for s in curve:
                last[key(s.timestamp)] = s
            got = await repo.get_curve("b1", every=every)
            assert [s.timestamp for s in got] == sorted(s.timestamp for s in last.values()), every
        days = await repo.get_curve("b1", every="1d", start=T0 + timedelta(days=2), end=T0 + timedelta(days=4))
        assert days[0].equity == Decimal(777) and len(days) == 2
        with pytest.raises(ValidationError, match="timeframe"):
            await repo.get_curve("b1", every="2d")


async def test_performance_by_hand(db: DatabaseManager) -> None:
    """Three days: 100 → 110 → 99 (day 2 carries) → 121: figures a person can check."""
    async with db.get_session() as session:
        repo = EquityRepository(session)
        await repo.record_many(
            [snap(0, "100"), snap(10, "120"), snap(23, "110"), snap(48 + 5, "99"), snap(72 + 12, "121")]
        )
        await TradeRepository(session).insert(
            trade(1, pnl="5", fee="1", bot_id="b1", exit_time=T0 + timedelta(hours=3))
        )
        await TradeRepository(session).insert(trade(2, pnl="9", bot_id="b1", exit_time=T0 + timedelta(days=9)))
        report = await repo.performance("b1")
    assert (report.start, report.end, report.snapshots) == (T0, T0 + timedelta(hours=84), 5)
    assert (report.starting_equity, report.ending_equity) == (Decimal(100), Decimal(121))
    assert report.total_return == Decimal("0.21000000")
    # the fall from 120 (hour 10) to 99 (hour 53), back at 120 or more at hour 84
    assert report.max_drawdown == Decimal("0.175")
    assert (report.max_drawdown_peak, report.max_drawdown_trough, report.max_drawdown_recovered) == (
        T0 + timedelta(hours=10),
        T0 + timedelta(hours=53),
        T0 + timedelta(hours=84),
    )
    # daily closes 110, (110 carried), 99, 121 → returns 0, -0.1, 2/9 over n = 3 days
    assert report.periods == 3
    ref = expected(
        [
            (s, e)
            for s, e in [
                (T0, Decimal(100)),
                (T0 + timedelta(hours=23), Decimal(110)),
                (T0 + timedelta(hours=53), Decimal(99)),
                (T0 + timedelta(hours=84), Decimal(121)),
            ]
        ]
    )
    assert report.volatility == ref.volatility and report.sharpe == ref.sharpe and report.sortino == ref.sortino
    assert report.sortino is not None and report.sharpe is not None and report.sortino > report.sharpe
    assert report.trades.total_trades == 2  # trades of the bot; window None: all of them
    windowed = await _performance(db, "b1", end=T0 + timedelta(days=5))
    assert windowed.trades.total_trades == 1 and windowed.trades.net_pnl == Decimal(4)


async def _performance(db: DatabaseManager, bot: str, **kwargs: Any) -> PerformanceReport:
    async with db.get_session() as session:
        return await EquityRepository(session).performance(bot, **kwargs)


async def test_undefined_figures_are_none(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = EquityRepository(session)
        await repo.record(snap(0, "100", bot="one"))
        await repo.record_many([snap(0, "100", bot="flat"), snap(24, "100", bot="flat"), snap(48, "100", bot="flat")])
        await repo.record_many([snap(0, "100", bot="up"), snap(24, "101", bot="up"), snap(48, "102", bot="up")])
        await repo.record_many([snap(0, "0", bot="zero"), snap(24, "5", bot="zero"), snap(48, "6", bot="zero")])
        one = await repo.performance("one")
        assert (one.total_return, one.cagr, one.sharpe, one.volatility, one.periods) == (
            Decimal("0E-8"),
            None,
            None,
            None,
            0,
        )
        assert one.max_drawdown == 0 and one.max_drawdown_peak is None and one.calmar is None
        flat = await repo.performance("flat")
        assert flat.volatility == Decimal("0E-8") and flat.sharpe is None and flat.sortino is None
        up = await repo.performance("up")
        assert up.sortino is None and up.calmar is None and up.sharpe is not None and up.cagr is not None
        zero = await repo.performance("zero")
        assert zero.total_return is None and zero.cagr is None and zero.sharpe is None and zero.volatility is None
        with pytest.raises(NotFoundError, match="nobody"):
            await repo.performance("nobody")
        with pytest.raises(NotFoundError):
            await repo.performance("one", start=T0 + timedelta(days=1))
        await repo.record(snap(0, "1", bot="one", mode="paper"))
        with pytest.raises(ValidationError, match="several modes"):
            await repo.performance("one")
        assert (await repo.performance("one", mode="paper")).mode == "paper"
        with pytest.raises(ValidationError, match="periods_per_year"):
            await repo.performance("up", periods_per_year=0)


def _random_curve(rng: random.Random) -> list[tuple[datetime, Decimal]]:
    """Curves of every shape: few or many points, gaps of seconds to days, ties, zeros, long decimals."""
    size = rng.choice([1, 2, 3, rng.randint(4, 12), rng.randint(12, 60)])
    moment = T0 + timedelta(
        days=rng.randint(0, 700), seconds=rng.randint(0, 86_399), microseconds=rng.randint(0, 3) * 250_000
    )
    style = rng.choice(["walk", "walk", "ties", "zeros", "long", "flat", "up"])
    equity = Decimal(rng.randint(1, 100_000)) / 100
    huge = Decimal("1000000000000000000000")  # floats cannot tell these apart: the exact path decides
    points: list[tuple[datetime, Decimal]] = []
    for _ in range(size):
        if style == "walk":
            equity = max(Decimal(0), equity + Decimal(rng.randint(-500, 520)) / 100)
        elif style == "ties":
            equity = Decimal(rng.choice([90, 100, 100, 110, 95]))
        elif style == "zeros":
            equity = Decimal(rng.choice([0, 0, 5, 10, 20]))
        elif style == "long":
            equity = huge + Decimal(rng.randint(-9, 9)) / 10**12
        elif style == "up":
            equity += Decimal(rng.randint(0, 300)) / 100
        points.append((moment, equity))
        moment += rng.choice(
            [
                timedelta(seconds=rng.randint(1, 59)),
                timedelta(minutes=rng.randint(1, 600)),
                timedelta(days=rng.randint(0, 4), hours=rng.randint(0, 23), seconds=1),
            ]
        )
    return points


async def test_performance_matches_the_reference_on_random_curves(
    db: DatabaseManager, request: pytest.FixtureRequest
) -> None:
    count = request.config.getoption("--performance-curves") or 2000
    rng = random.Random(20261126)
    curves = {f"bot{i}": _random_curve(rng) for i in range(count)}
    async with db.get_session() as session:
        await EquityRepository(session).record_many(
            EquitySnapshot(bot, moment, equity) for bot, points in curves.items() for moment, equity in points
        )
    per_year, rate = Decimal(365), Decimal(0)
    async with db.get_session() as session:
        repo = EquityRepository(session)
        for n, (bot, points) in enumerate(curves.items()):
            if n % 3 == 1:
                per_year, rate = Decimal(252), Decimal("0.04")
            elif n % 3 == 2:
                per_year, rate = Decimal(365), Decimal("0.01")
            report = await repo.performance(bot, periods_per_year=per_year, risk_free_rate=rate)
            assert_reference(report, points, per_year, rate)


def assert_reference(
    report: PerformanceReport,
    points: list[tuple[datetime, Decimal]],
    per_year: Decimal = Decimal(365),
    rate: Decimal = Decimal(0),
) -> None:
    """``report`` gives the figures of the plain-Python reference for ``points``."""
    want = expected(points, per_year, rate)
    got = dataclasses.asdict(report)
    for name in ("total_return", "cagr", "volatility", "sharpe", "sortino", "calmar", "periods", "max_drawdown"):
        assert got[name] == getattr(want, name), (report.bot_id, name, points)
    assert (report.max_drawdown_peak, report.max_drawdown_trough, report.max_drawdown_recovered) == (
        want.peak,
        want.trough,
        want.recovered,
    ), (report.bot_id, points)
    assert report.snapshots == len(points) and report.ending_equity == max(points)[1]


def _long_walk(rng: random.Random, size: int) -> list[tuple[datetime, Decimal]]:
    """A minute-by-minute walk with flat stretches (runs of one equity, at the peak too) and new peaks."""
    equity, points = Decimal(1000), []
    for n in range(size):
        if rng.random() > 0.3:  # else the equity stays as it was
            equity = max(Decimal(1), equity + Decimal(rng.randint(-300, 310)) / 100)
        points.append((T0 + timedelta(minutes=7 * n), equity))
    return points


async def test_performance_does_not_depend_on_the_order_snapshots_were_written_in(
    db: DatabaseManager, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(11)
    points = _long_walk(rng, 3000)
    shuffled = points.copy()
    rng.shuffle(shuffled)  # as when older history is imported after newer snapshots
    async with db.get_session() as session:
        await EquityRepository(session).record_many(EquitySnapshot("late", *point) for point in shuffled[:1500])
    async with db.get_session() as session:
        await EquityRepository(session).record_many(EquitySnapshot("late", *point) for point in shuffled[1500:])
        if backend == "sqlite":  # statistics that make the planner read the table in rowid order
            await session.execute(text("ANALYZE"))
    assert_reference(await _performance(db, "late"), points)
    if backend == "sqlite":  # and if SQLite's scans came unordered even when asked in order
        unordered = lambda self: json.dumps({**self.result(), "ordered": False})  # noqa: E731
        monkeypatch.setattr(sqlite_functions.EquityScan, "finalize", unordered)
        assert_reference(await _performance(db, "late"), points)


def test_the_sqlite_scan_keeps_few_rows_of_a_flat_or_steady_curve() -> None:
    scan = sqlite_functions.EquityScan()
    for minute in range(20_000):  # two weeks at one equity, then a slow rise
        moment = T0 + timedelta(minutes=minute)
        scan.step(datetime_to_sqlite(moment), "100.5" if minute < 14_400 else str(100 + minute))
    found = scan.result()
    assert found is not None and found["ordered"]
    assert len(found["closes"]) == 14
    assert len(found["kept"]) == 2 + (20_000 - 14_400)  # the first and last of the flat run, then each new peak


async def test_stored_reports_round_trip_newest_first(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = EquityRepository(session)
        await repo.record_many([snap(h * 7, Decimal(100) + (h % 5) * 3 - h) for h in range(40)])
        await TradeRepository(session).insert(trade(1, pnl="5.5", fee="0.1", bot_id="b1"))
        first = await repo.performance("b1")
        second = await repo.performance("b1", end=T0 + timedelta(days=5))
        ids = [await repo.store_report(first), await repo.store_report(second)]
        got = await repo.get_reports("b1")
        assert [r.id for r in got] == ids[::-1]
        assert got[1] == dataclasses.replace(first, id=ids[0]) and got[0] == dataclasses.replace(second, id=ids[1])
        assert await repo.get_reports("b1", mode="paper") == [] and len(await repo.get_reports("b1", limit=1)) == 1
        count = await session.scalar(select(func.count()).select_from(EquitySnapshotModel))
        assert count == 40


@pytest.mark.parametrize(
    "values",
    [
        ["1E+400", "5E+399", "2E+400", "1.5E+400", "1E-400", "3", "2E-400", "1E-401", "1E+401", "1E+401", "9E+400"],
        ["1E-400", "3E-401", "2E-400", "1E-401", "0", "4E-400", "1E-300"],
    ],
    ids=["beyond-a-float", "below-a-float"],
)
async def test_performance_is_exact_beyond_what_a_float_can_tell(db: DatabaseManager, values: list[str]) -> None:
    points = [(T0 + timedelta(hours=7 * n), Decimal(value)) for n, value in enumerate(values)]
    async with db.get_session() as session:
        await EquityRepository(session).record_many(EquitySnapshot("extreme", *point) for point in points)
    assert_reference(await _performance(db, "extreme"), points)


_BASES = [Decimal("1E+21"), Decimal("100"), Decimal("0.000001"), Decimal("1E-320")]


@st.composite
def _curves(draw: st.DrawFn) -> list[Decimal]:
    """Curves built to trouble floats: neighbours no float tells apart, flat runs, ties at the peak, zeros."""
    base = draw(st.sampled_from(_BASES))
    steps = draw(st.lists(st.integers(-6, 6), min_size=1, max_size=40))
    scale = draw(st.sampled_from([Decimal("1E-25"), Decimal("1E-12"), Decimal("0.01"), Decimal(1)]))
    values, level = [], base
    for step in steps:
        level = max(Decimal(0), level + step * scale * base) if step else level  # 0: the same text again
        values.append(level)
    return values


@settings(max_examples=3000, deadline=None)
@given(_curves())
def test_the_sqlite_scan_never_drops_a_row_the_exact_drawdown_needs(values: list[Decimal]) -> None:
    scan, full = sqlite_functions.EquityScan(), sqlite_functions.Drawdown()
    texts = {}
    for n, value in enumerate(values):
        moment = datetime_to_sqlite(T0 + timedelta(minutes=n))
        texts[moment] = (T0 + timedelta(minutes=n), value)
        scan.step(moment, str(value))
        full.step(*texts[moment])
    found = scan.result()
    assert found is not None and found["ordered"]
    replay = sqlite_functions.Drawdown()
    for moment in found["kept"]:
        replay.step(*texts[moment])
    assert (replay.best, replay.recovered) == (full.best, full.recovered), values


async def test_record_checks_a_snapshot_changed_after_construction(db: DatabaseManager) -> None:
    async with db.get_session() as session:
        repo = EquityRepository(session)
        for name, value in (("equity", Decimal(-1)), ("mode", "real"), ("open_positions", -2)):
            changed = snap(0, "100")
            setattr(changed, name, value)
            with pytest.raises(ValidationError, match=name):
                await repo.record(changed)
        assert await session.scalar(select(func.count()).select_from(EquitySnapshotModel)) == 0
