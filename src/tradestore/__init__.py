"""tradestore: the async storage layer for trading bots, on SQLite or PostgreSQL.

Everything a bot needs is importable from here: the manager, the repositories, the domain
objects and every error class (see :mod:`tradestore.errors` for the tree).
"""

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
from tradestore.errors import (
    ConfigurationError,
    ConflictError,
    ConnectionLostError,
    DuplicateError,
    InvalidTransitionError,
    NotConnectedError,
    NotFoundError,
    SchemaError,
    StorageBusyError,
    StorageError,
    TransientError,
    ValidationError,
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
from tradestore.repositories.base import ALL_EXCHANGES

__version__ = "0.1.0"

__all__ = [
    "ALL_EXCHANGES",
    "ConfigurationError",
    "ConflictError",
    "ConnectionLostError",
    "DatabaseManager",
    "DuplicateError",
    "Fill",
    "Health",
    "InvalidTransitionError",
    "NotConnectedError",
    "NotFoundError",
    "OHLCVBar",
    "OHLCVRepository",
    "Order",
    "OrderRepository",
    "OrderStatusChange",
    "Position",
    "PositionRepository",
    "SchemaError",
    "SeriesInfo",
    "StorageBusyError",
    "StorageError",
    "SystemEvent",
    "SystemEventRepository",
    "Trade",
    "TradeRepository",
    "TradeStatistics",
    "TransientError",
    "ValidationError",
]
