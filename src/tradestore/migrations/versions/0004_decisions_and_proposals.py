"""decisions and proposals

Adds the ``decisions`` and ``proposals`` tables, and ``system_events.content_key`` (NULL for
every existing event) with a unique index, the key ``tradestore import events`` skips on.
Downgrade drops exactly these; every other row stays.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 11:09:00.205319
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tradestore.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bot_id", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("exchange", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("timestamp", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("price", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("confidence", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("strategy", sa.String(), nullable=True),
        sa.Column("strategy_version", sa.String(), nullable=True),
        sa.Column("bot_version", sa.String(), nullable=True),
        sa.Column("aggregation", sa.String(), nullable=True),
        sa.Column(
            "signals", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column(
            "indicators", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("rationale", sa.String(), nullable=True),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("trade_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "metadata", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("content_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trade_id"], ["trades.id"], name=op.f("fk_decisions_trade_id_trades"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
        sa.UniqueConstraint("content_key", name=op.f("uq_decisions_content_key")),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_decisions_bot_id_mode_timestamp"), ["bot_id", "mode", "timestamp"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_decisions_strategy_timestamp"), ["strategy", "timestamp"], unique=False)
        batch_op.create_index(batch_op.f("ix_decisions_timestamp"), ["timestamp"], unique=False)
        batch_op.create_index(batch_op.f("ix_decisions_trade_id"), ["trade_id"], unique=False)

    op.create_table(
        "proposals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bot_id", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("exchange", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("quantity", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("price", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("stop_loss", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("take_profit", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("leverage", tradestore.types.ExactDecimal(), nullable=False),
        sa.Column("confidence", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("rationale", sa.String(), nullable=True),
        sa.Column("decision_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("expires_at", tradestore.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reviewed_at", tradestore.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reviewer", sa.String(), nullable=True),
        sa.Column("rejection_reason", sa.String(), nullable=True),
        sa.Column("execution_price", tradestore.types.ExactDecimal(), nullable=True),
        sa.Column("trade_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("failure_reason", sa.String(), nullable=True),
        sa.Column("created_at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tradestore.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["decisions.id"], name=op.f("fk_proposals_decision_id_decisions"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["trade_id"], ["trades.id"], name=op.f("fk_proposals_trade_id_trades"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proposals")),
    )
    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_proposals_bot_id_status"), ["bot_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_proposals_status_expires_at"), ["status", "expires_at"], unique=False)

    with op.batch_alter_table("system_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_key", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_system_events_content_key"), ["content_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("system_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_system_events_content_key"))
        batch_op.drop_column("content_key")

    with op.batch_alter_table("proposals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_proposals_status_expires_at"))
        batch_op.drop_index(batch_op.f("ix_proposals_bot_id_status"))

    op.drop_table("proposals")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_trade_id"))
        batch_op.drop_index(batch_op.f("ix_decisions_timestamp"))
        batch_op.drop_index(batch_op.f("ix_decisions_strategy_timestamp"))
        batch_op.drop_index(batch_op.f("ix_decisions_bot_id_mode_timestamp"))

    op.drop_table("decisions")
