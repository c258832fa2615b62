"""Open a trade with a limit order, record its fills (one of them twice, as exchanges resend), close it.

Runs on the embedded SQLite default with no arguments; pass ``--url`` for PostgreSQL:

    python examples/order_ledger.py
    python examples/order_ledger.py --url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from tradestore import DatabaseManager, Fill, Order, OrderRepository, Trade, TradeRepository
from tradestore.errors import ConflictError


async def main(url: str | None) -> None:
    run = uuid.uuid4().hex[:8]  # keeps reruns apart: the ids below are this run's
    now = datetime.now(UTC)
    async with DatabaseManager(url) as db:
        await db.create_all()
        async with db.get_session() as session:
            trades, orders = TradeRepository(session), OrderRepository(session)
            trade_id = await trades.insert(
                Trade(f"{run}-T1", "BTC/USDT", "binance", "long", "open", "50000", "0.5", now, stop_loss="49000")
            )
            order_id = await orders.create(
                Order(f"{run}-buy", "BTC/USDT", "binance", "buy", "limit", "0.5", price="50000", trade_id=trade_id)
            )
            await orders.transition(order_id, "submitted")
            await orders.transition(order_id, "open", exchange_order_id="812345")

        stream = [
            Fill(
                "binance", "BTC/USDT", f"{run}-buy", "77", "buy", "49999.5", "0.2", now, fee="0.01", fee_currency="USDT"
            ),
            Fill(
                "binance", "BTC/USDT", f"{run}-buy", "77", "buy", "49999.5", "0.2", now, fee="0.01", fee_currency="USDT"
            ),
            Fill(
                "binance",
                "BTC/USDT",
                f"{run}-buy",
                "78",
                "buy",
                "50000",
                "0.3",
                now + timedelta(seconds=1),
                fee="0.00002",
                fee_currency="BNB",
            ),
        ]
        for fill in stream:
            async with db.get_session() as session:
                new = await OrderRepository(session).record_fill(fill)
            print(f"fill {fill.exchange_trade_id}: {'recorded' if new else 'already recorded, nothing changed'}")
        try:
            async with db.get_session() as session:
                await OrderRepository(session).record_fill(
                    Fill("binance", "BTC/USDT", f"{run}-buy", "78", "buy", "50001", "0.3", now + timedelta(seconds=1))
                )
        except ConflictError as exc:
            print(f"refused  : {exc}")

        async with db.get_session() as session:
            orders = OrderRepository(session)
            order = await orders.get(order_id)
            assert order is not None
            print(f"order    : {order.status}, filled {order.filled_quantity} at {order.average_fill_price}")
            print(f"fees     : total in USDT {order.fee_total}; all {await orders.get_fees(order_id)}")
            print("history  : " + " -> ".join(h.status for h in await orders.get_history(order_id)))
            closed = await TradeRepository(session).close(trade_id, exit_price="51000", exit_reason="take_profit")
            print(f"trade    : {closed.status}, pnl {closed.realized_pnl} ({closed.exit_reason})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", help="database URL (default: TRADESTORE_DATABASE_URL or data/tradestore.db)")
    asyncio.run(main(parser.parse_args().url))
