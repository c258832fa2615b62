"""The objects bots work with: bars, trades, orders and fills, positions, events, and the summaries of them.

Every dataclass validates and normalises itself on construction: money becomes ``Decimal``,
time becomes aware UTC, and anything else raises ``ValidationError`` naming the field and the
value. A constructed object is therefore always safe to store.
"""

from tradestore.domain.candles import OHLCVBar, SeriesInfo
from tradestore.domain.common import ACTIONS, MODES, POSITION_STATUSES, SEVERITIES, SIDES, TRADE_STATUSES
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
    "MODES",
    "OPEN_ORDER_STATUSES",
    "ORDER_STATUSES",
    "ORDER_TRANSITIONS",
    "POSITION_STATUSES",
    "SEVERITIES",
    "SIDES",
    "TRADE_STATUSES",
    "Fill",
    "OHLCVBar",
    "Order",
    "OrderStatusChange",
    "Position",
    "SeriesInfo",
    "SystemEvent",
    "Trade",
    "TradeStatistics",
    "fee_in_quote",
    "quote_currency",
]
