"""Store candles with a hole, find the hole, record trades, a position and events, print statistics.

Runs on the embedded SQLite default with no arguments; pass ``--url`` for PostgreSQL:

    python examples/storage_example.py
    python examples/storage_example.py --url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tradestore import (
    DatabaseManager,
    OHLCVBar,
    OHLCVRepository,
    Position,
    PositionRepository,
    SystemEventRepository,
    Trade,
    TradeRepository,
)


def candles(start: datetime, count: int, hole: range) -> list[OHLCVBar]:
    """``count`` one-minute candles of a deterministic price walk, leaving out the minutes in ``hole``."""
    bars, price = [], Decimal("42000.00")
    for i in range(count):
        price += Decimal((i * 7919) % 41 - 20) / 4
        if i not in hole:
            bars.append(
                OHLCVBar(
                    "BTCUSDT",
                    "binance",
                    "1m",
                    start + timedelta(minutes=i),
                    price,
                    price + 5,
                    price - 5,
                    price + 1,
                    Decimal("1.25") + i % 5,
                )
            )
    return bars


async def main(url: str | None) -> None:
    run = uuid.uuid4().hex[:8]  # keeps reruns apart: every trade and position below is this run's
    async with DatabaseManager(url) as db:
        await db.create_all()
        print(f"database : {db.database}")

        start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=300)
        async with db.get_session() as session:
            ohlcv = OHLCVRepository(session)
            written = await ohlcv.upsert_many(candles(start, 300, hole=range(120, 135)))
            gaps = await ohlcv.get_gaps("BTCUSDT", "1m", start=start, end=start + timedelta(minutes=299))
            latest = await ohlcv.get_latest("BTCUSDT", "1m", limit=3)
        print(f"candles  : {written} written, latest close {latest[-1].close} at {latest[-1].timestamp:%H:%M} UTC")
        for first, last in gaps:
            missing = (last - first) // timedelta(minutes=1) + 1
            print(f"gap      : {first:%Y-%m-%d %H:%M} .. {last:%H:%M} UTC ({missing} bars)")

        now = datetime.now(UTC)
        results = [("35.50", "1.20"), ("-12.25", "0.80"), ("48.00", "1.10"), ("-5.75", "0.40"), ("20.00", "0.95")]
        async with db.get_session() as session:
            trades = TradeRepository(session)
            for n, (pnl, fee) in enumerate(results):
                trade_id = await trades.insert(
                    Trade(
                        f"demo-{run}-{n}",
                        "BTCUSDT",
                        "binance",
                        "long",
                        "open",
                        Decimal("42000"),
                        Decimal("0.01"),
                        now - timedelta(hours=6 - n),
                        leverage=3,
                        bot_id=f"demo-{run}",
                        strategy="example",
                    )
                )
                await trades.update(
                    trade_id,
                    action="close",
                    exit_price=Decimal("42100"),
                    exit_time=now - timedelta(hours=5 - n),
                    realized_pnl=Decimal(pnl),
                    fee=Decimal(fee),
                )
            positions = PositionRepository(session)
            position_id = await positions.update_position(
                Position(
                    "BTCUSDT",
                    "binance",
                    "long",
                    Decimal("42050"),
                    Decimal("0.02"),
                    Decimal("280.33"),
                    now,
                    current_price=latest[-1].close,
                    bot_id=f"demo-{run}",
                )
            )
            events = SystemEventRepository(session)
            await events.log_event("bot_started", "info", "example bot started", details={"run": run})
            await events.log_event(
                "data_gap",
                "warning",
                f"{len(gaps)} gap(s) in BTCUSDT 1m",
                details={"gaps": [[a, b] for a, b in gaps]},
                symbol="BTCUSDT",
            )
            stats = await trades.get_statistics(days=1, bot_id=f"demo-{run}")
            recent = await events.get_recent_events(limit=2)
        print(f"position : #{position_id} open, 0.02 BTCUSDT long")
        print(f"events   : {', '.join(f'{e.severity}:{e.event_type}' for e in recent)}")

        print("\nTrade statistics (last day, this run)")
        rows = [
            ("trades", stats.total_trades),
            ("won / lost", f"{stats.winning_trades} / {stats.losing_trades}"),
            ("win rate", f"{stats.win_rate:.2f} %"),
            ("gross profit", stats.gross_profit),
            ("gross loss", stats.gross_loss),
            ("fees", stats.total_fees),
            ("net PnL", stats.net_pnl),
            ("average win", f"{stats.avg_win:.2f}"),
            ("average loss", f"{stats.avg_loss:.2f}"),
            ("largest win", stats.largest_win),
            ("largest loss", stats.largest_loss),
            ("profit factor", "n/a" if stats.profit_factor is None else f"{stats.profit_factor:.4f}"),
        ]
        for label, value in rows:
            print(f"  {label:<14}{value!s:>14}")
        print(f"\nhealth   : {(await db.health_check())['status']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", help="database URL (default: TRADESTORE_DATABASE_URL or sqlite+aiosqlite:///data/tradestore.db)"
    )
    asyncio.run(main(parser.parse_args().url))
