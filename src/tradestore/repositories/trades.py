"""``TradeRepository``: trades one at a time, and their statistics computed by the database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

from sqlalchemy import Table, exists, select, update
from sqlalchemy.engine import Row
from sqlalchemy.sql.expression import ColumnElement

from tradestore.dialects import NetGroup, backend
from tradestore.domain import Trade, TradeStatistics
from tradestore.errors import DuplicateError, NotFoundError, ValidationError
from tradestore.models import TradeModel
from tradestore.repositories.base import ALL_EXCHANGES, Repository, duplicates_raise
from tradestore.values import EXACT, since, to_count, to_id, to_text

_FIELDS = tuple(f.name for f in dataclasses.fields(Trade))
#: Fields ``update()`` may change: everything but the keys and timestamps the store keeps.
UPDATABLE = tuple(name for name in _FIELDS if name not in ("id", "created_at", "updated_at"))
TABLE = cast(Table, TradeModel.__table__)
_t = TABLE.c
#: Table columns in the order of ``_FIELDS`` (the table's column names are the field names).
_COLUMNS = tuple(_t[name] for name in _FIELDS)
_EIGHT_PLACES = Decimal("0.00000001")


def _from_row(row: Row[Any]) -> Trade:
    return Trade(**row._mapping)


def _select() -> Any:
    return select(*_COLUMNS)


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


def _closed_at(trade: Trade, now: datetime) -> datetime | None:
    """The ``exit_time`` to store: the trade's own, or now for a closed trade that has none."""
    if trade.exit_time is not None or not trade.is_closed:
        return trade.exit_time
    return max(now, trade.entry_time)  # never before the entry


class TradeRepository(Repository):
    """Trades of one session. ``exchange=None`` means the manager's default exchange."""

    async def insert(self, trade: Trade) -> int:
        """Store a new trade and return its database id.

        A closed trade (``realized_pnl`` or ``exit_price`` set, or an action other than
        ``open``) stored without ``exit_time`` gets ``exit_time`` = now (or its ``entry_time``
        if that is later), so that :meth:`get_statistics` counts it.

        Raises:
            ValidationError: ``trade`` is not a ``Trade``.
            DuplicateError: the exchange already has a trade with this ``trade_id`` (also a
                ``sqlalchemy.exc.IntegrityError``); nothing was written and the session stays usable.
        """
        if not isinstance(trade, Trade):
            raise ValidationError(f"trade: expected a Trade, got {trade!r}")
        now = datetime.now(UTC)
        values = {name: getattr(trade, name) for name in UPDATABLE}
        values.update(exit_time=_closed_at(trade, now), created_at=now, updated_at=now)
        # ON CONFLICT DO NOTHING: a duplicate writes nothing and leaves the transaction usable.
        statement = (
            backend(self.session.get_bind().dialect)
            .insert(TABLE)
            .values(values)
            .on_conflict_do_nothing(index_elements=[_t.exchange, _t.trade_id])
            .returning(_t.id)
        )
        message = f"trade_id: {trade.exchange} already has a trade {trade.trade_id!r}"
        with duplicates_raise(message):
            found = await self._scalar(statement)
        if found is None:
            raise DuplicateError(message)
        return int(found)

    async def update(self, id: int, /, **fields: Any) -> None:
        """Change some fields of the trade with database id ``id``; ``updated_at`` moves.

        Every field but ``id``, ``created_at`` and ``updated_at`` may change, ``trade_id``
        included. A trade closed by this update (or already closed) without an ``exit_time``
        gets ``exit_time`` = now, as in :meth:`insert`.

        Raises:
            ValidationError: an unknown or read-only field, or a bad value (nothing is written).
            NotFoundError: no trade has this id.
            DuplicateError: the new ``trade_id``/``exchange`` is another trade's.
        """
        for name in fields:
            if name not in UPDATABLE:
                raise ValidationError(f"{name}: not a field update() can change; allowed: {', '.join(UPDATABLE)}")
        current = await self.get_by_id(id)
        if current is None:
            raise NotFoundError(f"id: no trade with id {id!r}")
        changed = dataclasses.replace(current, **fields)  # validates every field again
        now = datetime.now(UTC)
        values = {name: getattr(changed, name) for name in fields}
        exit_time = _closed_at(changed, now)
        if exit_time != current.exit_time:
            values["exit_time"] = exit_time
        values["updated_at"] = max(now, (current.updated_at or current.entry_time) + timedelta(microseconds=1))
        message = f"trade_id: {changed.exchange} already has a trade {changed.trade_id!r}"
        if {"trade_id", "exchange"} & fields.keys():
            taken = exists().where(_t.exchange == changed.exchange, _t.trade_id == changed.trade_id, _t.id != id)
            if await self._scalar(select(taken)):
                raise DuplicateError(message)
        with duplicates_raise(message):
            await self._execute(update(TABLE).where(_t.id == id).values(values))

    async def get_by_id(self, id: int) -> Trade | None:
        """The trade with database id ``id``, or ``None``."""
        row = await self._one_or_none(_select().where(_t.id == to_id("id", id)))
        return None if row is None else _from_row(row)

    async def get_recent(self, limit: int = 100) -> list[Trade]:
        """The ``limit`` most recently entered trades of every exchange, newest first."""
        statement = _select().order_by(_t.entry_time.desc(), _t.id.desc()).limit(to_count("limit", limit))
        return [_from_row(row) for row in await self._execute(statement)]

    async def get_by_symbol(self, symbol: str, limit: int = 100, exchange: str | None = None) -> list[Trade]:
        """The ``limit`` most recently entered trades of ``symbol`` on ``exchange``, newest first."""
        statement = (
            _select()
            .where(_t.symbol == to_text("symbol", symbol), _t.exchange == to_text("exchange", self._exchange(exchange)))
            .order_by(_t.entry_time.desc(), _t.id.desc())
            .limit(to_count("limit", limit))
        )
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
    ) -> TradeStatistics:
        """Performance of the trades closed (``realized_pnl`` set) in the last ``days`` days.

        ``days=None`` means all time; ``exchange=None`` the manager's default exchange and
        ``ALL_EXCHANGES`` (``"*"``) every exchange; any other filter left at ``None`` means
        no filter. Per trade, net = realized_pnl - fee; a trade wins when net > 0 and loses
        when net < 0. Sums, counts and extremes are exact; ``win_rate`` (percent),
        ``avg_win``, ``avg_loss`` and ``profit_factor`` are the exact quotients rounded once,
        half-up, to 8 places. Losses are reported positive. ``profit_factor`` is ``None``
        when there is no loss.

        Raises:
            ValidationError: ``days`` negative, not finite or not a number, or a bad filter value.
        """
        filters: list[ColumnElement[bool]] = [_t.realized_pnl.is_not(None), _t.exit_time.is_not(None)]
        if days is not None:
            filters.append(_t.exit_time >= since("days", days, datetime.now(UTC)))
        if exchange != ALL_EXCHANGES:
            filters.append(_t.exchange == to_text("exchange", self._exchange(exchange)))
        for column, value, name in (
            (_t.symbol, symbol, "symbol"),
            (_t.strategy, strategy, "strategy"),
            (_t.bot_id, bot_id, "bot_id"),
            (_t.mode, mode, "mode"),
        ):
            if value is not None:
                filters.append(column == to_text(name, value))
        conn = await self.session.connection()
        groups = await backend(conn.dialect).net_by_sign(conn, _t.realized_pnl, _t.fee, filters)
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
