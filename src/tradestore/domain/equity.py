"""Equity: what a bot's account is worth over time, and the performance figures drawn from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from tradestore.domain.common import MODES, _not_negative, _optional_count, _optional_id
from tradestore.domain.trading import TradeStatistics
from tradestore.values import (
    DecimalInput,
    IntInput,
    to_decimal,
    to_json_object,
    to_optional_decimal,
    to_text,
    to_utc,
)


@dataclass(init=False)
class EquitySnapshot:
    """The account of ``bot_id`` at ``timestamp``; unique per (bot_id, mode, timestamp).

    ``equity`` is what the account is worth (balance plus open profit and loss); it cannot be
    negative. ``open_positions`` counts the positions open at that moment.
    """

    bot_id: str
    timestamp: datetime
    equity: Decimal
    balance: Decimal | None
    unrealized_pnl: Decimal | None
    open_positions: int | None
    mode: str
    metadata: dict[str, Any] | None
    id: int | None

    def __init__(
        self,
        bot_id: str,
        timestamp: datetime,
        equity: DecimalInput,
        balance: DecimalInput | None = None,
        unrealized_pnl: DecimalInput | None = None,
        open_positions: IntInput | None = None,
        mode: str = "live",
        metadata: dict[str, Any] | None = None,
        id: IntInput | None = None,
    ) -> None:
        self.bot_id = to_text("bot_id", bot_id)
        self.timestamp = to_utc("timestamp", timestamp)
        self.equity = _not_negative("equity", to_decimal("equity", equity))
        self.balance = to_optional_decimal("balance", balance)
        self.unrealized_pnl = to_optional_decimal("unrealized_pnl", unrealized_pnl)
        self.open_positions = _optional_count("open_positions", open_positions)
        self.mode = to_text("mode", mode, choices=MODES)
        self.metadata = to_json_object("metadata", metadata)
        self.id = _optional_id(id)


@dataclass(frozen=True)
class PerformanceReport:
    """Performance of one bot and mode over a window; see ``EquityRepository.performance``.

    Equity figures come from the snapshots between ``start`` and ``end`` (the first and last
    used); ``trades`` are the statistics of the trades closed in the window asked for. Ratios
    are rounded half-up to 8 places; a figure that is undefined is ``None``.
    """

    bot_id: str
    mode: str
    start: datetime
    end: datetime
    snapshots: int
    starting_equity: Decimal
    ending_equity: Decimal
    total_return: Decimal | None
    cagr: Decimal | None
    max_drawdown: Decimal
    max_drawdown_peak: datetime | None
    max_drawdown_trough: datetime | None
    max_drawdown_recovered: datetime | None
    volatility: Decimal | None
    sharpe: Decimal | None
    sortino: Decimal | None
    calmar: Decimal | None
    periods: int
    periods_per_year: Decimal
    risk_free_rate: Decimal
    trades: TradeStatistics
    calculated_at: datetime
    id: int | None = None
