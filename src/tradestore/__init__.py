"""tradestore: the async storage layer for trading bots, on SQLite or PostgreSQL."""

from tradestore.domain import (
    Decision,
    OHLCVBar,
    Position,
    Proposal,
    SeriesInfo,
    StrategyPerformance,
    SystemEvent,
    Trade,
    TradeStatistics,
)
from tradestore.health import Health
from tradestore.manager import DatabaseManager
from tradestore.repositories import (
    DecisionRepository,
    OHLCVRepository,
    PositionRepository,
    ProposalRepository,
    SystemEventRepository,
    TradeRepository,
)

__version__ = "0.1.0"

__all__ = [
    "DatabaseManager",
    "Decision",
    "DecisionRepository",
    "Health",
    "OHLCVBar",
    "OHLCVRepository",
    "Position",
    "PositionRepository",
    "Proposal",
    "ProposalRepository",
    "SeriesInfo",
    "StrategyPerformance",
    "SystemEvent",
    "SystemEventRepository",
    "Trade",
    "TradeRepository",
    "TradeStatistics",
]
