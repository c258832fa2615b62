"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 20:30:02.937548
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tradestore.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ohlcv",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("exchange", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("timeframe", sa.String(), nullable=False),
        sa.Column("timestamp", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("open", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("high", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("low", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("close", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("volume", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("quote_volume", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("trades_count", sa.BigInteger(), nullable=True),
        sa.Column("created_at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ohlcv")),
        sa.UniqueConstraint(
            "exchange", "symbol", "timeframe", "timestamp", name=op.f("uq_ohlcv_exchange_symbol_timeframe_timestamp")
        ),
    )
    op.create_table(
        "positions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("exchange", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("entry_price", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("quantity", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("margin", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("entry_time", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("current_price", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("unrealized_pnl", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("leverage", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("liquidation_price", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("bot_id", sa.String(), nullable=True),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("closed_at", tradestore.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_positions")),
    )
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_positions_status_exchange"), ["status", "exchange"], unique=False)
        # At most one open position per exchange, symbol, bot (NULL counts as one bot) and mode.
        batch_op.create_index(
            "uq_positions_open",
            ["exchange", "symbol", sa.text("coalesce(bot_id, '')"), "mode"],
            unique=True,
            postgresql_where=sa.text("status = 'open'"),
            sqlite_where=sa.text("status = 'open'"),
        )

    op.create_table(
        "system_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_type", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column(
            "details", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("symbol", sa.String(), nullable=True),
        sa.Column("trade_id", sa.String(), nullable=True),
        sa.Column("created_at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_events")),
    )
    with op.batch_alter_table("system_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_system_events_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_system_events_severity_created_at"), ["severity", "created_at"], unique=False
        )

    op.create_table(
        "trades",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("trade_id", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("exchange", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("entry_price", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("quantity", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("entry_time", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("leverage", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("exit_price", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("exit_time", tradestore.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("realized_pnl", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("realized_pnl_pct", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("fee", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("signal_score", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("strategy", sa.String(), nullable=True),
        sa.Column("bot_id", sa.String(), nullable=True),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column(
            "metadata", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("created_at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trades")),
        sa.UniqueConstraint("exchange", "trade_id", name=op.f("uq_trades_exchange_trade_id")),
    )
    with op.batch_alter_table("trades", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trades_entry_time"), ["entry_time"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_trades_exchange_symbol_entry_time"), ["exchange", "symbol", "entry_time"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_trades_exit_time"), ["exit_time"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("trades", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trades_exit_time"))
        batch_op.drop_index(batch_op.f("ix_trades_exchange_symbol_entry_time"))
        batch_op.drop_index(batch_op.f("ix_trades_entry_time"))

    op.drop_table("trades")
    with op.batch_alter_table("system_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_system_events_severity_created_at"))
        batch_op.drop_index(batch_op.f("ix_system_events_created_at"))

    op.drop_table("system_events")
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.drop_index("uq_positions_open")
        batch_op.drop_index(batch_op.f("ix_positions_status_exchange"))

    op.drop_table("positions")
    op.drop_table("ohlcv")
