"""A bot's life in the store: register, heartbeat, record equity, fail, restart, recover, measure.

Runs on a fresh SQLite file with no arguments; pass ``--url`` for PostgreSQL (a new bot id each run):

    python examples/bot_lifecycle.py
    python examples/bot_lifecycle.py --url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tradestore import (
    Bot,
    BotRepository,
    DatabaseManager,
    EquityRepository,
    EquitySnapshot,
    Position,
    PositionRepository,
)
from tradestore.errors import InvalidTransitionError


async def main(url: str) -> None:
    name = f"grid-{uuid.uuid4().hex[:6]}"
    start = datetime(2024, 1, 1, tzinfo=UTC)
    async with DatabaseManager(url, auto_migrate=True) as db:
        async with db.get_session() as session:
            bots = BotRepository(session)
            await bots.register(Bot(name, mode="paper", strategy="grid", version="1.0"))
            await PositionRepository(session).update_position(
                Position("BTCUSDT", "binance", "long", Decimal("42000"), Decimal("0.01"), Decimal("42"), start,
                         bot_id=name, mode="paper")
            )  # fmt: skip
            # a month of hourly equity, in one bulk write
            equity, curve = Decimal("1000"), []
            for hour in range(24 * 30):
                equity += Decimal((hour * 7919) % 41 - 19) / 10
                curve.append(EquitySnapshot(name, start + timedelta(hours=hour), equity, mode="paper"))
            await EquityRepository(session).record_many(curve)
            await bots.heartbeat(name, balance=equity)
            await bots.set_status(name, "error", reason="exchange unreachable")
        print(f"{name}: crashed with status error")

        async with db.get_session() as session:
            bots = BotRepository(session)
            await bots.set_status(name, "starting", reason="supervisor restart")
            try:
                await bots.set_status(name, "starting", reason="a second supervisor")
            except InvalidTransitionError as exc:
                print(f"second restart refused: {exc}")
            state = await bots.recover(name, mode="paper")
            await bots.register(Bot(name, mode="paper", strategy="grid", version="1.1"))
        last = state.equity.equity if state.equity else "-"
        print(f"recovered {len(state.positions)} open position(s), last equity {last}, balance {state.balance}")

        async with db.get_session() as session:
            report = await EquityRepository(session).performance(name, mode="paper")
        print(
            f"performance over {report.periods} days: return {report.total_return}, max drawdown "
            f"{report.max_drawdown:.4%}, sharpe {report.sharpe}, sortino {report.sortino}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: a new SQLite file in a temporary folder)")
    given = parser.parse_args().url
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(main(given or f"sqlite:///{Path(folder) / 'bots.db'}"))
