"""tradestore: the async storage layer for trading bots, on SQLite or PostgreSQL.

Everything a bot needs is importable from here: the manager, the repositories, the domain
objects and every error class (see :mod:`tradestore.errors` for the tree).
"""

from tradestore.domain import (
    Bot,
    Decision,
    EquitySnapshot,
    Fill,
    OHLCVBar,
    Order,
    OrderStatusChange,
    PerformanceReport,
    Position,
    Proposal,
    Recovery,
    SeriesInfo,
    StrategyPerformance,
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
    ReadOnlyError,
    SchemaError,
    StorageBusyError,
    StorageError,
    TransactionAbortedError,
    TransientError,
    ValidationError,
)
from tradestore.health import Health
from tradestore.manager import DatabaseManager
from tradestore.repositories import (
    BotRepository,
    DecisionRepository,
    EquityRepository,
    OHLCVRepository,
    OrderRepository,
    PositionRepository,
    ProposalRepository,
    SystemEventRepository,
    TradeRepository,
)
from tradestore.repositories.base import ALL_EXCHANGES

__version__ = "0.1.0"

__all__ = [
    "ALL_EXCHANGES",
    "Bot",
    "BotRepository",
    "ConfigurationError",
    "ConflictError",
    "ConnectionLostError",
    "DatabaseManager",
    "Decision",
    "DecisionRepository",
    "DuplicateError",
    "EquityRepository",
    "EquitySnapshot",
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
    "PerformanceReport",
    "Position",
    "PositionRepository",
    "Proposal",
    "ProposalRepository",
    "ReadOnlyError",
    "Recovery",
    "SchemaError",
    "SeriesInfo",
    "StorageBusyError",
    "StorageError",
    "StrategyPerformance",
    "SystemEvent",
    "SystemEventRepository",
    "Trade",
    "TradeRepository",
    "TradeStatistics",
    "TransactionAbortedError",
    "TransientError",
    "ValidationError",
]
