"""ORM tables. ``Base.metadata`` is the schema the Alembic migrations create.

Models read as plain ``Mapped[Decimal]`` / ``Mapped[datetime]``: the type map turns them
into the exact column types of :mod:`tradestore.types`. Models never import the domain.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import BigInteger, Index, Integer, MetaData, String, UniqueConstraint, func, literal_column
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import ColumnElement

from tradestore.types import ExactDecimal, JSONDocument, UTCDateTime

#: BIGINT keys on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
Key = BigInteger().with_variant(Integer(), "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base: naming convention and the Python type → column type map."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        Decimal: ExactDecimal(),
        datetime: UTCDateTime(),
        str: String(),
        int: BigInteger(),
        dict[str, Any]: JSONDocument,
    }


class OHLCVModel(Base):
    """One candle; unique per exchange, symbol, timeframe and bar start."""

    __tablename__ = "ohlcv"
    __table_args__ = (UniqueConstraint("exchange", "symbol", "timeframe", "timestamp"),)

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    exchange: Mapped[str]
    symbol: Mapped[str]
    timeframe: Mapped[str]
    timestamp: Mapped[datetime]
    open: Mapped[Decimal]
    high: Mapped[Decimal]
    low: Mapped[Decimal]
    close: Mapped[Decimal]
    volume: Mapped[Decimal]
    quote_volume: Mapped[Decimal | None]
    trades_count: Mapped[int | None]
    created_at: Mapped[datetime]


class TradeModel(Base):
    """One trade; ``trade_id`` is the caller's id, unique per exchange."""

    __tablename__ = "trades"
    __table_args__ = (
        UniqueConstraint("exchange", "trade_id"),
        Index(None, "exchange", "symbol", "entry_time"),
        Index(None, "exit_time"),
        Index(None, "entry_time"),
    )

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    trade_id: Mapped[str]
    symbol: Mapped[str]
    exchange: Mapped[str]
    side: Mapped[str]
    action: Mapped[str]
    entry_price: Mapped[Decimal]
    quantity: Mapped[Decimal]
    entry_time: Mapped[datetime]
    leverage: Mapped[Decimal]
    exit_price: Mapped[Decimal | None]
    exit_time: Mapped[datetime | None]
    realized_pnl: Mapped[Decimal | None]
    realized_pnl_pct: Mapped[Decimal | None]
    fee: Mapped[Decimal]
    signal_score: Mapped[Decimal | None]
    strategy: Mapped[str | None]
    bot_id: Mapped[str | None]
    mode: Mapped[str]
    # ``metadata`` is taken by the declarative base; the column keeps the seed's name.
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


#: ``bot_id`` NULL counts as one bot, so the open-position key treats it as ''.
BOT_KEY: ColumnElement[str] = func.coalesce(literal_column("bot_id"), literal_column("''"))
OPEN: ColumnElement[str] = literal_column("'open'")


class PositionModel(Base):
    """A position; at most one open per exchange, symbol, bot and mode (a partial unique index)."""

    __tablename__ = "positions"

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    symbol: Mapped[str]
    exchange: Mapped[str]
    side: Mapped[str]
    entry_price: Mapped[Decimal]
    quantity: Mapped[Decimal]
    margin: Mapped[Decimal]
    entry_time: Mapped[datetime]
    current_price: Mapped[Decimal | None]
    unrealized_pnl: Mapped[Decimal | None]
    status: Mapped[str]
    leverage: Mapped[Decimal]
    liquidation_price: Mapped[Decimal | None]
    bot_id: Mapped[str | None]
    mode: Mapped[str]
    closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index(
            "uq_positions_open",
            "exchange",
            "symbol",
            BOT_KEY,
            "mode",
            unique=True,
            postgresql_where=literal_column("status") == OPEN,
            sqlite_where=literal_column("status") == OPEN,
        ),
        Index(None, "status", "exchange"),
    )


class SystemEventModel(Base):
    """Something the bot wants remembered: an error, a restart, an order sent."""

    __tablename__ = "system_events"
    __table_args__ = (Index(None, "created_at"), Index(None, "severity", "created_at"))

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    event_type: Mapped[str]
    severity: Mapped[str]
    message: Mapped[str]
    details: Mapped[dict[str, Any] | None]
    symbol: Mapped[str | None]
    trade_id: Mapped[str | None]
    created_at: Mapped[datetime]
