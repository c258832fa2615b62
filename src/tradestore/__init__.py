"""tradestore: the async storage layer for trading bots, on SQLite or PostgreSQL."""

from tradestore.domain import (
    Bot,
    EquitySnapshot,
    OHLCVBar,
    PerformanceReport,
    Position,
    Recovery,
    SeriesInfo,
    SystemEvent,
    Trade,
    TradeStatistics,
)
from tradestore.health import Health
from tradestore.manager import DatabaseManager
from tradestore.repositories import (
    BotRepository,
    EquityRepository,
    OHLCVRepository,
    PositionRepository,
    SystemEventRepository,
    TradeRepository,
)

__version__ = "0.1.0"

__all__ = [
    "Bot",
    "BotRepository",
    "DatabaseManager",
    "EquityRepository",
    "EquitySnapshot",
    "Health",
    "OHLCVBar",
    "OHLCVRepository",
    "PerformanceReport",
    "Position",
    "PositionRepository",
    "Recovery",
    "SeriesInfo",
    "SystemEvent",
    "SystemEventRepository",
    "Trade",
    "TradeRepository",
    "TradeStatistics",
]
