"""Journal a bot's decisions, attribute a trade to the one that caused it, and run a proposal through approval.

Runs on the embedded SQLite default with no arguments; pass ``--url`` for PostgreSQL:

    python examples/decisions_and_approvals.py
    python examples/decisions_and_approvals.py --url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tradestore import (
    DatabaseManager,
    Decision,
    DecisionRepository,
    Proposal,
    ProposalRepository,
    Trade,
    TradeRepository,
)
from tradestore.errors import InvalidTransitionError


async def main(url: str | None) -> None:
    bot = f"demo-{uuid.uuid4().hex[:8]}"  # keeps reruns apart
    now = datetime.now(UTC)
    async with DatabaseManager(url) as db:
        await db.create_all()
        async with db.get_session() as session:
            decisions, trades = DecisionRepository(session), TradeRepository(session)
            await decisions.record(
                Decision(bot, "BTCUSDT", "hold", now - timedelta(minutes=10), price="44950",
                         rationale="Waiting for confirmation above 45k.", strategy="momentum")
            )  # fmt: skip
            buy = await decisions.record(
                Decision(bot, "BTCUSDT", "buy", now, price="45000", confidence="0.85", strategy="momentum",
                         signals={"sentiment": {"signal": "BUY", "confidence": 0.9},
                                  "technical": {"signal": "BUY", "confidence": 0.8}})
            )  # fmt: skip
            trade_id = await trades.insert(
                Trade(f"{bot}-1", "BTCUSDT", "binance", "long", "open", "45000", "0.1", now, bot_id=bot)
            )
            await decisions.link_trade(buy, trade_id)
            await trades.close(trade_id, exit_price=Decimal("46200"), exit_time=now + timedelta(hours=4),
                               realized_pnl=Decimal("120"), fee=Decimal("1.2"))  # fmt: skip
            why = await decisions.get_decisions_of_trade(trade_id)
            performance = await decisions.strategy_performance(bot_id=bot)
        print(f"trade #{trade_id} was caused by decision #{why[0].id}: {why[0].action} at {why[0].price}")
        for p in performance:
            print(f"strategy {p.strategy}: {p.decisions} decisions {p.by_action}, {p.closed_trades} closed trade(s), "
                  f"win rate {p.win_rate:.2f} %, net P&L {p.net_pnl}")  # fmt: skip

        async with db.get_session() as session:
            pid = await ProposalRepository(session).create(
                Proposal(bot, "SOL", "buy", "10", price="150", rationale="Breakout confirmation...",
                         expires_at=now + timedelta(minutes=15))
            )  # fmt: skip
        async with db.get_session() as session:  # the reviewer
            approved = await ProposalRepository(session).approve(pid, reviewer="alice")
        print(f"proposal #{pid}: {approved.status} by {approved.reviewer}")
        try:
            async with db.get_session() as session:  # a second reviewer, too late
                await ProposalRepository(session).reject(pid, reason="too risky", reviewer="bob")
        except InvalidTransitionError as exc:
            print(f"second reviewer: {exc}")
        async with db.get_session() as session:  # the bot executes it
            done = await ProposalRepository(session).mark_executed(pid, trade_id=trade_id, execution_price="150.25")
        print(f"proposal #{pid}: {done.status} at {done.execution_price}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", help="database URL (default: TRADESTORE_DATABASE_URL or sqlite+aiosqlite:///data/tradestore.db)"
    )
    asyncio.run(main(parser.parse_args().url))
