"""Bots: who is running, in which mode and status, and what a restarting bot needs back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from tradestore.domain.common import BOT_STATUSES, MODES
from tradestore.domain.equity import EquitySnapshot
from tradestore.domain.orders import Order
from tradestore.domain.trading import Position, Trade
from tradestore.values import (
    DecimalInput,
    to_json_object,
    to_optional_decimal,
    to_optional_text,
    to_optional_utc,
    to_text,
)

#: The status state machine: for each status, the statuses a bot may move to from it.
#: ``register()`` is the restart and may start a bot from any status. A move to the status a
#: bot already has is not a move (two supervisors starting one stopped bot: one wins); a
#: heartbeat may repeat the status it reports.
BOT_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "starting": ("running", "stopped", "error"),
    "running": ("stopped", "error"),
    "error": ("starting", "running", "stopped"),
    "stopped": ("starting",),
}


def sources_of(status: str) -> tuple[str, ...]:
    """The statuses from which a bot may move to ``status``."""
    return tuple(source for source, targets in BOT_TRANSITIONS.items() if status in targets)


@dataclass(init=False)
class Bot:
    """A bot instance, keyed by the caller's ``bot_id``; ``config`` and ``metadata`` are JSON objects."""

    bot_id: str
    mode: str
    status: str
    strategy: str | None
    version: str | None
    config: dict[str, Any] | None
    balance: Decimal | None
    started_at: datetime | None
    last_heartbeat: datetime | None
    metadata: dict[str, Any] | None
    created_at: datetime | None
    updated_at: datetime | None

    def __init__(
        self,
        bot_id: str,
        mode: str = "live",
        status: str = "running",
        strategy: str | None = None,
        version: str | None = None,
        config: dict[str, Any] | None = None,
        balance: DecimalInput | None = None,
        started_at: datetime | None = None,
        last_heartbeat: datetime | None = None,
        metadata: dict[str, Any] | None = None,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> None:
        self.bot_id = to_text("bot_id", bot_id)
        self.mode = to_text("mode", mode, choices=MODES)
        self.status = to_text("status", status, choices=BOT_STATUSES)
        self.strategy = to_optional_text("strategy", strategy)
        self.version = to_optional_text("version", version)
        self.config = to_json_object("config", config)
        self.balance = to_optional_decimal("balance", balance)
        self.started_at = to_optional_utc("started_at", started_at)
        self.last_heartbeat = to_optional_utc("last_heartbeat", last_heartbeat)
        self.metadata = to_json_object("metadata", metadata)
        self.created_at = to_optional_utc("created_at", created_at)
        self.updated_at = to_optional_utc("updated_at", updated_at)


@dataclass(frozen=True)
class Recovery:
    """What a restarting bot needs, as one consistent snapshot of the database.

    Attributes:
        bot: the bot as stored.
        positions: its open positions, most recently updated first.
        trades: its open trades (no ``exit_time``), oldest entry first.
        equity: its newest equity snapshot, or ``None``.
        balance: the last known balance: from the heartbeat or the equity snapshot, whichever
            is newer and has one; ``None`` when neither does.
        balance_at: when that balance was reported.
        orders: its open orders (``OPEN_ORDER_STATUSES``), oldest first.
    """

    bot: Bot
    positions: list[Position] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    equity: EquitySnapshot | None = None
    balance: Decimal | None = None
    balance_at: datetime | None = None
    orders: list[Order] = field(default_factory=list)
