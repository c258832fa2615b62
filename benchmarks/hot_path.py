"""``python -m benchmarks --hot-path``: the calls a bot makes on every tick, tradestore vs the raw driver.

Each row is one unit of work in its own transaction. tradestore runs it as a bot does (a session
from ``db.get_session()``, a repository call); the raw side runs the same statements in the same
transaction shape on the same tables, by hand on one aiosqlite / asyncpg connection. The two
sides alternate in rounds (which one goes first rotates), every unit is timed alone, and the
figure is the median. Before a row is reported, what each side wrote (or read) is compared.

To add a row: write the tradestore call and the raw statements as two ``async def`` taking
``(env, i)`` (unit ``i`` of the run; use ``env.tag`` to keep the two sides' rows apart), an
optional ``prepare`` that stores what the units need (e.g. rows to close), and a ``check`` that
compares the two sides' rows; then add a :class:`Case` to :data:`CASES`. That is all.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import re
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiosqlite
import asyncpg

from benchmarks import data
from tradestore import (
    Bot,
    BotRepository,
    DatabaseManager,
    Decision,
    DecisionRepository,
    EquityRepository,
    EquitySnapshot,
    Fill,
    OHLCVRepository,
    Order,
    OrderRepository,
    Position,
    PositionRepository,
    SystemEventRepository,
    Trade,
    TradeRepository,
)
from tradestore.repositories.orders import average_price
from tradestore.values import datetime_to_sqlite, json_dumps

GOAL = 1.5
#: Units of each side run before timing starts (statement caches, prepared statements, pages).
WARM = 5
T0 = datetime(2024, 1, 1, tzinfo=UTC)


# --- the raw side -----------------------------------------------------------------------


class RawDriver:
    """One connection of the driver alone, and the conversions tradestore's column types make.

    SQL is written once with ``$1``-style parameters; SQLite runs it as ``?1``.
    """

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.url = url
        self.sqlite: aiosqlite.Connection | None = None
        self.pg: asyncpg.Connection | None = None
        self._sql: dict[str, str] = {}

    async def open(self) -> None:
        if self.backend == "sqlite":
            self.sqlite = await aiosqlite.connect(self.url, isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000", "cache_size=-65536"):
                await self.sqlite.execute_fetchall(f"PRAGMA {pragma}")
        else:
            self.pg = await asyncpg.connect(self.url, server_settings={"timezone": "UTC"})

    async def close(self) -> None:
        if self.sqlite is not None:
            await self.sqlite.close()
        if self.pg is not None:
            await self.pg.close()

    def value(self, value: Any) -> Any:
        """``value`` as the column types store it: text on SQLite, native on PostgreSQL; JSON as text."""
        if isinstance(value, dict):
            return json_dumps(value)
        if self.backend == "sqlite":
            if isinstance(value, Decimal):
                return str(value)
            if isinstance(value, datetime):
                return datetime_to_sqlite(value)
        return value

    async def transaction(self, body: Callable[[], Awaitable[Any]]) -> Any:
        """``body()`` in one transaction: ``BEGIN IMMEDIATE`` … ``COMMIT`` on SQLite, ``BEGIN`` … on PostgreSQL."""
        if self.sqlite is not None:
            await self.sqlite.execute_fetchall("BEGIN IMMEDIATE")
            try:
                result = await body()
            except BaseException:
                await self.sqlite.rollback()
                raise
            await self.sqlite.commit()
            return result
        assert self.pg is not None
        async with self.pg.transaction():
            return await body()

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        """Every row of ``sql``, its arguments converted by :meth:`value`."""
        values = [self.value(a) for a in args]
        if self.sqlite is not None:
            qmark = self._sql.get(sql)
            if qmark is None:
                qmark = self._sql[sql] = re.sub(r"\$(\d+)", r"?\1", sql)
            return list(await self.sqlite.execute_fetchall(qmark, values))
        assert self.pg is not None
        return list(await self.pg.fetch(sql, *values))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        rows = await self.fetch(sql, *args)
        return rows[0][0] if rows else None


@dataclass
class Env:
    """One backend: the manager, the raw connection, and what the units of a case share."""

    backend: str
    db: DatabaseManager
    raw: RawDriver
    tag: str = ""  # "ts" or "raw": the side running now, to keep their rows apart
    state: dict[str, Any] = field(default_factory=dict)


# --- the units of work --------------------------------------------------------------------


def a_trade(env: Env, i: int, prefix: str) -> Trade:
    return Trade(
        trade_id=f"{prefix}-{env.tag}-{i}",
        symbol="BTCUSDT",
        exchange="binance",
        side="long",
        action="open",
        entry_price=Decimal("50123.45"),
        quantity=Decimal("0.015"),
        entry_time=T0 + timedelta(seconds=i),
        fee=Decimal("0.0375"),
        strategy="breakout",
        bot_id="bench",
        metadata={"order": i, "signal": "0.82"},
    )


_TRADE_COLUMNS = (
    "trade_id", "symbol", "exchange", "side", "action", "entry_price", "quantity", "entry_time", "leverage",
    "exit_price", "exit_time", "realized_pnl", "realized_pnl_pct", "fee", "signal_score", "strategy", "bot_id",
    "mode", "metadata", "created_at", "updated_at",
)  # fmt: skip
_INSERT_TRADE = (
    f"INSERT INTO trades ({', '.join(_TRADE_COLUMNS)}) "
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(_TRADE_COLUMNS) + 1))}) "
    "ON CONFLICT DO NOTHING RETURNING id"
)
_CLOSE_TRADE = (
    "UPDATE trades SET exit_price = $1, exit_time = $2, realized_pnl = $3, action = $4, updated_at = $5 "
    "WHERE id = $6 AND updated_at < $5 RETURNING id"
)
_INSERT_EVENT = (
    "INSERT INTO system_events (event_type, severity, message, details, symbol, trade_id, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"
)
_LATEST = (
    "SELECT time, open, high, low, close, volume, quote_volume, trades_count FROM ohlcv "
    "WHERE series_id = (SELECT id FROM ohlcv_series WHERE exchange = $1 AND symbol = $2 AND timeframe = $3) "
    "ORDER BY time DESC LIMIT $4"
)
_POSITION_COLUMNS = (
    "symbol", "exchange", "side", "entry_price", "quantity", "margin", "entry_time", "current_price",
    "unrealized_pnl", "status", "leverage", "liquidation_price", "bot_id", "mode", "closed_at", "updated_at",
)  # fmt: skip
_UPSERT_POSITION = (
    f"INSERT INTO positions ({', '.join(_POSITION_COLUMNS)}) "
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(_POSITION_COLUMNS) + 1))}) "
    "ON CONFLICT (exchange, symbol, coalesce(bot_id, ''), mode) WHERE status = 'open' DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _POSITION_COLUMNS if c not in ("exchange", "symbol", "bot_id", "mode"))
    + " RETURNING id"
)
_CLOSE_POSITION = (
    "UPDATE positions SET status = 'closed', closed_at = $1, updated_at = $1 "
    "WHERE id = $2 AND status = 'open' RETURNING id"
)
_EXIT = {"exit_price": Decimal("50500.5"), "realized_pnl": Decimal("5.65425"), "action": "close"}


def _trade_args(t: Trade, now: datetime) -> list[Any]:
    return [getattr(t, c) for c in _TRADE_COLUMNS[:-2]] + [now, now]


# TradeRepository.insert
async def ts_insert(env: Env, i: int) -> int:
    async with env.db.get_session() as session:
        return await TradeRepository(session).insert(a_trade(env, i, "ins"))


async def raw_insert(env: Env, i: int) -> int:
    args = _trade_args(a_trade(env, i, "ins"), datetime.now(UTC))
    return int(await env.raw.transaction(lambda: env.raw.fetchval(_INSERT_TRADE, *args)))


# SystemEventRepository.log_event
_EVENT = ("order_filled", "info", "filled 0.015 BTCUSDT at 50123.45")


async def ts_log_event(env: Env, i: int) -> int:
    async with env.db.get_session() as session:
        return await SystemEventRepository(session).log_event(
            *_EVENT, details={"unit": i, "side": env.tag}, symbol="BTCUSDT", trade_id=f"ev-{env.tag}-{i}"
        )


async def raw_log_event(env: Env, i: int) -> int:
    args = (*_EVENT, {"unit": i, "side": env.tag}, "BTCUSDT", f"ev-{env.tag}-{i}", datetime.now(UTC))
    return int(await env.raw.transaction(lambda: env.raw.fetchval(_INSERT_EVENT, *args)))


# TradeRepository.update: close an open trade
async def open_trades(env: Env, units: int) -> None:
    """``units`` open trades for each side to close, one per unit."""
    for tag in ("ts", "raw"):
        env.tag = tag
        async with env.db.get_session() as session:
            await TradeRepository(session).insert_many(a_trade(env, i, "close") for i in range(units))
        rows = await env.raw.fetch("SELECT id FROM trades WHERE trade_id LIKE $1 ORDER BY id", f"close-{tag}-%")
        env.state[f"close-{tag}"] = [r[0] for r in rows]


async def ts_close(env: Env, i: int) -> None:
    trade_id = env.state[f"close-{env.tag}"][i]
    async with env.db.get_session() as session:
        await TradeRepository(session).update(trade_id, exit_time=datetime.now(UTC), **_EXIT)


async def raw_close(env: Env, i: int) -> None:
    trade_id, now = env.state[f"close-{env.tag}"][i], datetime.now(UTC)
    args = (_EXIT["exit_price"], now, _EXIT["realized_pnl"], _EXIT["action"], now, trade_id)
    assert await env.raw.transaction(lambda: env.raw.fetchval(_CLOSE_TRADE, *args)) == trade_id


# PositionRepository.update_position (create or update the open position) and close_position
def a_position(env: Env, i: int) -> Position:
    return Position(
        symbol=f"{env.tag.upper()}{i % 20}USDT",  # 20 symbols: most calls update an open position
        exchange="binance",
        side="long",
        entry_price=Decimal("50123.45"),
        quantity=Decimal("0.015"),
        margin=Decimal("150.37"),
        entry_time=T0,
        current_price=Decimal("50200") + i,
        unrealized_pnl=Decimal("1.1655"),
        bot_id="bench",
    )


async def ts_position(env: Env, i: int) -> int:
    async with env.db.get_session() as session:
        return await PositionRepository(session).update_position(a_position(env, i))


async def raw_position(env: Env, i: int) -> int:
    p, now = a_position(env, i), datetime.now(UTC)
    args = [getattr(p, c) for c in _POSITION_COLUMNS[:-1]] + [now]
    return int(await env.raw.transaction(lambda: env.raw.fetchval(_UPSERT_POSITION, *args)))


async def open_positions(env: Env, units: int) -> None:
    for tag in ("ts", "raw"):
        env.tag = tag
        ids = []
        async with env.db.get_session() as session:
            repo = PositionRepository(session)
            for i in range(units):
                position = a_position(env, i)
                position.symbol = f"CLOSE-{tag}-{i}"
                ids.append(await repo.update_position(position))
        env.state[f"positions-{tag}"] = ids


async def ts_close_position(env: Env, i: int) -> None:
    async with env.db.get_session() as session:
        await PositionRepository(session).close_position(env.state[f"positions-{env.tag}"][i])


async def raw_close_position(env: Env, i: int) -> None:
    position_id, now = env.state[f"positions-{env.tag}"][i], datetime.now(UTC)
    assert await env.raw.transaction(lambda: env.raw.fetchval(_CLOSE_POSITION, now, position_id)) == position_id


# BotRepository.heartbeat: the bot is alive, with its balance
_HEARTBEAT = "UPDATE bots SET last_heartbeat = $1, updated_at = $2, balance = $3 WHERE bot_id = $4 RETURNING id"


async def register_bots(env: Env, units: int) -> None:
    async with env.db.get_session() as session:
        for tag in ("ts", "raw"):
            await BotRepository(session).register(Bot(f"hb-{tag}", strategy="grid"))


async def ts_heartbeat(env: Env, i: int) -> None:
    async with env.db.get_session() as session:
        await BotRepository(session).heartbeat(f"hb-{env.tag}", balance=Decimal("1000.25") + i)


async def raw_heartbeat(env: Env, i: int) -> None:
    now = datetime.now(UTC)
    args = (now, now, Decimal("1000.25") + i, f"hb-{env.tag}")
    assert await env.raw.transaction(lambda: env.raw.fetchval(_HEARTBEAT, *args)) is not None


async def check_heartbeats(env: Env, units: int) -> None:
    await same_rows(env, "SELECT status, balance, strategy FROM bots WHERE bot_id LIKE $1", 1, "hb-{tag}")


# EquityRepository.record: one equity snapshot (an upsert on bot, mode and timestamp)
_RECORD = (
    "INSERT INTO equity_snapshots (bot_id, mode, timestamp, equity, balance, unrealized_pnl, open_positions, metadata)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (bot_id, mode, timestamp) DO UPDATE SET"
    " equity = excluded.equity, balance = excluded.balance, unrealized_pnl = excluded.unrealized_pnl,"
    " open_positions = excluded.open_positions, metadata = excluded.metadata RETURNING id"
)


def a_snapshot(env: Env, i: int) -> EquitySnapshot:
    return EquitySnapshot(
        f"eq-{env.tag}",
        T0 + timedelta(minutes=i),
        Decimal("1000.25") + i,
        balance=Decimal("990.5"),
        unrealized_pnl=Decimal("9.75"),
        open_positions=2,
    )


async def ts_equity_record(env: Env, i: int) -> int:
    async with env.db.get_session() as session:
        return await EquityRepository(session).record(a_snapshot(env, i))


async def raw_equity_record(env: Env, i: int) -> int:
    s = a_snapshot(env, i)
    args = (s.bot_id, s.mode, s.timestamp, s.equity, s.balance, s.unrealized_pnl, s.open_positions, None)
    return int(await env.raw.transaction(lambda: env.raw.fetchval(_RECORD, *args)))


async def check_snapshots(env: Env, units: int) -> None:
    sql = (
        "SELECT mode, timestamp, equity, balance, unrealized_pnl, open_positions FROM equity_snapshots "
        "WHERE bot_id LIKE $1 ORDER BY timestamp"
    )
    await same_rows(env, sql, units, "eq-{tag}")


# One bot iteration: get_latest(50) + insert + close + log_event, one transaction
async def store_bars(env: Env, units: int) -> None:
    async with env.db.get_session() as session:
        await OHLCVRepository(session).upsert_many(data.make_bars(1_000))


async def ts_iteration(env: Env, i: int) -> list[Decimal]:
    async with env.db.get_session() as session:
        bars = await OHLCVRepository(session).get_latest(data.SYMBOL, "1m", limit=50)
        trades = TradeRepository(session)
        trade_id = await trades.insert(a_trade(env, i, "it"))
        await trades.update(trade_id, exit_time=datetime.now(UTC), **_EXIT)
        await SystemEventRepository(session).log_event(
            *_EVENT, details={"unit": i, "side": env.tag}, symbol="BTCUSDT", trade_id=f"it-{env.tag}-{i}"
        )
    return [b.close for b in bars]


async def raw_iteration(env: Env, i: int) -> list[Decimal]:
    raw, t = env.raw, a_trade(env, i, "it")
    decimal = Decimal if env.backend == "sqlite" else (lambda v: v)

    async def body() -> list[Decimal]:
        rows = await raw.fetch(_LATEST, "binance", data.SYMBOL, "1m", 50)
        now = datetime.now(UTC)
        trade_id = await raw.fetchval(_INSERT_TRADE, *_trade_args(t, now))
        now = datetime.now(UTC)
        args = (_EXIT["exit_price"], now, _EXIT["realized_pnl"], _EXIT["action"], now, trade_id)
        await raw.fetchval(_CLOSE_TRADE, *args)
        details = {"unit": i, "side": env.tag}
        await raw.fetchval(_INSERT_EVENT, *_EVENT, details, "BTCUSDT", f"it-{env.tag}-{i}", datetime.now(UTC))
        return [decimal(r[4]) for r in reversed(rows)]

    return await raw.transaction(body)  # type: ignore[no-any-return]


# DecisionRepository.record: one decision with its per-strategy signals and an indicators snapshot
_SIGNALS = {"sentiment": {"signal": "BUY", "confidence": "0.9"}, "technical": {"signal": "BUY", "confidence": "0.8"}}
_DECISION_COLUMNS = (
    "bot_id", "symbol", "exchange", "action", "timestamp", "mode", "price", "confidence", "strategy",
    "strategy_version", "bot_version", "aggregation", "signals", "indicators", "rationale", "model", "trade_id",
    "metadata",
)  # fmt: skip
_INSERT_DECISION = (
    f"INSERT INTO decisions ({', '.join(_DECISION_COLUMNS)}, content_key, created_at) "
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(_DECISION_COLUMNS) + 3))}) RETURNING id"
)


def a_decision(env: Env, i: int) -> Decision:
    return Decision(
        f"dec-{env.tag}-{i}", "BTCUSDT", "buy", T0 + timedelta(seconds=i), price=Decimal("50123.45"),
        confidence=Decimal("0.85"), strategy="ensemble", strategy_version="a3f9c2d1", bot_version="1.0.0",
        aggregation="weighted_average", signals=_SIGNALS, indicators={"rsi_14": "61.25", "unit": i},
        exchange="binance",
    )  # fmt: skip


async def ts_decision_record(env: Env, i: int) -> int:
    async with env.db.get_session() as session:
        return await DecisionRepository(session).record(a_decision(env, i))


async def raw_decision_record(env: Env, i: int) -> int:
    d = a_decision(env, i)
    args = [getattr(d, c) for c in _DECISION_COLUMNS]
    key = hashlib.sha256(json.dumps(args, default=str, sort_keys=True).encode()).hexdigest()  # its content key
    args += [key, datetime.now(UTC)]
    return int(await env.raw.transaction(lambda: env.raw.fetchval(_INSERT_DECISION, *args)))


async def check_decisions(env: Env, units: int) -> None:
    sql = (
        "SELECT symbol, exchange, action, timestamp, mode, price, confidence, strategy, signals, indicators "
        "FROM decisions WHERE bot_id LIKE $1 ORDER BY timestamp"
    )
    await same_rows(env, sql, units, "dec-{tag}-%")


# OrderRepository.create, transition and record_fill
def an_order(env: Env, i: int, prefix: str) -> Order:
    return Order(
        f"{prefix}-{env.tag}-{i}", "BTC/USDT", "binance", "buy", "limit", Decimal("1"), price=Decimal("50123.45"),
        bot_id="bench", reason="signal",
    )  # fmt: skip


_ORDER_COLUMNS = (
    "client_order_id", "exchange", "symbol", "side", "order_type", "quantity", "price", "stop_price", "status",
    "exchange_order_id", "trade_id", "bot_id", "mode", "time_in_force", "reduce_only", "reason", "metadata",
    "filled_quantity", "filled_value", "fee_total", "created_at", "updated_at",
)  # fmt: skip
_INSERT_ORDER = (
    f"INSERT INTO orders ({', '.join(_ORDER_COLUMNS)}) "
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(_ORDER_COLUMNS) + 1))}) "
    "ON CONFLICT (exchange, client_order_id) DO NOTHING RETURNING id"
)
_INSERT_HISTORY = "INSERT INTO order_history (order_id, status, reason, at) VALUES ($1, $2, $3, $4)"
_SUBMIT = (
    "UPDATE orders SET status = 'submitted', updated_at = $1, exchange_order_id = $2 "
    "WHERE id = $3 AND status IN ('new') RETURNING *"
)
_LOCK_ORDER = (
    "SELECT id, symbol, side, status, quantity, filled_quantity, filled_value, fee_total FROM orders "
    "WHERE exchange = $1 AND client_order_id = $2"
)
_FILL_COLUMNS = (
    "exchange", "symbol", "client_order_id", "exchange_trade_id", "side", "price", "quantity", "timestamp", "fee",
    "fee_currency", "liquidity", "order_id", "created_at",
)  # fmt: skip
_INSERT_FILL = (
    f"INSERT INTO fills ({', '.join(_FILL_COLUMNS)}) "
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(_FILL_COLUMNS) + 1))}) "
    "ON CONFLICT (exchange, client_order_id, exchange_trade_id) DO NOTHING RETURNING id"
)
_FILL_ORDER = (
    "UPDATE orders SET filled_quantity = $1, filled_value = $2, average_fill_price = $3, fee_total = $4, "
    "status = $5, updated_at = $6 WHERE id = $7 AND status IN ('submitted', 'open', 'partially_filled', "
    "'pending_cancel', 'canceled', 'expired')"
)


def _order_args(o: Order, now: datetime) -> list[Any]:
    store_kept = [Decimal(0), Decimal(0), Decimal(0), now, now]
    return [getattr(o, c) for c in _ORDER_COLUMNS[:-5]] + store_kept


async def ts_create_order(env: Env, i: int) -> int:
    async with env.db.get_session() as session:
        return await OrderRepository(session).create(an_order(env, i, "oc"))


async def raw_create_order(env: Env, i: int) -> int:
    o, now = an_order(env, i, "oc"), datetime.now(UTC)

    async def body() -> int:
        order_id = int(await env.raw.fetchval(_INSERT_ORDER, *_order_args(o, now)))
        await env.raw.fetch(_INSERT_HISTORY, order_id, o.status, o.reason, now)
        return order_id

    return await env.raw.transaction(body)  # type: ignore[no-any-return]


def new_orders(prefix: str, *, submitted: bool) -> Callable[[Env, int], Awaitable[None]]:
    """``units`` orders for each side, new or submitted, one per unit."""

    async def prepare(env: Env, units: int) -> None:
        for tag in ("ts", "raw"):
            env.tag = tag
            ids = []
            async with env.db.get_session() as session:
                repo = OrderRepository(session)
                for i in range(units):
                    ids.append(await repo.create(an_order(env, i, prefix)))
                    if submitted:
                        await repo.transition(ids[-1], "submitted", exchange_order_id=f"x{i}")
            env.state[f"{prefix}-{tag}"] = ids

    return prepare


async def ts_transition(env: Env, i: int) -> None:
    async with env.db.get_session() as session:
        await OrderRepository(session).transition(env.state[f"ot-{env.tag}"][i], "submitted", exchange_order_id=f"x{i}")


async def raw_transition(env: Env, i: int) -> None:
    order_id, now = env.state[f"ot-{env.tag}"][i], datetime.now(UTC)

    async def body() -> None:
        assert await env.raw.fetch(_SUBMIT, now, f"x{i}", order_id)
        await env.raw.fetch(_INSERT_HISTORY, order_id, "submitted", None, now)

    await env.raw.transaction(body)


def a_fill(env: Env, i: int) -> Fill:
    return Fill(
        "binance", "BTC/USDT", f"of-{env.tag}-{i}", f"t{i}", "buy", Decimal("50120.5"), Decimal("0.4"),
        T0 + timedelta(seconds=i), fee=Decimal("0.0200482"), fee_currency="USDT", liquidity="taker",
    )  # fmt: skip


async def ts_record_fill(env: Env, i: int) -> bool:
    async with env.db.get_session() as session:
        return await OrderRepository(session).record_fill(a_fill(env, i))


async def raw_record_fill(env: Env, i: int) -> bool:
    """The same statements by hand: lock the order, insert the fill, update the order, its history."""
    raw, f = env.raw, a_fill(env, i)
    decimal = Decimal if env.backend == "sqlite" else (lambda v: v)
    lock = _LOCK_ORDER + ("" if env.backend == "sqlite" else " FOR UPDATE")

    async def body() -> bool:
        (order_id, _, _, status, quantity, filled, value, fees), *_ = await raw.fetch(
            lock, f.exchange, f.client_order_id
        )
        now = datetime.now(UTC)
        values = [getattr(f, c) for c in _FILL_COLUMNS[:-2]]
        assert await raw.fetchval(_INSERT_FILL, *values, order_id, now) is not None
        filled = decimal(filled) + f.quantity
        value = decimal(value) + f.price * f.quantity
        state = "filled" if filled == decimal(quantity) else "partially_filled"
        args = (filled, value, average_price(value, filled), decimal(fees) + f.fee, state, now, order_id)
        await raw.fetch(_FILL_ORDER, *args)
        if state != status:
            await raw.fetch(_INSERT_HISTORY, order_id, state, f"fill {f.exchange_trade_id}", f.timestamp)
        return True

    return await raw.transaction(body)  # type: ignore[no-any-return]


# --- checks: both sides wrote (or read) the same ------------------------------------------


async def same_rows(env: Env, sql: str, count: int, pattern: str = "%-{tag}-%") -> None:
    """``sql`` (``$1``: ``pattern`` for the side) gives ``count`` rows, equal on both sides."""
    found = {tag: await env.raw.fetch(sql, pattern.format(tag=tag)) for tag in ("ts", "raw")}
    for tag, rows in found.items():
        if len(rows) != count:
            raise AssertionError(f"{tag}: {len(rows)} rows, expected {count}: {sql}")
    ts_rows = [tuple(_comparable(v) for v in r) for r in found["ts"]]
    raw_rows = [tuple(_comparable(v) for v in r) for r in found["raw"]]
    if ts_rows != raw_rows:
        raise AssertionError(f"tradestore and raw rows differ: {ts_rows[:1]} vs {raw_rows[:1]}")


def _comparable(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("{"):
        return json.loads(value)  # JSON text: compare the document
    return str(value)


_TRADE_CHECK = (
    "SELECT symbol, exchange, side, action, entry_price, quantity, entry_time, leverage, exit_price, "
    "realized_pnl, fee, strategy, bot_id, mode, metadata, exit_time IS NULL FROM trades WHERE trade_id LIKE $1 "
    "ORDER BY entry_time"
)
_EVENT_CHECK = (
    "SELECT event_type, severity, message, symbol, details FROM system_events WHERE trade_id LIKE $1 ORDER BY id"
)


def check_trades(prefix: str) -> Callable[[Env, int], Awaitable[None]]:
    async def check(env: Env, units: int) -> None:
        await same_rows(env, _TRADE_CHECK, units, prefix + "-{tag}-%")

    return check


def check_events(prefix: str) -> Callable[[Env, int], Awaitable[None]]:
    async def check(env: Env, units: int) -> None:
        sql = _EVENT_CHECK.replace("details", "details IS NULL")  # details name the side: compare their presence
        await same_rows(env, sql, units, prefix + "-{tag}-%")

    return check


async def check_positions(env: Env, units: int) -> None:
    sql = (
        "SELECT replace(replace(symbol, 'RAW', ''), 'TS', '') AS s, side, entry_price, quantity, margin, "
        "current_price, status FROM positions WHERE symbol LIKE $1 ORDER BY s"
    )
    found = {tag: await env.raw.fetch(sql, f"{tag.upper()}%") for tag in ("ts", "raw")}
    if len(found["ts"]) != min(units, 20) or [tuple(map(str, r)) for r in found["ts"]] != [
        tuple(map(str, r)) for r in found["raw"]
    ]:
        raise AssertionError(f"positions differ: {found['ts'][:1]} vs {found['raw'][:1]}")


async def check_closed_positions(env: Env, units: int) -> None:
    sql = "SELECT status, closed_at IS NULL FROM positions WHERE symbol LIKE $1 ORDER BY id"
    await same_rows(env, sql, units, "CLOSE-{tag}-%")


_ORDER_CHECK = (
    "SELECT symbol, side, quantity, price, status, exchange_order_id, filled_quantity, filled_value, "
    "average_fill_price, fee_total, reason FROM orders WHERE client_order_id LIKE $1 ORDER BY id"
)
_HISTORY_CHECK = (
    "SELECT h.status, h.reason FROM order_history h JOIN orders o ON o.id = h.order_id "
    "WHERE o.client_order_id LIKE $1 ORDER BY h.id"
)
_FILL_CHECK = (
    "SELECT price, quantity, fee, fee_currency, timestamp FROM fills WHERE client_order_id LIKE $1 ORDER BY id"
)


def check_orders(prefix: str, history: int, fills: int = 0) -> Callable[[Env, int], Awaitable[None]]:
    """Both sides' orders of ``prefix`` agree, with ``history`` history rows and ``fills`` fills each."""

    async def check(env: Env, units: int) -> None:
        pattern = prefix + "-{tag}-%"
        await same_rows(env, _ORDER_CHECK, units, pattern)
        await same_rows(env, _HISTORY_CHECK, history * units, pattern)
        await same_rows(env, _FILL_CHECK, fills * units, pattern)

    return check


