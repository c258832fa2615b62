"""One repository per table, each built on a session: ``OHLCVRepository(session)``."""

from tradestore.repositories.events import SystemEventRepository
from tradestore.repositories.ohlcv import OHLCVRepository
from tradestore.repositories.orders import OrderRepository
from tradestore.repositories.positions import PositionRepository
from tradestore.repositories.trades import TradeRepository

__all__ = ["OHLCVRepository", "OrderRepository", "PositionRepository", "SystemEventRepository", "TradeRepository"]
