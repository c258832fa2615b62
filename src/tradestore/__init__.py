"""tradestore: the async storage layer for trading bots, on SQLite or PostgreSQL."""

from tradestore.domain import (
    Fill,
    OHLCVBar,
    Order,
    OrderStatusChange,
    Position,
    SeriesInfo,
    SystemEvent,
    Trade,
    TradeStatistics,
)
from tradestore.health import Health
from tradestore.manager import DatabaseManager
from tradestore.repositories import (
    OHLCVRepository,
    OrderRepository,
    PositionRepository,
    SystemEventRepository,
    TradeRepository,
)

__version__ = "0.1.0"

__all__ = [
    "DatabaseManager",
    "Fill",
    "Health",
    "OHLCVBar",
    "OHLCVRepository",
    "Order",
    "OrderRepository",
    "OrderStatusChange",
    "Position",
    "PositionRepository",
    "SeriesInfo",
    "SystemEvent",
    "SystemEventRepository",
    "Trade",
    "TradeRepository",
    "TradeStatistics",
]
