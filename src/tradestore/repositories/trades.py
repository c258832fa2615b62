"""``TradeRepository``: trades one at a time, and their statistics computed by the database."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, select, update
from sqlalchemy.sql.expression import ColumnElement

from tradestore.dialects import Backend, NetGroup, backend
from tradestore.domain import ACTIONS, SIDES, Trade, TradeStatistics
from tradestore.errors import DuplicateError, NotFoundError, ValidationError
from tradestore.models import TradeModel
from tradestore.repositories.base import Repository
from tradestore.values import EXACT, to_count, to_id, to_text

TABLE = cast(Table, TradeModel.__table__)
_FIELDS = tuple(f.name for f in dataclasses.fields(Trade))
_COLUMN = {name: ("metadata_" if name == "metadata" else name) for name in _FIELDS}
#: Fields ``update()`` may change: everything but the keys and timestamps the store keeps.
UPDATABLE = tuple(name for name in _FIELDS if name not in ("id", "created_at", "updated_at"))
_RATIO = Context(prec=60)
_EIGHT_PLACES = Decimal("0.00000001")
_JUST_AFTER = timedelta(microseconds=1)
#: A valid trade whose fields ``update()`` replaces, to validate new values exactly as
#: ``Trade`` does without reading the stored row first.
_TEMPLATE = Trade("-", "-", "-", SIDES[0], ACTIONS[0], Decimal(1), Decimal(1), datetime(2000, 1, 1, tzinfo=UTC))


# The single-row statements, built once; values come as parameters (``b_…``: not columns).
_BY_ID = select(TABLE).where(TABLE.c.id == bindparam("b_id"))
_UPDATED_AT = select(TABLE.c.updated_at).where(TABLE.c.id == bindparam("b_id"))
_UPDATE = update(TABLE).where(TABLE.c.id == bindparam("b_id"))
#: The usual case of ``update()``: the stored ``updated_at`` is in the past.
_UPDATE_IF_OLDER = _UPDATE.where(TABLE.c.updated_at < bindparam("b_now")).returning(TABLE.c.id)


def _insert_new(db: Backend) -> Any:
    """Insert a trade unless its key is stored: a duplicate skips the row instead of failing
    the statement, which on PostgreSQL would abort the whole transaction."""
    return db.insert(TABLE).on_conflict_do_nothing().returning(TABLE.c.id)


def _row_values(trade: Trade, now: datetime) -> dict[str, Any]:
    """The table row of a new ``trade`` (column names are the field names)."""
    return {name: getattr(trade, name) for name in UPDATABLE} | {"created_at": now, "updated_at": now}


def _from_model(row: TradeModel) -> Trade:
    return Trade(**{name: getattr(row, _COLUMN[name]) for name in _FIELDS})


def _from_row(row: Row[Any]) -> Trade:
    values = row._mapping
    return Trade(**{name: values[name] for name in _FIELDS})


def _ratio(numerator: Decimal | int, denominator: Decimal | int) -> Decimal:
    """``numerator / denominator`` rounded half-up to 8 decimal places."""
    # quantize in the same 60-digit context: the default 28 digits fail for ratios above 10**20
    return _RATIO.divide(Decimal(numerator), Decimal(denominator)).quantize(
        _EIGHT_PLACES, rounding=ROUND_HALF_UP, context=_RATIO
    )


class TradeRepository(Repository):
    """Trades of one session."""

    async def insert(self, trade: Trade) -> int:
        """Store a new trade and return its database id.

        A duplicate leaves the session's transaction usable (the insert is skipped, not failed).

        Raises:
            DuplicateError: the exchange already has a trade with this ``trade_id`` (also a
                ``sqlalchemy.exc.IntegrityError``); nothing was written.
        """
        if not isinstance(trade, Trade):
            raise ValidationError(f"trade: expected a Trade, got {trade!r}")
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
            sqlalchemy.exc.IntegrityError: a ``(exchange, trade_id)`` is already stored or repeated.
        """
        items = list(trades)
        for index, item in enumerate(items):
            if not isinstance(item, Trade):
                raise ValidationError(f"trades[{index}]: expected a Trade, got {item!r}")
        if not items:
            return 0
        now = datetime.now(UTC)
        conn = await self.session.connection()
        await backend(conn.dialect).write_rows(conn, TABLE, [_row_values(t, now) for t in items])
        return len(items)

    async def update(self, trade_id: int, **fields: Any) -> None:
        """Change some fields of the trade with database id ``trade_id``; ``updated_at`` moves.

        One conditional ``UPDATE`` in the usual case; ``updated_at`` becomes now, or one
        microsecond after its stored value when that is not in the past (clocks that step back).

        Raises:
            ValidationError: an unknown or read-only field, or a bad value (nothing is written).
            NotFoundError: no trade has this id.
        """
        for name in fields:
            if name not in UPDATABLE:
                raise ValidationError(f"{name}: not a field update() can change; allowed: {', '.join(UPDATABLE)}")
        changed = dataclasses.replace(_TEMPLATE, **fields)  # validates each new value like Trade() does
        values = {name: getattr(changed, name) for name in fields}
        key = to_id("trade_id", trade_id)
        now = datetime.now(UTC)
        if await self._scalar(_UPDATE_IF_OLDER, {**values, "updated_at": now, "b_id": key, "b_now": now}):
            return
        stored = await self._scalar(_UPDATED_AT, {"b_id": key})
        if stored is None:
            raise NotFoundError(f"trade_id: no trade with id {trade_id!r}")
        await self._execute(_UPDATE, {**values, "updated_at": stored + _JUST_AFTER, "b_id": key})

    async def get_by_id(self, trade_id: int) -> Trade | None:
        """The trade with database id ``trade_id``, or ``None``."""
        row = await self._one_or_none(_BY_ID, {"b_id": to_id("trade_id", trade_id)})
        return None if row is None else _from_row(row)

    async def get_recent(self, limit: int = 100) -> list[Trade]:
        """The ``limit`` most recently entered trades, newest first."""
        statement = (
            select(TradeModel)
            .order_by(TradeModel.entry_time.desc(), TradeModel.id.desc())
            .limit(to_count("limit", limit))
        )
        return [_from_model(row) for row in (await self.session.scalars(statement)).all()]

    async def get_by_symbol(self, symbol: str, limit: int = 100, exchange: str = "binance") -> list[Trade]:
        """The ``limit`` most recently entered trades of ``symbol`` on ``exchange``, newest first."""
        statement = (
            select(TradeModel)
            .where(TradeModel.symbol == to_text("symbol", symbol), TradeModel.exchange == to_text("exchange", exchange))
            .order_by(TradeModel.entry_time.desc(), TradeModel.id.desc())
            .limit(to_count("limit", limit))
        )
        return [_from_model(row) for row in (await self.session.scalars(statement)).all()]

    async def get_statistics(
        self,
        days: int | None = 30,
        exchange: str | None = "binance",
        *,
        symbol: str | None = None,
        strategy: str | None = None,
        bot_id: str | None = None,
        mode: str | None = "live",
    ) -> TradeStatistics:
        """Performance of the trades closed (``realized_pnl`` set) in the last ``days`` days.

        ``days=None`` means all time, and any other filter set to ``None`` means no filter.
        Per trade, net = realized_pnl - fee; a trade wins when net > 0 and loses when net < 0.
        Sums, counts and extremes are exact; ``win_rate`` (percent), ``avg_win``, ``avg_loss``
        and ``profit_factor`` are rounded half-up to 8 places. Losses are reported positive.
        ``profit_factor`` is ``None`` when there is no loss.
        """
        t = TradeModel
        filters: list[ColumnElement[bool]] = [t.realized_pnl.is_not(None), t.exit_time.is_not(None)]
        if days is not None:
            if isinstance(days, bool) or not isinstance(days, int | float) or days < 0:
                raise ValidationError(f"days: expected a non-negative number or None, got {days!r}")
            filters.append(t.exit_time >= datetime.now(UTC) - timedelta(days=days))
        for column, value, name in (
            (t.exchange, exchange, "exchange"),
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
