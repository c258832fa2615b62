"""Decisions and proposals: why a bot acted (or held), and the trades a human approves first."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from tradestore.domain.common import MODES, _optional_id, _optional_positive, _positive
from tradestore.errors import ValidationError
from tradestore.values import (
    DecimalInput,
    IntInput,
    to_decimal,
    to_id,
    to_json_object,
    to_optional_decimal,
    to_optional_text,
    to_optional_utc,
    to_text,
    to_utc,
)

DECISION_ACTIONS = ("buy", "sell", "hold", "close")
PROPOSAL_SIDES = ("buy", "sell")
PROPOSAL_STATUSES = ("pending", "approved", "rejected", "executed", "failed", "expired")
#: The proposal state machine: from each state, the states it may move to. Others are final.
PROPOSAL_MOVES: dict[str, tuple[str, ...]] = {
    "pending": ("approved", "rejected", "expired"),
    "approved": ("executed", "failed", "expired"),
}


def _lowered(field_name: str, value: object, choices: tuple[str, ...]) -> str:
    """``value`` in lower case if it is one of ``choices`` in any case (seed files write ``BUY``)."""
    if isinstance(value, str):
        value = value.lower()
    return to_text(field_name, value, choices=choices)


def _confidence(value: object) -> Decimal | None:
    number = to_optional_decimal("confidence", value)
    if number is not None and not 0 <= number <= 1:
        raise ValidationError(f"confidence: must be between 0 and 1, got {value!r}")
    return number


def _long_text(field_name: str, value: object) -> str | None:
    """Optional text of any length (a language model's rationale); no NUL byte."""
    if value is None:
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise ValidationError(f"{field_name}: expected a string without NUL bytes, got {value!r}")
    return value


@dataclass(init=False)
class Decision:
    """What a bot decided about ``symbol`` at ``timestamp``, holds included, and why.

    ``action`` is buy, sell, hold or close (any case, stored lower case); ``confidence`` is
    between 0 and 1; ``signals`` (the per-strategy breakdown) and ``indicators`` (a snapshot)
    are JSON objects whose Decimal and datetime values are stored as strings; ``trade_id`` is
    the database id of the resulting :class:`Trade`. ``exchange=None`` means the manager's
    default exchange, filled in when the decision is recorded. Money parameters accept
    ``Decimal``, ``int``, ``str`` and ``float`` (numpy's too); the attributes are ``Decimal``.
    """

    bot_id: str
    symbol: str
    action: str
    timestamp: datetime
    mode: str
    price: Decimal | None
    confidence: Decimal | None
    strategy: str | None
    strategy_version: str | None
    bot_version: str | None
    aggregation: str | None
    signals: dict[str, Any] | None
    indicators: dict[str, Any] | None
    rationale: str | None
    model: str | None
    exchange: str | None
    trade_id: int | None
    metadata: dict[str, Any] | None
    id: int | None
    created_at: datetime | None

    def __init__(
        self,
        bot_id: str,
        symbol: str,
        action: str,
        timestamp: datetime,
        mode: str = "live",
        price: DecimalInput | None = None,
        confidence: DecimalInput | None = None,
        strategy: str | None = None,
        strategy_version: str | None = None,
        bot_version: str | None = None,
        aggregation: str | None = None,
        signals: dict[str, Any] | None = None,
        indicators: dict[str, Any] | None = None,
        rationale: str | None = None,
        model: str | None = None,
        exchange: str | None = None,
        trade_id: IntInput | None = None,
        metadata: dict[str, Any] | None = None,
        id: IntInput | None = None,
        created_at: datetime | None = None,
    ) -> None:
        self.bot_id = to_text("bot_id", bot_id)
        self.symbol = to_text("symbol", symbol)
        self.action = _lowered("action", action, DECISION_ACTIONS)
        self.timestamp = to_utc("timestamp", timestamp)
        self.mode = to_text("mode", mode, choices=MODES)
        self.price = to_optional_decimal("price", price)
        self.confidence = _confidence(confidence)
        self.strategy = to_optional_text("strategy", strategy)
        self.strategy_version = to_optional_text("strategy_version", strategy_version)
        self.bot_version = to_optional_text("bot_version", bot_version)
        self.aggregation = to_optional_text("aggregation", aggregation)
        self.signals = to_json_object("signals", signals)
        self.indicators = to_json_object("indicators", indicators)
        self.rationale = _long_text("rationale", rationale)
        self.model = to_optional_text("model", model)
        self.exchange = to_optional_text("exchange", exchange)
        self.trade_id = None if trade_id is None else to_id("trade_id", trade_id)
        self.metadata = to_json_object("metadata", metadata)
        self.id = _optional_id(id)
        self.created_at = to_optional_utc("created_at", created_at)


@dataclass(frozen=True)
class StrategyPerformance:
    """One strategy's decisions and the closed trades they led to (``strategy_performance``).

    ``by_action`` counts decisions per action (every action present, zeros included);
    ``with_trade`` counts decisions linked to a trade; ``closed_trades``, ``wins``, ``losses``
    and ``net_pnl`` are over the distinct closed trades those decisions led to, with a trade's
    net = realized_pnl - fee (exact), a win when net > 0 and a loss when net < 0. ``win_rate``
    is wins / closed trades in percent, rounded half-up to 8 places (0 without closed trades).
    """

    strategy: str | None
    decisions: int
    by_action: dict[str, int] = field(default_factory=dict)
    with_trade: int = 0
    closed_trades: int = 0
    wins: int = 0
    losses: int = 0
    win_rate: Decimal = Decimal(0)
    net_pnl: Decimal = Decimal(0)


@dataclass(init=False)
class Proposal:
    """A trade a bot proposes and a person approves or rejects (manual mode).

    ``side`` is buy or sell; ``quantity`` > 0; ``leverage`` > 0; ``status`` moves only along
    :data:`PROPOSAL_MOVES`, through :class:`tradestore.ProposalRepository`. ``exchange=None``
    means the manager's default exchange, filled in when the proposal is created. Money
    parameters accept ``Decimal``, ``int``, ``str`` and ``float``; the attributes are ``Decimal``.
    """

    bot_id: str
    symbol: str
    side: str
    quantity: Decimal
    mode: str
    price: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    leverage: Decimal
    confidence: Decimal | None
    rationale: str | None
    decision_id: int | None
    expires_at: datetime | None
    status: str
    reviewed_at: datetime | None
    reviewer: str | None
    rejection_reason: str | None
    execution_price: Decimal | None
    trade_id: int | None
    failure_reason: str | None
    exchange: str | None
    id: int | None
    created_at: datetime | None
    updated_at: datetime | None

    def __init__(
        self,
        bot_id: str,
        symbol: str,
        side: str,
        quantity: DecimalInput,
        mode: str = "live",
        price: DecimalInput | None = None,
        stop_loss: DecimalInput | None = None,
        take_profit: DecimalInput | None = None,
        leverage: DecimalInput = 1,
        confidence: DecimalInput | None = None,
        rationale: str | None = None,
        decision_id: IntInput | None = None,
        expires_at: datetime | None = None,
        status: str = "pending",
        reviewed_at: datetime | None = None,
        reviewer: str | None = None,
        rejection_reason: str | None = None,
        execution_price: DecimalInput | None = None,
        trade_id: IntInput | None = None,
        failure_reason: str | None = None,
        exchange: str | None = None,
        id: IntInput | None = None,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> None:
        self.bot_id = to_text("bot_id", bot_id)
        self.symbol = to_text("symbol", symbol)
        self.side = _lowered("side", side, PROPOSAL_SIDES)
        self.quantity = _positive("quantity", to_decimal("quantity", quantity))
        self.mode = to_text("mode", mode, choices=MODES)
        self.price = _optional_positive("price", price)
        self.stop_loss = _optional_positive("stop_loss", stop_loss)
        self.take_profit = _optional_positive("take_profit", take_profit)
        self.leverage = _positive("leverage", to_decimal("leverage", leverage))
        self.confidence = _confidence(confidence)
        self.rationale = _long_text("rationale", rationale)
        self.decision_id = None if decision_id is None else to_id("decision_id", decision_id)
        self.expires_at = to_optional_utc("expires_at", expires_at)
        self.status = to_text("status", status, choices=PROPOSAL_STATUSES)
        self.reviewed_at = to_optional_utc("reviewed_at", reviewed_at)
        self.reviewer = to_optional_text("reviewer", reviewer)
        self.rejection_reason = _long_text("rejection_reason", rejection_reason)
        self.execution_price = _optional_positive("execution_price", execution_price)
        self.trade_id = None if trade_id is None else to_id("trade_id", trade_id)
        self.failure_reason = _long_text("failure_reason", failure_reason)
        self.exchange = to_optional_text("exchange", exchange)
        self.id = _optional_id(id)
        self.created_at = to_optional_utc("created_at", created_at)
        self.updated_at = to_optional_utc("updated_at", updated_at)
