"""orders and fills

Orders, their append-only state history and their fills; trades gain status, stop_loss,
take_profit, exit_reason and timeframe, and the indexes bots ask for.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 11:10:38.399283
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tradestore.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trades", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(), server_default="open", nullable=False))
        batch_op.add_column(sa.Column("stop_loss", tradestore.types.ExactDecimal(), nullable=True))
        batch_op.add_column(sa.Column("take_profit", tradestore.types.ExactDecimal(), nullable=True))
        batch_op.add_column(sa.Column("exit_reason", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("timeframe", sa.String(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_trades_bot_id_mode_entry_time"), ["bot_id", "mode", "entry_time"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_trades_bot_id_status"), ["bot_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_trades_symbol_status"), ["symbol", "status"], unique=False)
    # Trades stored before this revision: closed when anything of an exit is recorded, else open.
    trades = sa.table(
        "trades",
        sa.column("status", sa.String()),
        sa.column("action", sa.String()),
        sa.column("exit_time"),
        sa.column("exit_price"),
        sa.column("realized_pnl"),
    )
    op.execute(
        trades.update()
        .where(
            sa.or_(
                trades.c.exit_time.is_not(None),
                trades.c.exit_price.is_not(None),
                trades.c.realized_pnl.is_not(None),
                trades.c.action.in_(["close", "liquidated"]),
            )
        )
        .values(status="closed")
    )

    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("client_order_id", sa.String(), nullable=False),
        sa.Column("exchange", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("order_type", sa.String(), nullable=False),
        sa.Column("quantity", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("price", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("stop_price", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("exchange_order_id", sa.String(), nullable=True),
        sa.Column("trade_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("bot_id", sa.String(), nullable=True),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("time_in_force", sa.String(), nullable=True),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column(
            "metadata", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("filled_quantity", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("filled_value", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("average_fill_price", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("fee_total", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("created_at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["trade_id"], ["trades.id"], name=op.f("fk_orders_trade_id_trades")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("exchange", "client_order_id", name=op.f("uq_orders_exchange_client_order_id")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_bot_id_status"), ["bot_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_status_exchange"), ["status", "exchange"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_trade_id"), ["trade_id"], unique=False)

    op.create_table(
        "fills",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("exchange", sa.String(), nullable=False),
        sa.Column("client_order_id", sa.String(), nullable=False),
        sa.Column("exchange_trade_id", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("price", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("quantity", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("fee", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("fee_currency", sa.String(), nullable=True),
        sa.Column("liquidity", sa.String(), nullable=True),
        sa.Column("timestamp", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_fills_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
        sa.UniqueConstraint(
            "exchange",
            "client_order_id",
            "exchange_trade_id",
            name=op.f("uq_fills_exchange_client_order_id_exchange_trade_id"),
        ),
    )
    with op.batch_alter_table("fills", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fills_order_id_timestamp"), ["order_id", "timestamp"], unique=False)

    op.create_table(
        "order_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_order_history_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_history")),
    )
    with op.batch_alter_table("order_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_history_order_id_id"), ["order_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("order_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_history_order_id_id"))

    op.drop_table("order_history")
    with op.batch_alter_table("fills", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fills_order_id_timestamp"))

    op.drop_table("fills")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_trade_id"))
        batch_op.drop_index(batch_op.f("ix_orders_status_exchange"))
        batch_op.drop_index(batch_op.f("ix_orders_bot_id_status"))

    op.drop_table("orders")
    with op.batch_alter_table("trades", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trades_symbol_status"))
        batch_op.drop_index(batch_op.f("ix_trades_bot_id_status"))
        batch_op.drop_index(batch_op.f("ix_trades_bot_id_mode_entry_time"))
        batch_op.drop_column("timeframe")
        batch_op.drop_column("exit_reason")
        batch_op.drop_column("take_profit")
        batch_op.drop_column("stop_loss")
        batch_op.drop_column("status")
