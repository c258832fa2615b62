"""The process test_fills.py kills: records the fill stream of ledger.py, one fill per transaction.

Usage: ``python fills_child.py URL PREFIX``. It creates the orders of ``PREFIX`` unless they
exist, prints ``ready``, then records every fill of the stream from the start, printing
``recorded N`` after each commit and ``done`` at the end. Run again, it replays the stream.
"""

from __future__ import annotations

import asyncio
import sys

from ledger import create_orders, stream
from tradestore import DatabaseManager, OrderRepository


async def main(url: str, prefix: str) -> None:
    _, fills = stream(prefix)
    db = DatabaseManager(url)
    await db.connect()
    await create_orders(db, prefix)
    print("ready", flush=True)
    for n, fill in enumerate(fills):
        async with db.get_session() as session:
            await OrderRepository(session).record_fill(fill)
        print(f"recorded {n}", flush=True)
    await db.disconnect()
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
