"""The process test_crash.py kills: upserts 20,000-bar batches until it is killed.

Usage: ``python crash_child.py URL PREFIX``. Batch ``n`` is every bar of symbol ``PREFIX-n``;
after each commit the child prints ``committed PREFIX-n``. It prints ``ready`` once connected.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from itertools import count

from tradestore import DatabaseManager, OHLCVBar, OHLCVRepository

BATCH = 20_000


async def main(url: str, prefix: str) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    batch = [
        OHLCVBar(prefix, "binance", "1m", start + timedelta(minutes=i), "100", "101", "99", "100.5", "12.5")
        for i in range(BATCH)
    ]
    db = DatabaseManager(url)
    await db.connect()
    print("ready", flush=True)
    for n in count():
        symbol = f"{prefix}-{n}"
        for bar in batch:
            bar.symbol = symbol  # already validated; only the symbol changes from batch to batch
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many(batch)
        print(f"committed {symbol}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
