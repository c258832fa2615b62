"""The objects bots work with: bars, trades, positions, events, decisions, and the summaries of them.

Every dataclass validates and normalises itself on construction: money becomes ``Decimal``,
time becomes aware UTC, and anything else raises ``ValidationError`` naming the field and the
value. A constructed object is therefore always safe to store.
"""

from tradestore.domain.candles import OHLCVBar, SeriesInfo
from tradestore.domain.common import ACTIONS, MODES, POSITION_STATUSES, SEVERITIES, SIDES
from tradestore.domain.decisions import (
    DECISION_ACTIONS,
    PROPOSAL_MOVES,
    PROPOSAL_SIDES,
    PROPOSAL_STATUSES,
    Decision,
    Proposal,
    StrategyPerformance,
)
from tradestore.domain.events import SystemEvent
from tradestore.domain.trading import Position, Trade, TradeStatistics

__all__ = [
    "ACTIONS",
    "DECISION_ACTIONS",
    "MODES",
    "POSITION_STATUSES",
    "PROPOSAL_MOVES",
    "PROPOSAL_SIDES",
    "PROPOSAL_STATUSES",
    "SEVERITIES",
    "SIDES",
    "Decision",
    "OHLCVBar",
    "Position",
    "Proposal",
    "SeriesInfo",
    "StrategyPerformance",
    "SystemEvent",
    "Trade",
    "TradeStatistics",
]
