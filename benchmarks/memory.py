"""Peak memory of reading a range, measured in a fresh process so nothing earlier skews it.

``TRADESTORE_DATABASE_URL=… python -m benchmarks.memory BARS MODE`` prints one JSON object: ``peak_mib`` (growth of the
resident set size from just before the read to its peak), ``seconds`` and ``bars``. MODE is
``stream`` (``OHLCVRepository.stream_range``, bars dropped as they arrive, the way a bot folds them
into an indicator) or ``list`` (``get_range``: every bar held at once).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from benchmarks.data import MINUTE, SYMBOL, T0
from tradestore import DatabaseManager, OHLCVRepository


def _status_kib(field: str) -> int:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent process.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


async def _measure(bars: int, mode: str) -> dict[str, float]:
    end = T0 + (bars - 1) * MINUTE
    async with DatabaseManager() as db:  # TRADESTORE_DATABASE_URL
        async with db.get_session() as session:  # warm up: imports, connection, compiled statements
            await OHLCVRepository(session).get_latest(SYMBOL, "1m", limit=10)
        before = _status_kib("VmRSS")
        started = time.perf_counter()
        count = 0
        async with db.get_session() as session:
            repo = OHLCVRepository(session)
            if mode == "stream":
                async for _bar in repo.stream_range(SYMBOL, "1m", T0, end):
                    count += 1
            else:
                count = len(await repo.get_range(SYMBOL, "1m", T0, end))
        seconds = time.perf_counter() - started
    peak = _status_kib("VmHWM")
    return {"peak_mib": max(0, peak - before) / 1024, "seconds": seconds, "bars": count}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_measure(int(sys.argv[1]), sys.argv[2]))))
