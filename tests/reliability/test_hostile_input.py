"""Guarantee 7: hostile and bad input.

Every bad value is rejected with a ``ValidationError`` naming the field and the value, before
any SQL runs (a listener counts the statements), and nothing is written. Strings that look
like SQL are stored and returned byte for byte, and every table is intact afterwards. A scan
of the source shows no SQL is built by formatting values into it.
"""
# Deliberately ill-typed input is the point of this file: lambdas that bind each bad value as a
# default argument, and tuples mixing types, are what mypy cannot type; the rest is checked.
# mypy: disable-error-code="misc, assignment"

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, inspect, select

import tradestore
from factories import T0, bar, position, trade
from tradestore import (
    DatabaseManager,
    OHLCVBar,
    OHLCVRepository,
    PositionRepository,
    SystemEventRepository,
    TradeRepository,
)
from tradestore.errors import ValidationError
from tradestore.models import Base, OHLCVModel, PositionModel, SystemEventModel, TradeModel

NON_FINITE: list[object] = [
    Decimal("NaN"), Decimal("-NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity"),
    float("nan"), float("inf"), float("-inf"),
    "NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", "+inf",
]  # fmt: skip
BAR_NUMBERS = ("open", "high", "low", "close", "volume", "quote_volume")
TRADE_NUMBERS = (
    "entry_price", "quantity", "leverage", "exit_price", "realized_pnl", "realized_pnl_pct", "fee", "signal_score",
)  # fmt: skip
POSITION_NUMBERS = (
    "entry_price", "quantity", "margin", "current_price", "unrealized_pnl", "leverage", "liquidation_price",
)  # fmt: skip
HOSTILE_TEXT = [
    "BTC'; DROP TABLE trades;--",
    "'; DROP TABLE ohlcv; --",
    'Robert"); DROP TABLE positions;--',
    "1' OR '1'='1",
    "x UNION SELECT * FROM trades --",
    "%_", "%", "_", "\\", "\\'", "''", '"', "`", "$1", "?", ":symbol", "%(symbol)s", "{0}", "/* c */", "-- c",
    "₿ビットコイン🚀", "e\u0301", "\u202eRTL", "tab\tnew\nline\r", " padded ", "ǅ", "\U0001f4b8" * 3,
    "A" * 64, "Z" * 65, "y" * 1000,
]  # fmt: skip


class Statements:
    """Counts the SQL statements an engine runs while ``watching``."""

    def __init__(self, db: DatabaseManager) -> None:
        self.seen: list[str] = []
        self.watching = False
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._count)

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.watching:
            self.seen.append(statement)

    def writes(self) -> list[str]:
        return [s for s in self.seen if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]


async def _rejected(
    db: DatabaseManager,
    attempt: Callable[[Any], Awaitable[object]],
    field: str,
    value: object,
    figures: Counter[str],
    *,
    reads_allowed: bool = False,
) -> None:
    """``attempt(session)`` must raise ValidationError naming ``field`` and ``value``, with no SQL run."""
    statements: Statements = db.__dict__.setdefault("_statements_seen", Statements(db))
    statements.seen.clear()
    statements.watching = True
    try:
        with pytest.raises(ValidationError) as caught:
            async with db.get_session() as session:
                await attempt(session)
    finally:
        statements.watching = False
    message = str(caught.value)
    assert field in message, (field, message)
    assert any(form in message for form in _forms(value)), (value, message)
    if reads_allowed:
        assert statements.writes() == [], statements.writes()
    else:
        assert statements.seen == [], statements.seen
    figures["bad inputs tried, each rejected with nothing written"] += 1


def _forms(value: object) -> list[str]:
    """How a message may show ``value``: as given, or as the Decimal it was read as."""
    forms = [repr(value), str(value)]
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return forms
    return [*forms, repr(number), str(number)]


async def _table_counts(db: DatabaseManager) -> dict[str, int]:
    async with db.get_session() as session:
        conn = await session.connection()
        names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        assert {t.name for t in Base.metadata.sorted_tables} <= names, names
        return {
            model.__tablename__: int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (OHLCVModel, TradeModel, PositionModel, SystemEventModel)
        }


def _bar_with(field: str, value: object) -> OHLCVBar:
    values: dict[str, Any] = {"open": "100", "high": "101", "low": "99", "close": "100.5", "volume": "1"}
    values[field] = value
    return OHLCVBar("BTCUSDT", "binance", "1m", T0, **values)


