"""``TradeRepository``: trades one at a time, and their statistics computed by the database."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, case, func, select, update
from sqlalchemy.sql.expression import ColumnElement

from tradestore.dialects import Backend, NetGroup, backend
from tradestore.domain import ACTIONS, MODES, SIDES, TRADE_STATUSES, Trade, TradeStatistics
from tradestore.domain.trading import check_trade_move, trade_move_sources
from tradestore.errors import DuplicateError, InvalidTransitionError, NotFoundError, ValidationError
from tradestore.models import TradeModel
from tradestore.repositories.base import Repository, all_of, duplicates_raise
from tradestore.values import (
    EXACT,
    since,
    to_count,
    to_decimal,
    to_id,
    to_optional_decimal,
    to_optional_utc,
    to_text,
    to_utc,
)

TABLE = cast(Table, TradeModel.__table__)
_FIELDS = tuple(f.name for f in dataclasses.fields(Trade))
#: Fields ``update()`` may change: everything but the keys and timestamps the store keeps.
UPDATABLE = tuple(name for name in _FIELDS if name not in ("id", "created_at", "updated_at"))
_EIGHT_PLACES = Decimal("0.00000001")
_JUST_AFTER = timedelta(microseconds=1)
#: A valid trade whose fields ``update()`` replaces, to validate new values exactly as
#: ``Trade`` does without reading the stored row first.
_TEMPLATE = Trade("-", "-", "-", SIDES[0], ACTIONS[0], Decimal(1), Decimal(1), datetime(2000, 1, 1, tzinfo=UTC))


# The single-row statements, built once; values come as parameters (``b_…``: not columns).
_BY_ID = select(TABLE).where(TABLE.c.id == bindparam("b_id"))
_UPDATED_AT = select(TABLE.c.updated_at).where(TABLE.c.id == bindparam("b_id"))
_KEY = select(TABLE.c.exchange, TABLE.c.trade_id).where(TABLE.c.id == bindparam("b_id"))
_TAKEN = select(TABLE.c.id).where(
    TABLE.c.exchange == bindparam("b_exchange"),
    TABLE.c.trade_id == bindparam("b_trade_id"),
    TABLE.c.id != bindparam("b_id"),
)
_UPDATE = update(TABLE).where(TABLE.c.id == bindparam("b_id"))
#: The usual case of ``update()``: the stored ``updated_at`` is in the past.
_UPDATE_IF_OLDER = _UPDATE.where(TABLE.c.updated_at < bindparam("b_now")).returning(TABLE.c.id)
_BY_TRADE_ID = select(TABLE).where(
    TABLE.c.exchange == bindparam("b_exchange"), TABLE.c.trade_id == bindparam("b_trade")
)
_STATUS = select(TABLE.c.status).where(TABLE.c.id == bindparam("b_id"))
#: What ``close()`` computes from, the row locked until the transaction ends.
_LOCK_FOR_CLOSE = (
    select(TABLE.c.status, TABLE.c.side, TABLE.c.entry_price, TABLE.c.quantity, TABLE.c.entry_time)
    .where(TABLE.c.id == bindparam("b_id"))
    .with_for_update()
)
#: ``close()`` and ``cancel()``: ONE conditional UPDATE from the states the trade table allows.
_MOVE = {
    target: update(TABLE)
    .where(TABLE.c.id == bindparam("b_id"), TABLE.c.status.in_(trade_move_sources(target)))
    .returning(*TABLE.c)
    for target in ("closed", "cancelled")
}
#: The same for an update that closes the trade without an ``exit_time``: a stored one stays.
_CLOSE = _UPDATE.values(
    exit_time=func.coalesce(TABLE.c.exit_time, bindparam("b_exit_time", type_=TABLE.c.exit_time.type)),
    status=case((TABLE.c.status == "open", "closed"), else_=TABLE.c.status),
)
_CLOSE_IF_OLDER = _CLOSE.where(TABLE.c.updated_at < bindparam("b_now")).returning(TABLE.c.id)
#: Fields whose value, when not ``None``, closes a trade (and ``action`` other than ``open``).
_CLOSING = ("realized_pnl", "exit_price")


def _insert_new(db: Backend) -> Any:
    """Insert a trade unless its key is stored: a duplicate skips the row instead of failing
    the statement, which on PostgreSQL would abort the whole transaction."""
    return db.insert(TABLE).on_conflict_do_nothing().returning(TABLE.c.id)


def _row_values(trade: Trade, now: datetime) -> dict[str, Any]:
    """The table row of a new ``trade`` (column names are the field names).

    A closed trade without an ``exit_time`` gets now (its ``entry_time`` if that is later), and
    status ``closed`` if it was left ``open``.
    """
    values = {name: getattr(trade, name) for name in UPDATABLE}
    if trade.is_closed:
        if trade.exit_time is None:
            values["exit_time"] = max(now, trade.entry_time)
        if trade.status == "open":  # stored with its exit: a closed trade, as close() leaves it
            values["status"] = "closed"
    return values | {"created_at": now, "updated_at": now}


def _closes(changed: Trade, fields: dict[str, Any]) -> bool:
    """Whether an update of ``fields`` closes the trade (``changed`` holds their validated values)."""
    return any(name in fields and getattr(changed, name) is not None for name in _CLOSING) or (
        "action" in fields and changed.action != "open"
    )


def _from_row(row: Row[Any]) -> Trade:
    values = row._mapping
    return Trade(**{name: values[name] for name in _FIELDS})


def _ratio(numerator: Decimal | int, denominator: Decimal | int) -> Decimal:
    """``numerator / denominator`` rounded half-up to 8 decimal places, exactly: rounded once, whatever the digits."""
    n, d = Decimal(numerator), Decimal(denominator)
    negative = (n < 0) != (d < 0)
    # Integer division of the scaled absolute values is exact in EXACT's unlimited precision.
    whole, rest = EXACT.divmod(EXACT.scaleb(n.copy_abs(), 8), d.copy_abs())
    if EXACT.compare(EXACT.multiply(rest, 2), d.copy_abs()) >= 0:
        whole = EXACT.add(whole, 1)
    result = EXACT.scaleb(whole, -8).quantize(_EIGHT_PLACES, rounding=ROUND_HALF_UP, context=EXACT)
    return EXACT.minus(result) if negative and result else result


class TradeRepository(Repository):
    """Trades of one session. ``exchange=None`` means the manager's default exchange.

    A closed trade (``realized_pnl`` or ``exit_price`` set, or an action other than ``open``)
    stored without ``exit_time`` gets ``exit_time`` = now (its ``entry_time`` if that is later,
    on insert), so that :meth:`get_statistics` counts it, and an ``open`` status becomes
    ``closed``, as :meth:`close` leaves it.
    """

    async def insert(self, trade: Trade) -> int:
        """Store a new trade and return its database id.

        A duplicate leaves the session's transaction usable (the insert is skipped, not failed).

        Raises:
            DuplicateError: the exchange already has a trade with this ``trade_id`` (also a
                ``sqlalchemy.exc.IntegrityError``); nothing was written.
        """
        if not isinstance(trade, Trade):
            raise ValidationError(f"trade: expected a Trade, got {trade!r}")
        trade = dataclasses.replace(trade)  # built anew: attributes changed since are checked as Trade() checks them
        statement = self._built("trades.insert", _insert_new)
        found = await self._scalar(statement, _row_values(trade, datetime.now(UTC)))
        if found is None:
            raise DuplicateError(
                f"trade_id: exchange {trade.exchange!r} already has a trade with trade_id {trade.trade_id!r}"
            )
        return int(found)

    async def insert_many(self, trades: Iterable[Trade]) -> int:
        """Store new trades in one round trip per chunk; all of them or, on any error, none.

        Returns:
            The number of trades inserted (0 for empty input). Their ids are not returned: read
            them back with :meth:`get_by_symbol` or insert one at a time with :meth:`insert`.

        Raises:
            ValidationError: an item is not a ``Trade``.
            DuplicateError: a ``(exchange, trade_id)`` is already stored or repeated (also a
                ``sqlalchemy.exc.IntegrityError``).
        """
        items = all_of(Trade, trades, "trades")
        if not items:
            return 0
        now = datetime.now(UTC)
        conn = await self.session.connection()
        with duplicates_raise("trades: a (exchange, trade_id) is already stored or repeated; nothing was written"):
            await backend(conn.dialect).write_rows(conn, TABLE, [_row_values(t, now) for t in items])
        return len(items)

    async def update(self, id: int, /, **fields: Any) -> None:
        """Change some fields of the trade with database id ``id``; ``updated_at`` moves.

        Every field but ``id``, ``created_at`` and ``updated_at`` may change, ``trade_id``
        included. An update that closes the trade without giving ``exit_time`` sets it to now,
        unless one is stored. One conditional ``UPDATE`` in the usual case; ``updated_at``
        becomes now, or one microsecond after its stored value when that is not in the past.

        Raises:
            ValidationError: an unknown or read-only field (``status`` moves by ``close()`` and
                ``cancel()`` only), or a bad value (nothing is written).
            NotFoundError: no trade has this id.
            DuplicateError: the new ``trade_id`` is another trade's on the same exchange (on
                PostgreSQL the session's transaction must then be rolled back).
        """
        if "status" in fields:  # the state machine has one door: close() and cancel()
            raise ValidationError(f"status: changed by close() and cancel() only, got {fields['status']!r}")
        for name in fields:
            if name not in UPDATABLE:
                raise ValidationError(f"{name}: not a field update() can change; allowed: {', '.join(UPDATABLE)}")
        changed = dataclasses.replace(_TEMPLATE, **fields)  # validates each new value like Trade() does
        values = {name: getattr(changed, name) for name in fields}
        key = to_id("id", id)
        now = datetime.now(UTC)
        if values.get("exit_time") is None and _closes(changed, fields):
            values.pop("exit_time", None)
            values["b_exit_time"] = now
            update_if_older, update_any = _CLOSE_IF_OLDER, _CLOSE
        else:
            update_if_older, update_any = _UPDATE_IF_OLDER, _UPDATE
        message = f"trade_id: another trade of this exchange has the trade_id {values.get('trade_id')!r}"
        if "trade_id" in values or "exchange" in values:
            # A key change (rare) is checked first: on PostgreSQL a failed UPDATE would abort the
            # whole transaction. A writer racing in between still gets the DuplicateError below.
            key_now = await self._one_or_none(_KEY, {"b_id": key})
            if key_now is not None:
                exchange, trade_id = values.get("exchange", key_now[0]), values.get("trade_id", key_now[1])
                taken = {"b_id": key, "b_exchange": exchange, "b_trade_id": trade_id}
                if await self._scalar(_TAKEN, taken) is not None:
                    raise DuplicateError(f"trade_id: {exchange} already has a trade {trade_id!r}")
        with duplicates_raise(message):
            if await self._scalar(update_if_older, {**values, "updated_at": now, "b_id": key, "b_now": now}):
                return
            stored = await self._scalar(_UPDATED_AT, {"b_id": key})
            if stored is None:
                raise NotFoundError(f"id: no trade with id {id!r}")
            await self._execute(update_any, {**values, "updated_at": stored + _JUST_AFTER, "b_id": key})

    async def get_by_id(self, id: int) -> Trade | None:
        """The trade with database id ``id``, or ``None``."""
        row = await self._one_or_none(_BY_ID, {"b_id": to_id("id", id)})
        return None if row is None else _from_row(row)

    async def get_recent(self, limit: int = 100) -> list[Trade]:
        """The ``limit`` most recently entered trades of every exchange, newest first."""
        statement = select(TABLE).order_by(TABLE.c.entry_time.desc(), TABLE.c.id.desc()).limit(to_count("limit", limit))
        return [_from_row(row) for row in await self._execute(statement)]

    async def get_by_symbol(self, symbol: str, limit: int = 100, exchange: str | None = None) -> list[Trade]:
        """The ``limit`` most recently entered trades of ``symbol`` on ``exchange``, newest first.

        ``exchange=None`` means the manager's default exchange, ``ALL_EXCHANGES`` every exchange.
        """
        statement = select(TABLE).where(TABLE.c.symbol == to_text("symbol", symbol))
        if (chosen := self._exchange_filter(exchange)) is not None:
            statement = statement.where(TABLE.c.exchange == chosen)
        statement = statement.order_by(TABLE.c.entry_time.desc(), TABLE.c.id.desc()).limit(to_count("limit", limit))
        return [_from_row(row) for row in await self._execute(statement)]

    async def get_statistics(
        self,
        days: int | float | None = 30,
        exchange: str | None = None,
        *,
        symbol: str | None = None,
        strategy: str | None = None,
        bot_id: str | None = None,
        mode: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> TradeStatistics:
        """Performance of the trades closed (``realized_pnl`` set) in the last ``days`` days.

        ``days=None`` means all time; ``exchange=None`` the manager's default exchange and
        ``ALL_EXCHANGES`` (``"*"``) every exchange; any other filter left at ``None`` means
        no filter; ``start``/``end`` bound ``exit_time`` (inclusive) on top of ``days``. Per
        trade, net = realized_pnl - fee; a trade wins when net > 0 and loses when net < 0.
        Sums, counts and extremes are exact; ``win_rate`` (percent), ``avg_win``, ``avg_loss``
        and ``profit_factor`` are the exact quotients rounded once,
        half-up, to 8 places. Losses are reported positive. ``profit_factor`` is ``None``
        when there is no loss.

        Raises:
            ValidationError: ``days`` negative, not finite, not a number or reaching before
                year 1, or a bad filter value.
        """
        t = TradeModel
        filters: list[ColumnElement[bool]] = [t.realized_pnl.is_not(None), t.exit_time.is_not(None)]
        if days is not None:
            filters.append(t.exit_time >= since("days", days, datetime.now(UTC)))
        if start is not None:
            filters.append(t.exit_time >= to_utc("start", start))
        if end is not None:
            filters.append(t.exit_time <= to_utc("end", end))
        if (chosen := self._exchange_filter(exchange)) is not None:
            filters.append(t.exchange == chosen)
        for column, value, name in (
            (t.symbol, symbol, "symbol"),
            (t.strategy, strategy, "strategy"),
            (t.bot_id, bot_id, "bot_id"),
            (t.mode, mode, "mode"),
        ):
            if value is not None:
                filters.append(column == to_text(name, value))
        conn = await self.session.connection()
        groups = await backend(conn.dialect).net_by_sign(conn, t.realized_pnl, t.fee, filters)
        zero = Decimal(0)
        nothing = NetGroup(0, zero, zero, zero, zero)
        won, lost, flat = (groups.get(sign, nothing) for sign in (1, -1, 0))
        wins, losses, total = won.count, lost.count, won.count + lost.count + flat.count
        # EXACT.minus: a plain unary minus rounds to the default 28 significant digits.
        gross_profit, gross_loss = won.total, EXACT.minus(lost.total) if losses else zero
        return TradeStatistics(
            total_trades=total,
            winning_trades=wins,
            losing_trades=losses,
            win_rate=_ratio(wins * 100, total) if total else _ratio(0, 1),
            gross_profit=gross_profit,
            gross_loss=gross_loss,
            net_pnl=EXACT.subtract(gross_profit, gross_loss),
            total_fees=EXACT.add(EXACT.add(won.cost, lost.cost), flat.cost),
            avg_win=_ratio(gross_profit, wins) if wins else _ratio(0, 1),
            avg_loss=_ratio(gross_loss, losses) if losses else _ratio(0, 1),
            largest_win=won.largest if wins else zero,
            largest_loss=EXACT.minus(lost.smallest) if losses else zero,
            profit_factor=_ratio(gross_profit, gross_loss) if gross_loss else None,
        )

    async def close(
        self,
        id: int,
        *,
        exit_price: Decimal | int | str | float,
        exit_time: datetime | None = None,
        realized_pnl: Decimal | int | str | float | None = None,
        fee: Decimal | int | str | float | None = None,
        exit_reason: str | None = None,
    ) -> Trade:
        """Close an open trade and return it as it now is: status ``closed``, action ``close``.

        ``exit_time`` defaults to now, or the ``entry_time`` if that is later (an exchange clock
        ahead of this one), as :meth:`insert` has it. Without ``realized_pnl`` it is computed exactly as
        (exit_price - entry_price) * quantity, negated for shorts. ``fee``, when given,
        replaces the trade's fee (the total paid on the trade).

        Raises:
            ValidationError: a bad value, or an ``exit_time`` given before the entry (nothing written).
            InvalidTransitionError: the trade is not open (closing twice keeps the first exit).
            NotFoundError: no trade has this id.
        """
        trade_id = to_id("id", id)
        price = to_decimal("exit_price", exit_price)
        given = to_optional_utc("exit_time", exit_time)
        pnl = to_optional_decimal("realized_pnl", realized_pnl)
        values: dict[str, Any] = {"status": "closed", "action": "close", "exit_price": price}
        if fee is not None:
            values["fee"] = to_decimal("fee", fee)
        if exit_reason is not None:
            values["exit_reason"] = to_text("exit_reason", exit_reason)
        row = await self._one_or_none(_LOCK_FOR_CLOSE, {"b_id": trade_id})
        if row is None:
            raise NotFoundError(f"id: no trade with id {trade_id}")
        check_trade_move(trade_id, row.status, "closed")
        # Like insert(): an entry_time ahead of this clock (exchange clock skew) is the exit's floor.
        moment = max(datetime.now(UTC), row.entry_time) if given is None else given
        values["exit_time"] = moment
        if moment < row.entry_time:
            raise ValidationError(f"exit_time: {moment.isoformat()} is before the entry {row.entry_time.isoformat()}")
        if pnl is None:
            pnl = EXACT.multiply(EXACT.subtract(price, row.entry_price), row.quantity)
            pnl = EXACT.minus(pnl) if row.side == "short" else pnl
        values["realized_pnl"] = pnl
        return await self._move(trade_id, "closed", values)

    async def cancel(self, id: int, reason: str | None = None) -> Trade:
        """Cancel an open trade (one that never really traded) and return it; ``reason`` is kept as ``exit_reason``.

        Raises:
            InvalidTransitionError: the trade is not open.
            NotFoundError: no trade has this id.
        """
        trade_id = to_id("id", id)
        values: dict[str, Any] = {"status": "cancelled"}
        if reason is not None:
            values["exit_reason"] = to_text("reason", reason)
        return await self._move(trade_id, "cancelled", values)

    async def _move(self, trade_id: int, status: str, values: dict[str, Any]) -> Trade:
        """Apply a move of the trade state table with one conditional ``UPDATE``."""
        values["updated_at"] = datetime.now(UTC)
        row = await self._one_or_none(_MOVE[status], values | {"b_id": trade_id})
        if row is None:
            current = await self._scalar(_STATUS, {"b_id": trade_id})
            if current is None:
                raise NotFoundError(f"id: no trade with id {trade_id}")
            check_trade_move(trade_id, current, status)
            raise InvalidTransitionError(f"trade {trade_id}: moved to {current!r} meanwhile; not {status!r}")
        return _from_row(row)

    async def get_by_trade_id(self, trade_id: str, exchange: str | None = None) -> Trade | None:
        """The trade with your ``trade_id`` on ``exchange`` (default: the manager's), or ``None``."""
        exchange = to_text("exchange", self._exchange(exchange))
        row = await self._one_or_none(_BY_TRADE_ID, {"b_exchange": exchange, "b_trade": to_text("trade_id", trade_id)})
        return None if row is None else _from_row(row)

    async def find(
        self,
        *,
        exchange: str | None = None,
        symbol: str | None = None,
        bot_id: str | None = None,
        mode: str | None = None,
        status: str | None = None,
        strategy: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Trade]:
        """Up to ``limit`` trades matching every filter given, newest entry first.

        ``exchange=None`` means the manager's default exchange and ``ALL_EXCHANGES`` (``"*"``)
        every exchange; every other filter left at ``None`` means no filter.
        ``since <= entry_time < until``.

        Raises:
            ValidationError: a bad filter value (an unknown mode or status, a non-datetime time).
        """
        t = TABLE.c
        filters: list[ColumnElement[bool]] = []
        for column, value, name in (
            (t.exchange, self._exchange_filter(exchange), "exchange"),
            (t.symbol, symbol, "symbol"),
            (t.bot_id, bot_id, "bot_id"),
            (t.strategy, strategy, "strategy"),
        ):
            if value is not None:
                filters.append(column == to_text(name, value))
        if mode is not None:
            filters.append(t.mode == to_text("mode", mode, choices=MODES))
        if status is not None:
            filters.append(t.status == to_text("status", status, choices=TRADE_STATUSES))
        if since is not None:
            filters.append(t.entry_time >= to_utc("since", since))
        if until is not None:
            filters.append(t.entry_time < to_utc("until", until))
        statement = (
            select(*TABLE.c).where(*filters).order_by(t.entry_time.desc(), t.id.desc()).limit(to_count("limit", limit))
        )
        return [_from_row(row) for row in await self._execute(statement)]
