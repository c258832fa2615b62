"""The objects bots work with: bars, trades, orders and fills, positions, events, decisions and proposals.

Every dataclass validates and normalises itself on construction: money becomes ``Decimal``,
time becomes aware UTC, and anything else raises ``ValidationError`` naming the field and the
value. A constructed object is therefore always safe to store.
"""

from tradestore.domain.bots import BOT_TRANSITIONS, Bot, Recovery
from tradestore.domain.candles import OHLCVBar, SeriesInfo
from tradestore.domain.common import ACTIONS, BOT_STATUSES, MODES, POSITION_STATUSES, SEVERITIES, SIDES, TRADE_STATUSES
from tradestore.domain.decisions import (
    DECISION_ACTIONS,
    PROPOSAL_MOVES,
    PROPOSAL_SIDES,
    PROPOSAL_STATUSES,
    Decision,
    Proposal,
    StrategyPerformance,
)
from tradestore.domain.equity import EquitySnapshot, PerformanceReport
from tradestore.domain.events import SystemEvent
from tradestore.domain.orders import (
    OPEN_ORDER_STATUSES,
    ORDER_STATUSES,
    ORDER_TRANSITIONS,
    Fill,
    Order,
    OrderStatusChange,
    fee_in_quote,
    quote_currency,
)
from tradestore.domain.trading import Position, Trade, TradeStatistics

__all__ = [
    "ACTIONS",
    "BOT_STATUSES",
    "BOT_TRANSITIONS",
    "DECISION_ACTIONS",
    "MODES",
    "OPEN_ORDER_STATUSES",
    "ORDER_STATUSES",
    "ORDER_TRANSITIONS",
    "POSITION_STATUSES",
    "PROPOSAL_MOVES",
    "PROPOSAL_SIDES",
    "PROPOSAL_STATUSES",
    "SEVERITIES",
    "SIDES",
    "TRADE_STATUSES",
    "Bot",
    "Decision",
    "EquitySnapshot",
    "Fill",
    "OHLCVBar",
    "Order",
    "OrderStatusChange",
    "PerformanceReport",
    "Position",
    "Proposal",
    "Recovery",
    "SeriesInfo",
    "StrategyPerformance",
    "SystemEvent",
    "Trade",
    "TradeStatistics",
    "fee_in_quote",
    "quote_currency",
]
