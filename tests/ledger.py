"""A fill stream and its plain-Python reference, shared by test_fills.py and fills_child.py.

``stream(prefix)`` is 10 orders and 200 fills (some reported twice, as exchanges do) with
random exact quantities, prices, fees and fee currencies; ``expected(prefix)`` is what the
store must hold after recording them, computed here by hand with integers.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import select

from tradestore import DatabaseManager, Fill, Order, OrderRepository
from tradestore.models import FillModel, OrderHistoryModel, OrderModel

ORDERS = 10
FILLS = 200
REPEATS = 20
SEED = 20241126
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def stream(prefix: str) -> tuple[list[Order], list[Fill]]:
    """The orders (new) and the fill stream (``FILLS`` distinct fills plus ``REPEATS`` repeats)."""
    rng = random.Random(SEED)
    parts: dict[int, list[Decimal]] = {n: [] for n in range(ORDERS)}
    for i in range(FILLS):
        n = i % ORDERS  # every order gets FILLS / ORDERS fills
        parts[n].append(Decimal(rng.randint(1, 10**9)).scaleb(-rng.randint(0, 12)))
    orders = [
        Order(f"{prefix}-{n}", "ETH/USDC", "binance", "buy", "market", sum(parts[n], Decimal(0)), bot_id=prefix)
        for n in range(ORDERS)
    ]
    fills: list[Fill] = []
    for n in range(ORDERS):
        for k, quantity in enumerate(parts[n]):
            fills.append(
                Fill(
                    "binance",
                    "ETH/USDC",
                    f"{prefix}-{n}",
                    f"t{k}",  # the same trade ids in every order: the key includes the order
                    "buy",
                    Decimal(rng.randint(1, 10**12)).scaleb(-rng.randint(0, 10)),
                    quantity,
                    T0 + timedelta(seconds=k, milliseconds=n),
                    fee=Decimal(rng.randint(0, 10**7)).scaleb(-9),
                    fee_currency=rng.choice([None, "USDC", "ETH"]),
                )
            )
    rng.shuffle(fills)
    repeated = [fills[rng.randrange(len(fills))] for _ in range(REPEATS)]
    for fill in repeated:
        fills.insert(rng.randrange(len(fills) + 1), fill)
    return orders, fills


def exact_average(fills: list[Fill]) -> Decimal:
    """Σ(price * quantity) / Σ quantity rounded half-even to 18 places, with integers."""
    value = sum((Fraction(f.price) * Fraction(f.quantity) for f in fills), Fraction(0))
    scaled = value * 10**18 / sum((Fraction(f.quantity) for f in fills), Fraction(0))
    whole, rest = divmod(scaled.numerator, scaled.denominator)
    if 2 * rest > scaled.denominator or (2 * rest == scaled.denominator and whole % 2 == 1):
        whole += 1
    return Decimal(whole).scaleb(-18)


def expected(prefix: str) -> dict[str, Any]:
    """The state :func:`state` must read after the whole stream of ``prefix`` was recorded."""
    orders, fills = stream(prefix)
    distinct = {(f.client_order_id, f.exchange_trade_id): f for f in fills}
    result: dict[str, Any] = {}
    for order in orders:
        own = sorted((f for f in distinct.values() if f.client_order_id == order.client_order_id), key=_fill_key)
        fees = sum((f.fee for f in own if f.fee_currency in (None, "USDC")), Decimal(0))
        result[order.client_order_id] = {
            "status": "filled",
            "filled_quantity": sum((f.quantity for f in own), Decimal(0)),
            "average_fill_price": exact_average(own),
            "fee_total": fees,
            "fills": [_fill_row(f) for f in own],
            "history": ["new", "submitted", "partially_filled", "filled"],
        }
    return result


def _fill_key(fill: Fill) -> tuple[datetime, str]:
    return fill.timestamp, fill.exchange_trade_id


def _fill_row(fill: Fill) -> tuple[Any, ...]:
    return (fill.exchange_trade_id, fill.price, fill.quantity, fill.fee, fill.fee_currency, fill.timestamp)


async def create_orders(db: DatabaseManager, prefix: str) -> None:
    """Create the orders of ``prefix`` and move them to submitted, in one transaction (once)."""
    orders, _ = stream(prefix)
    async with db.get_session() as session:
        repo = OrderRepository(session)
        if await repo.get_by_client_id(orders[0].client_order_id, "binance") is not None:
            return
        for order in orders:
            await repo.transition(await repo.create(order), "submitted")


async def state(db: DatabaseManager, prefix: str) -> dict[str, Any]:
    """What the store holds for the orders of ``prefix``, in the shape of :func:`expected`."""
    o, f, h = OrderModel, FillModel, OrderHistoryModel
    async with db.get_session() as session:
        orders = (await session.execute(select(o).where(o.bot_id == prefix))).scalars().all()
        result: dict[str, Any] = {}
        for order in orders:
            fills = (await session.execute(select(f).where(f.order_id == order.id))).scalars().all()
            history = (await session.execute(select(h.status).where(h.order_id == order.id).order_by(h.id))).all()
            result[order.client_order_id] = {
                "status": order.status,
                "filled_quantity": order.filled_quantity,
                "average_fill_price": order.average_fill_price,
                "fee_total": order.fee_total,
                "fills": sorted(
                    ((x.exchange_trade_id, x.price, x.quantity, x.fee, x.fee_currency, x.timestamp) for x in fills),
                    key=lambda row: (row[5], row[0]),
                ),
                "history": [status for (status,) in history],
            }
    return result
