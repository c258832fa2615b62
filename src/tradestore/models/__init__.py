"""ORM tables. ``Base.metadata`` is the schema the Alembic migrations create.

Models read as plain ``Mapped[Decimal]`` / ``Mapped[datetime]``: the type map turns them
into the exact column types of :mod:`tradestore.types`. Models never import the domain.
"""

from tradestore.models.base import NAMING_CONVENTION, Base, Key
from tradestore.models.candles import FetchedRangeModel, OHLCVModel, SeriesModel
from tradestore.models.events import SystemEventModel
from tradestore.models.orders import FillModel, OrderHistoryModel, OrderModel
from tradestore.models.trading import BOT_KEY, OPEN, PositionModel, TradeModel

__all__ = [
    "BOT_KEY",
    "NAMING_CONVENTION",
    "OPEN",
    "Base",
    "FetchedRangeModel",
    "FillModel",
    "Key",
    "OHLCVModel",
    "OrderHistoryModel",
    "OrderModel",
    "PositionModel",
    "SeriesModel",
    "SystemEventModel",
    "TradeModel",
]
