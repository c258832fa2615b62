"""``TradeRepository``: trades one at a time, and their statistics computed by the database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ColumnElement

from tradestore.dialects import NetGroup, backend
from tradestore.domain import Trade, TradeStatistics
from tradestore.errors import NotFoundError, ValidationError
from tradestore.models import TradeModel
from tradestore.values import EXACT, to_count, to_id, to_text, to_utc

_FIELDS = tuple(f.name for f in dataclasses.fields(Trade))
_COLUMN = {name: ("metadata_" if name == "metadata" else name) for name in _FIELDS}
#: Fields ``update()`` may change: everything but the keys and timestamps the store keeps.
UPDATABLE = tuple(name for name in _FIELDS if name not in ("id", "created_at", "updated_at"))
_RATIO = Context(prec=60)
_EIGHT_PLACES = Decimal("0.00000001")


def _to_model(trade: Trade, now: datetime) -> TradeModel:
    values = {_COLUMN[name]: getattr(trade, name) for name in UPDATABLE}
    return TradeModel(**values, created_at=now, updated_at=now)


def _from_model(row: TradeModel) -> Trade:
    return Trade(**{name: getattr(row, _COLUMN[name]) for name in _FIELDS})


def _ratio(numerator: Decimal | int, denominator: Decimal | int) -> Decimal:
    """``numerator / denominator`` rounded half-up to 8 decimal places."""
    # quantize in the same 60-digit context: the default 28 digits fail for ratios above 10**20
    return _RATIO.divide(Decimal(numerator), Decimal(denominator)).quantize(
        _EIGHT_PLACES, rounding=ROUND_HALF_UP, context=_RATIO
    )


class TradeRepository:
    """Trades of one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def __repr__(self) -> str:
        return f"<TradeRepository {self.session!r}>"

    async def insert(self, trade: Trade) -> int:
        """Store a new trade and return its database id.

        Raises:
            sqlalchemy.exc.IntegrityError: the exchange already has a trade with this ``trade_id``.
        """
        if not isinstance(trade, Trade):
            raise ValidationError(f"trade: expected a Trade, got {trade!r}")
        row = _to_model(trade, datetime.now(UTC))
        async with self.session.begin_nested():
            self.session.add(row)
        return row.id

    async def update(self, trade_id: int, **fields: Any) -> None:
        """Change some fields of the trade with database id ``trade_id``; ``updated_at`` moves.

        Raises:
            ValidationError: an unknown or read-only field, or a bad value (nothing is written).
            NotFoundError: no trade has this id.
        """
        for name in fields:
            if name not in UPDATABLE:
                raise ValidationError(f"{name}: not a field update() can change; allowed: {', '.join(UPDATABLE)}")
        current = await self.get_by_id(trade_id)
        if current is None:
            raise NotFoundError(f"trade_id: no trade with id {trade_id!r}")
        changed = dataclasses.replace(current, **fields)  # validates every field again
        values = {_COLUMN[name]: getattr(changed, name) for name in fields}
        values["updated_at"] = max(
            datetime.now(UTC), (current.updated_at or current.entry_time) + timedelta(microseconds=1)
        )
        await self.session.execute(update(TradeModel).where(TradeModel.id == trade_id).values(values))

    async def get_by_id(self, trade_id: int) -> Trade | None:
        """The trade with database id ``trade_id``, or ``None``."""
        row = await self.session.get(TradeModel, to_id("trade_id", trade_id), populate_existing=True)
        return None if row is None else _from_model(row)

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
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> TradeStatistics:
        """Performance of the trades closed (``realized_pnl`` set) in the last ``days`` days.

        ``days=None`` means all time, and any other filter set to ``None`` means no filter;
        ``start``/``end`` bound ``exit_time`` (inclusive) on top of ``days``.
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
        if start is not None:
            filters.append(t.exit_time >= to_utc("start", start))
        if end is not None:
            filters.append(t.exit_time <= to_utc("end", end))
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
