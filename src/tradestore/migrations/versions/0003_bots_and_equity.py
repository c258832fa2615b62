"""bots and equity: the bots, equity_snapshots and performance_reports tables; bot_id indexes

Other tables name a bot by value (``bot_id``), indexed here, never by a foreign key: a bot's
trades or equity may be imported before the bot is registered.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 11:11:45
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tradestore.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bot_id", sa.String(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("strategy", sa.String(), nullable=True),
        sa.Column("version", sa.String(), nullable=True),
        sa.Column(
            "config", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("balance", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("started_at", tradestore.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_heartbeat", tradestore.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "metadata", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("created_at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bots")),
        sa.UniqueConstraint("bot_id", name=op.f("uq_bots_bot_id")),
    )
    with op.batch_alter_table("bots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bots_status_last_heartbeat"), ["status", "last_heartbeat"], unique=False)

    op.create_table(
        "equity_snapshots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bot_id", sa.String(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("timestamp", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("equity", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("balance", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("unrealized_pnl", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("open_positions", sa.BigInteger(), nullable=True),
        sa.Column(
            "metadata", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_equity_snapshots")),
        sa.UniqueConstraint("bot_id", "mode", "timestamp", name=op.f("uq_equity_snapshots_bot_id_mode_timestamp")),
    )
    op.create_table(
        "performance_reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bot_id", sa.String(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("start", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("snapshots", sa.BigInteger(), nullable=False),
        sa.Column("starting_equity", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("ending_equity", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("total_return", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("cagr", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("max_drawdown", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("max_drawdown_peak", tradestore.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("max_drawdown_trough", tradestore.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("max_drawdown_recovered", tradestore.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("volatility", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("sharpe", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("sortino", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("calmar", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("periods", sa.BigInteger(), nullable=False),
        sa.Column("periods_per_year", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("risk_free_rate", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column(
            "trades", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("calculated_at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_performance_reports")),
    )
    with op.batch_alter_table("performance_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_performance_reports_bot_id_mode_calculated_at"),
            ["bot_id", "mode", "calculated_at"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_performance_reports_calculated_at"), ["calculated_at"], unique=False)

    # Plain CREATE INDEX, not batch mode: the existing tables (and their rows) are never copied.
    op.create_index(op.f("ix_positions_bot_id_mode"), "positions", ["bot_id", "mode"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_positions_bot_id_mode"), table_name="positions")

    with op.batch_alter_table("performance_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_performance_reports_calculated_at"))
        batch_op.drop_index(batch_op.f("ix_performance_reports_bot_id_mode_calculated_at"))

    op.drop_table("performance_reports")
    op.drop_table("equity_snapshots")
    with op.batch_alter_table("bots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bots_status_last_heartbeat"))

    op.drop_table("bots")