async def check_iteration(env: Env, units: int) -> None:
    await check_trades("it")(env, units)
    await check_events("it")(env, units)


# --- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One row: one unit of work, through tradestore and through the raw driver."""

    name: str
    tradestore: Callable[[Env, int], Awaitable[Any]]
    raw: Callable[[Env, int], Awaitable[Any]]
    check: Callable[[Env, int], Awaitable[None]]
    prepare: Callable[[Env, int], Awaitable[None]] | None = None
    #: Compare what unit ``i`` returned on both sides (reads); ``None``: nothing to compare.
    same_result: bool = False


#: The rows of the README's hot-path table. New single-row calls are added here.
CASES: list[Case] = [
    Case("`TradeRepository.insert`", ts_insert, raw_insert, check_trades("ins")),
    Case("`SystemEventRepository.log_event`", ts_log_event, raw_log_event, check_events("ev")),
    Case("`DecisionRepository.record`", ts_decision_record, raw_decision_record, check_decisions),
    Case("`TradeRepository.update` (close a trade)", ts_close, raw_close, check_trades("close"), open_trades),
    Case("`PositionRepository.update_position`", ts_position, raw_position, check_positions),
    Case(
        "`PositionRepository.close_position`",
        ts_close_position,
        raw_close_position,
        check_closed_positions,
        open_positions,
    ),
    Case("`BotRepository.heartbeat` (with the balance)", ts_heartbeat, raw_heartbeat, check_heartbeats, register_bots),
    Case("`EquityRepository.record`", ts_equity_record, raw_equity_record, check_snapshots),
    Case("`OrderRepository.create`", ts_create_order, raw_create_order, check_orders("oc", 1)),
    Case(
        "`OrderRepository.transition` (new → submitted)",
        ts_transition,
        raw_transition,
        check_orders("ot", 2),
        new_orders("ot", submitted=False),
    ),
    Case(
        "`OrderRepository.record_fill` (a new fill)",
        ts_record_fill,
        raw_record_fill,
        check_orders("of", 3, fills=1),
        new_orders("of", submitted=True),
    ),
    Case(
        "one bot iteration: `get_latest(50)` + insert + close + log_event",
        ts_iteration,
        raw_iteration,
        check_iteration,
        store_bars,
        same_result=True,
    ),
]