async def test_non_finite_numbers_are_rejected_in_every_numeric_field(
    db: DatabaseManager, figures: Counter[str]
) -> None:
    async with db.get_session() as session:
        stored_id = await TradeRepository(session).insert(trade(0))
    before = await _table_counts(db)
    for value in NON_FINITE:
        for field in BAR_NUMBERS:
            await _rejected(
                db, lambda s, f=field, v=value: OHLCVRepository(s).upsert_many([_bar_with(f, v)]), field, value, figures
            )
        for field in TRADE_NUMBERS:
            await _rejected(
                db, lambda s, f=field, v=value: TradeRepository(s).insert(trade(1, **{f: v})), field, value, figures
            )
            await _rejected(
                db,
                lambda s, f=field, v=value: TradeRepository(s).update(stored_id, **{f: v}),
                field,
                value,
                figures,
                reads_allowed=True,  # update() reads the stored trade, then validates the change
            )
        for field in POSITION_NUMBERS:
            await _rejected(
                db,
                lambda s, f=field, v=value: PositionRepository(s).update_position(position(**{f: v})),
                field,
                value,
                figures,
            )
    assert await _table_counts(db) == before


def _bad_bars() -> Iterator[tuple[str, object, Callable[[], OHLCVBar]]]:
    def make(**fields: Any) -> Callable[[], OHLCVBar]:
        values: dict[str, Any] = {
            "symbol": "BTCUSDT", "exchange": "binance", "timeframe": "1m", "timestamp": T0,
            "open": "100", "high": "101", "low": "99", "close": "100.5", "volume": "1",
        }  # fmt: skip
        values.update(fields)
        return lambda: OHLCVBar(**values)

    yield "volume", "-1", make(volume="-1")
    yield "volume", "-0.00000001", make(volume="-0.00000001")
    yield "quote_volume", "-5", make(quote_volume="-5")
    yield "high", "98", make(high="98")  # high < low
    yield "high", "100", make(high="100", close="100.5")  # close above high
    yield "high", "100.25", make(high="100.25", open="100.3", close="100.2")  # open above high
    yield "low", "100.6", make(low="100.6", high="101")  # close below low
    yield "low", "100.1", make(low="100.1", open="100", close="100.5")  # open below low
    for tf, moment in [
        ("1m", T0 + timedelta(seconds=30)),
        ("1m", T0 + timedelta(microseconds=1)),
        ("1h", T0 + timedelta(minutes=30)),
        ("1d", T0 + timedelta(hours=12)),
        ("3d", T0),  # 2024-01-01 is not a 3-day boundary counted from 1970-01-01
        ("1w", T0 + timedelta(days=1)),  # a Tuesday
        ("1M", T0 + timedelta(days=1)),
        ("1m", datetime(2024, 1, 1, 2, 0, 30, tzinfo=timezone(timedelta(hours=2)))),
    ]:
        yield "timestamp", moment.astimezone(UTC).isoformat(), make(timeframe=tf, timestamp=moment)
    for tf in ("", "1H", "60m", "1m ", "1mo", "7d", "1y", "m1", "1 m", None, 1, "1M\x00"):
        yield "timeframe", tf, make(timeframe=tf)
    for field in ("symbol", "exchange"):
        yield field, "", make(**{field: ""})
        yield field, "BTC\x00USDT", make(**{field: "BTC\x00USDT"})
        yield field, None, make(**{field: None})
        yield field, b"BTCUSDT", make(**{field: b"BTCUSDT"})
    yield "timestamp", "2024-01-01", make(timestamp="2024-01-01")
    yield "timestamp", 1704067200, make(timestamp=1704067200)
    yield "trades_count", -1, make(trades_count=-1)
    yield "trades_count", 1.5, make(trades_count=1.5)
    yield "open", True, make(open=True)
    yield "open", "12abc", make(open="12abc")
    yield "open", [1], make(open=[1])


async def test_bad_bars_are_rejected_before_any_sql(db: DatabaseManager, figures: Counter[str]) -> None:
    for field, value, build in _bad_bars():
        await _rejected(db, lambda s, b=build: OHLCVRepository(s).upsert_many([b()]), field, value, figures)
        await _rejected(db, lambda s, b=build: OHLCVRepository(s).insert_many([bar(0), b()]), field, value, figures)
    for timeframe in ("", "1H", "7d", None):
        await _rejected(
            db,
            lambda s, t=timeframe: OHLCVRepository(s).get_range("BTCUSDT", t, T0, T0),
            "timeframe",
            timeframe,
            figures,
            reads_allowed=True,  # a read may begin its transaction before it checks its arguments
        )
    assert await _table_counts(db) == dict.fromkeys(("ohlcv", "trades", "positions", "system_events"), 0)


