"""The objects bots work with: bars, trades, positions, events, and the summaries of them.

Every dataclass validates and normalises itself on construction: money becomes ``Decimal``,
time becomes aware UTC, and anything else raises ``ValidationError`` naming the field and the
value. A constructed object is therefore always safe to store.
"""

from tradestore.domain.bots import TRANSITIONS, Bot, Recovery
from tradestore.domain.candles import OHLCVBar, SeriesInfo
from tradestore.domain.common import ACTIONS, BOT_STATUSES, MODES, POSITION_STATUSES, SEVERITIES, SIDES
from tradestore.domain.equity import EquitySnapshot, PerformanceReport
from tradestore.domain.events import SystemEvent
from tradestore.domain.trading import Position, Trade, TradeStatistics

__all__ = [
    "ACTIONS",
    "BOT_STATUSES",
    "MODES",
    "POSITION_STATUSES",
    "SEVERITIES",
    "SIDES",
    "TRANSITIONS",
    "Bot",
    "EquitySnapshot",
    "OHLCVBar",
    "PerformanceReport",
    "Position",
    "Recovery",
    "SeriesInfo",
    "SystemEvent",
    "Trade",
    "TradeStatistics",
]