@dataclass(frozen=True)
class Figure:
    """One case on one backend: medians per unit of work, in µs."""

    backend: str
    case: str
    tradestore: float
    raw: float
    tradestore_cpu: float
    raw_cpu: float

    @property
    def ratio(self) -> float:
        return self.tradestore / self.raw

    @property
    def met(self) -> bool:
        return self.ratio <= GOAL


async def measure(env: Env, case: Case, units: int, rounds: int) -> Figure:
    """Medians per unit of work, tradestore and raw, over ``rounds`` alternating rounds.

    Wall time is the figure; the event loop thread's CPU time is kept beside it, to tell what
    tradestore's own code costs from what waiting (for aiosqlite's thread, for the server) costs.
    """
    total = units + WARM  # the first units of each side warm caches and pages: run, checked, not timed
    if case.prepare is not None:
        await case.prepare(env, total)
    sides = {"ts": case.tradestore, "raw": case.raw}
    wall: dict[str, list[float]] = {"ts": [], "raw": []}
    cpu: dict[str, list[float]] = {"ts": [], "raw": []}
    results: dict[str, Any] = {}
    for tag in sides:
        env.tag = tag
        for i in range(WARM):
            await sides[tag](env, i)
    per_round = max(1, units // rounds)
    done = {"ts": WARM, "raw": WARM}
    for round_ in range(rounds):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for tag in order:
            env.tag = tag
            run = sides[tag]
            gc.collect()
            end = total if round_ == rounds - 1 else done[tag] + per_round
            for i in range(done[tag], end):
                started, used = time.perf_counter(), time.thread_time()
                results[tag] = await run(env, i)
                cpu[tag].append(time.thread_time() - used)
                wall[tag].append(time.perf_counter() - started)
            done[tag] = end
    if case.same_result and results["ts"] != results["raw"]:
        raise AssertionError(f"{case.name}: tradestore returned {results['ts']!r}, raw {results['raw']!r}")
    await case.check(env, total)
    med = statistics.median
    return Figure(
        env.backend,
        case.name,
        med(wall["ts"]) * 1e6,
        med(wall["raw"]) * 1e6,
        med(cpu["ts"]) * 1e6,
        med(cpu["raw"]) * 1e6,
    )


async def run_backend(backend: str, url: str, raw_url: str, args: argparse.Namespace, log: Any) -> list[Figure]:
    db = DatabaseManager(url)
    raw = RawDriver(backend, raw_url)
    figures = []
    await db.connect()
    try:
        await db.create_all()
        await raw.open()
        env = Env(backend, db, raw)
        for case in CASES:
            f = await measure(env, case, args.hot_units, args.hot_rounds)
            log(f"{backend}: {case.name}: {f.tradestore:,.0f} / {f.raw:,.0f} µs ({f.ratio:.2f}x)")
            figures.append(f)
    finally:
        await raw.close()
        await db.drop_all()
        await db.disconnect()
    return figures


def table(figures: list[Figure], *, cpu: bool = False) -> str:
    """The README's hot-path table, both backends side by side (``cpu``: the CPU-time table)."""
    names = list(dict.fromkeys(f.case for f in figures))
    backends = list(dict.fromkeys(f.backend for f in figures))
    title = "CPU of the event loop's thread per unit" if cpu else "unit of work (one transaction)"
    lines = [f"| {title} | " + " | ".join(f"{b} tradestore / raw" for b in backends) + " |"]
    lines.append("|---|" + "---:|" * len(backends))
    for name in names:
        cells = []
        for b in backends:
            found = [f for f in figures if f.case == name and f.backend == b]
            if not found:
                cells.append("—")
            elif cpu:
                f = found[0]
                cells.append(f"{f.tradestore_cpu:,.0f} / {f.raw_cpu:,.0f} µs")
            else:
                f = found[0]
                ratio = f"{f.ratio:.2f}x" if f.met else f"**{f.ratio:.2f}x**"
                cells.append(f"{f.tradestore:,.0f} / {f.raw:,.0f} µs ({ratio})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


NOTES = """\
- one unit of work = one transaction: a session of `db.get_session()` and the repository call(s), vs
  the same statements by hand on one aiosqlite / asyncpg connection (`BEGIN IMMEDIATE` / `BEGIN` …
  `COMMIT`), on the same tables; medians of {units} units per side, in {rounds} alternating rounds,
  after {warm} untimed units per side; each side's rows compared before the row is reported.
  Ratio: tradestore ÷ raw wall time; goal ≤ {goal}x (bold: missed).
- tradestore's figure includes what the raw side does not do: the pool's checkout and return, and
  the `AsyncSession` (begin, commit, close). Both sides build and validate the same domain objects.
- CPU: time the event loop's thread spent per unit (median): tradestore's own cost; the rest of the
  wall time is waiting (for aiosqlite's thread, for the server, for the 2 shared cores)."""


async def main(args: argparse.Namespace, log: Any, sqlite_url: str | None, pg_url: str | None) -> list[Figure]:
    """Every case on each backend given (``None``: skipped)."""
    rows: list[Figure] = []
    if sqlite_url is not None:
        rows += await run_backend("sqlite", f"sqlite+aiosqlite:///{sqlite_url}", sqlite_url, args, log)
    if pg_url is not None:
        rows += await run_backend("postgresql", pg_url, pg_url, args, log)
    return rows
