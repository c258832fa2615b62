"""ORM tables. ``Base.metadata`` is the schema the Alembic migrations create.

Models read as plain ``Mapped[Decimal]`` / ``Mapped[datetime]``: the type map turns them
into the exact column types of :mod:`tradestore.types`. Models never import the domain.
"""

from tradestore.models.base import NAMING_CONVENTION, Base, Key
from tradestore.models.bots import BotModel
from tradestore.models.candles import FetchedRangeModel, OHLCVModel, SeriesModel
from tradestore.models.decisions import CONTENT_KEY_LENGTH, DecisionModel, ProposalModel
from tradestore.models.equity import EquitySnapshotModel, PerformanceReportModel
from tradestore.models.events import SystemEventModel
from tradestore.models.orders import FillModel, OrderHistoryModel, OrderModel
from tradestore.models.trading import BOT_KEY, OPEN, PositionModel, TradeModel

__all__ = [
    "BOT_KEY",
    "CONTENT_KEY_LENGTH",
    "NAMING_CONVENTION",
    "OPEN",
    "Base",
    "BotModel",
    "DecisionModel",
    "EquitySnapshotModel",
    "FetchedRangeModel",
    "FillModel",
    "Key",
    "OHLCVModel",
    "OrderHistoryModel",
    "OrderModel",
    "PerformanceReportModel",
    "PositionModel",
    "ProposalModel",
    "SeriesModel",
    "SystemEventModel",
    "TradeModel",
]
