"""Equity snapshots and stored performance reports."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tradestore.models.base import Base, Key


class EquitySnapshotModel(Base):
    """A bot's account at one moment; unique per bot, mode and timestamp (the curve's index).

    No other index: every read is one bot's curve, and each index would slow the bulk writes.
    """

    __tablename__ = "equity_snapshots"
    __table_args__ = (UniqueConstraint("bot_id", "mode", "timestamp"),)

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    bot_id: Mapped[str]
    mode: Mapped[str]
    timestamp: Mapped[datetime]
    equity: Mapped[Decimal]
    balance: Mapped[Decimal | None]
    unrealized_pnl: Mapped[Decimal | None]
    open_positions: Mapped[int | None]
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")


class PerformanceReportModel(Base):
    """A stored :class:`PerformanceReport` (seed 002's performance-metrics table)."""

    __tablename__ = "performance_reports"
    __table_args__ = (Index(None, "bot_id", "mode", "calculated_at"), Index(None, "calculated_at"))

    id: Mapped[int] = mapped_column(Key, primary_key=True)
    bot_id: Mapped[str]
    mode: Mapped[str]
    start: Mapped[datetime]
    end: Mapped[datetime]
    snapshots: Mapped[int]
    starting_equity: Mapped[Decimal]
    ending_equity: Mapped[Decimal]
    total_return: Mapped[Decimal | None]
    cagr: Mapped[Decimal | None]
    max_drawdown: Mapped[Decimal]
    max_drawdown_peak: Mapped[datetime | None]
    max_drawdown_trough: Mapped[datetime | None]
    max_drawdown_recovered: Mapped[datetime | None]
    volatility: Mapped[Decimal | None]
    sharpe: Mapped[Decimal | None]
    sortino: Mapped[Decimal | None]
    calmar: Mapped[Decimal | None]
    periods: Mapped[int]
    periods_per_year: Mapped[Decimal]
    risk_free_rate: Mapped[Decimal]
    #: The trade statistics of the report, decimals as exact text.
    trades: Mapped[dict[str, Any]]
    calculated_at: Mapped[datetime]