async def test_bad_trades_positions_events_and_updates_are_rejected(db: DatabaseManager, figures: Counter[str]) -> None:
    async with db.get_session() as session:
        stored_id = await TradeRepository(session).insert(trade(0))
        stored = await TradeRepository(session).get_by_id(stored_id)
    before = await _table_counts(db)
    cases: list[tuple[str, object, Callable[[Any], Awaitable[object]]]] = []
    for field, value in [
        ("trade_id", ""), ("symbol", "BTC\x00"), ("side", "sideways"), ("side", "LONG"), ("action", "hold"),
        ("mode", "real"), ("mode", ""), ("quantity", "0"), ("quantity", "-1"), ("leverage", "0"),
        ("entry_time", "yesterday"), ("exit_time", "soon"), ("metadata", [1, 2]), ("strategy", ""),
        ("bot_id", "a\x00b"),
    ]:  # fmt: skip
        cases.append((field, value, lambda s, f=field, v=value: TradeRepository(s).insert(trade(9, **{f: v}))))
    for field, value in [("status", "pending"), ("side", "flat"), ("margin", "-1"), ("mode", "demo"), ("symbol", "")]:
        cases.append(
            (field, value, lambda s, f=field, v=value: PositionRepository(s).update_position(position(**{f: v})))
        )
    for details in (
        {"x": object()}, {"x": {1, 2}}, {"x": b"bytes"}, {"x": float("nan")}, {"x": float("inf")},
        {"x": "\x00"}, "not a dict", [1, 2], {"x": complex(1, 2)},
    ):  # fmt: skip
        cases.append(
            ("details", details, lambda s, d=details: SystemEventRepository(s).log_event("t", "info", "m", details=d))
        )
    for field, value in [("severity", "fatal"), ("severity", "INFO"), ("event_type", ""), ("message", "a\x00b")]:
        args = {"event_type": "t", "severity": "info", "message": "m", field: value}
        cases.append((field, value, lambda s, a=args: SystemEventRepository(s).log_event(**a)))
    for field in ("id", "created_at", "updated_at", "nonexistent", "metadata_", "__class__", "entry_price; DROP"):
        cases.append((field, field, lambda s, f=field: TradeRepository(s).update(stored_id, **{f: 1})))
    for field, value, attempt in cases:
        await _rejected(db, attempt, field, value, figures)
    for field, value in [("side", "up"), ("exit_time", "soon"), ("mode", "paperish"), ("metadata", {"x": object()})]:
        await _rejected(
            db,
            lambda s, f=field, v=value: TradeRepository(s).update(stored_id, **{f: v}),
            field,
            value,
            figures,
            reads_allowed=True,
        )
    assert await _table_counts(db) == before
    async with db.get_session() as session:
        assert await TradeRepository(session).get_by_id(stored_id) == stored  # not one field changed


