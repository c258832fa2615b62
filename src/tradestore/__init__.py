"""tradestore: the async storage layer for trading bots, on SQLite or PostgreSQL."""

from tradestore.domain import OHLCVBar, Position, SeriesInfo, SystemEvent, Trade, TradeStatistics
from tradestore.health import Health
from tradestore.manager import DatabaseManager
from tradestore.repositories import OHLCVRepository, PositionRepository, SystemEventRepository, TradeRepository

__version__ = "0.1.0"

__all__ = [
    "DatabaseManager",
    "Health",
    "OHLCVBar",
    "OHLCVRepository",
    "Position",
    "PositionRepository",
    "SeriesInfo",
    "SystemEvent",
    "SystemEventRepository",
    "Trade",
    "TradeRepository",
    "TradeStatistics",
]
