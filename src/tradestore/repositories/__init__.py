"""One repository per table, each built on a session: ``OHLCVRepository(session)``."""

from tradestore.repositories.bots import BotRepository
from tradestore.repositories.decisions import DecisionRepository
from tradestore.repositories.equity import EquityRepository
from tradestore.repositories.events import SystemEventRepository
from tradestore.repositories.ohlcv import OHLCVRepository
from tradestore.repositories.orders import OrderRepository
from tradestore.repositories.positions import PositionRepository
from tradestore.repositories.proposals import ProposalRepository
from tradestore.repositories.trades import TradeRepository

__all__ = [
    "BotRepository",
    "DecisionRepository",
    "EquityRepository",
    "OHLCVRepository",
    "OrderRepository",
    "PositionRepository",
    "ProposalRepository",
    "SystemEventRepository",
    "TradeRepository",
]