async def test_aware_and_naive_times_map_to_the_utc_key(db: DatabaseManager) -> None:
    """An aware non-UTC time is converted; a naive one is taken as UTC (the documented rule)."""
    plus_two = datetime(2024, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    minus_five = datetime(2023, 12, 31, 19, 0, tzinfo=timezone(timedelta(hours=-5)))
    naive = datetime(2024, 1, 1, 0, 0)
    async with db.get_session() as session:
        repo = OHLCVRepository(session)
        for n, moment in enumerate((T0, plus_two, minus_five, naive)):
            await repo.upsert_many([OHLCVBar("BTCUSDT", "binance", "1m", moment, "1", "2", "1", f"1.{n}", "1")])
        stored = await repo.get_range("BTCUSDT", "1m", plus_two, naive)  # bounds converted the same way
    assert [(b.timestamp, b.close) for b in stored] == [(T0, Decimal("1.3"))]


async def test_strings_that_look_like_sql_round_trip_byte_for_byte(db: DatabaseManager, figures: Counter[str]) -> None:
    before = await _table_counts(db)
    async with db.get_session() as session:
        bars_, trades_, positions_, events_ = (
            OHLCVRepository(session), TradeRepository(session), PositionRepository(session),
            SystemEventRepository(session),
        )  # fmt: skip
        for n, s in enumerate(HOSTILE_TEXT):
            await bars_.upsert_many([bar(0, symbol=s, exchange=s)])
            await trades_.insert(trade(n, trade_id=s, symbol=s, exchange=s, strategy=s, bot_id=s, metadata={s: s}))
            await positions_.update_position(position(symbol=s, exchange=s, bot_id=s))
            await events_.log_event(s, "info", s, details={s: [s]}, symbol=s, trade_id=s)
    async with db.get_session() as session:
        bars_, trades_, positions_, events_ = (
            OHLCVRepository(session), TradeRepository(session), PositionRepository(session),
            SystemEventRepository(session),
        )  # fmt: skip
        events = await events_.get_recent_events(limit=1000)
        assert len(events) == len(HOSTILE_TEXT)
        for n, s in enumerate(HOSTILE_TEXT):
            got = await bars_.get_latest(s, "1m", exchange=s)
            assert [(b.symbol.encode(), b.exchange.encode()) for b in got] == [(s.encode(), s.encode())]
            trades = await trades_.get_by_symbol(s, exchange=s)
            assert len(trades) == 1
            t = trades[0]
            assert [x.encode() for x in (t.trade_id, t.symbol, t.exchange, t.strategy or "", t.bot_id or "")] == [
                s.encode()
            ] * 5
            assert t.metadata == {s: s}
            held = await positions_.get_open_positions(s, bot_id=s)
            assert [(p.symbol.encode(), p.bot_id) for p in held] == [(s.encode(), s)]
            e = events[len(HOSTILE_TEXT) - 1 - n]
            assert (e.event_type, e.message, e.symbol, e.trade_id, e.details) == (s, s, s, s, {s: [s]})
        # A LIKE wildcard is an ordinary character: "%" finds only the bars stored under "%".
        assert [b.symbol for b in await bars_.get_latest("%", "1m", exchange="%")] == ["%"]
    after = await _table_counts(db)
    assert after == {k: v + len(HOSTILE_TEXT) for k, v in before.items()}
    figures["SQL-looking strings stored and read back byte for byte (x4 tables)"] += len(HOSTILE_TEXT)


# --- no SQL built by string formatting --------------------------------------------------

#: Calls that take SQL text as their first argument.
_SQL_CALLS = {"text", "exec_driver_sql", "execute", "executemany", "executescript", "fetch", "fetchval", "fetchrow"}
#: Interpolations reviewed as identifiers quoted by the dialect, never values.
_REVIEWED_NAMES = {("postgres.py", "names"), ("postgres.py", "target")}


def _call_name(node: ast.Call) -> str | None:
    func_ = node.func
    return func_.attr if isinstance(func_, ast.Attribute) else func_.id if isinstance(func_, ast.Name) else None


def _safe_interpolation(file: str, part: ast.FormattedValue) -> bool:
    """An integer with ``:d``, an UPPER_CASE constant, a metadata ``.name``, or a quoted identifier."""
    value = part.value
    if part.format_spec is not None and ast.unparse(part.format_spec).strip("f'\"") == "d":
        return True
    last = value.attr if isinstance(value, ast.Attribute) else value.id if isinstance(value, ast.Name) else None
    if last is not None and (last.isupper() or last == "name" or (file, last) in _REVIEWED_NAMES):
        return True
    return isinstance(value, ast.Call) and _call_name(value) in ("quote", "format_table", "quote_identifier")


def _offenders(source: str, file: str) -> list[str]:
    """SQL calls in ``source`` whose SQL text has a value formatted into it."""
    found = []
    for node in ast.walk(ast.parse(source, file)):
        if not (isinstance(node, ast.Call) and _call_name(node) in _SQL_CALLS and node.args):
            continue
        sql = node.args[0]
        where = f"{file}:{node.lineno}"
        if (isinstance(sql, ast.BinOp) and isinstance(sql.op, ast.Mod | ast.Add)) or (
            isinstance(sql, ast.Call) and _call_name(sql) == "format"
        ):
            found.append(f"{where}: {ast.unparse(sql)}")
        elif isinstance(sql, ast.JoinedStr):
            bad = [p for p in sql.values if isinstance(p, ast.FormattedValue) and not _safe_interpolation(file, p)]
            found.extend(f"{where}: {{{ast.unparse(p.value)}}} in {ast.unparse(sql)}" for p in bad)
    return found


def test_no_sql_is_built_by_formatting_values_into_it() -> None:
    package = Path(tradestore.__file__).parent
    offenders = [o for path in sorted(package.rglob("*.py")) for o in _offenders(path.read_text(), path.name)]
    assert offenders == [], "values must travel as bind parameters, identifiers through the dialect's quote()"


def test_the_scan_finds_a_value_formatted_into_sql() -> None:
    planted = (
        "conn.execute(text(f\"SELECT * FROM trades WHERE symbol = '{symbol}'\"))\n"
        "conn.exec_driver_sql(\"DELETE FROM ohlcv WHERE symbol = '%s'\" % symbol)\n"
        'conn.exec_driver_sql("SELECT {}".format(value))\n'
        'conn.exec_driver_sql(f"PRAGMA busy_timeout={TIMEOUT_MS:d}")\n'
    )
    assert sorted(line.split(":")[1] for line in _offenders(planted, "planted.py")) == ["1", "2", "3"]
