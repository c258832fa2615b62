"""Bots in separate processes sharing one database: the README's "Several bot processes" figures.

``python -m benchmarks --shared-file``: two bot processes at 20 iterations/s each on one SQLite
file (one write session per iteration: ``get_latest(50)``, insert a trade, close it, log an
event) beside an importer process, for the two loads of issue 9: 1,000-bar chunks ten times
a second ("paced") and 10,000-bar chunks back to back ("flood"). Reports each bot unit's
duration (p50 / p99 / max, from the start of the unit to its commit) and every error.

``python -m benchmarks --many-bots``: 20 bot processes running the same iteration as fast as
they can against one PostgreSQL server: iterations per second, p50 / p99.

Each process is ``python -m benchmarks.processes bot|importer …`` and prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tradestore import DatabaseManager, OHLCVBar, OHLCVRepository, SystemEventRepository, Trade, TradeRepository

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 1, 1, tzinfo=UTC)
BOT_SYMBOL = "BOTUSDT"
#: Paced: 1,000-bar chunks ten times a second; flood: 10,000-bar chunks back to back.
#: "alone": no importer, the bots' own floor on this machine.
LOADS = {"paced": (1_000, 0.1), "flood": (10_000, 0.0), "alone": (0, 0.0)}


def make_bars(symbol: str, start: int, count: int) -> list[OHLCVBar]:
    """``count`` 1m bars of ``symbol`` from minute ``start`` after 2024-01-01."""
    return [
        OHLCVBar(symbol, "binance", "1m", T0 + timedelta(minutes=start + i), "100", "101", "99", "100.5", "12.5")
        for i in range(count)
    ]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# --- the processes --------------------------------------------------------------------------


async def bot_unit(db: DatabaseManager, bot: int, n: int) -> None:
    """One iteration of a bot: read the latest bars, open and close a trade, log an event."""
    async with db.get_session() as session:
        bars = await OHLCVRepository(session).get_latest(BOT_SYMBOL, "1m", limit=50)
        price = bars[-1].close
        trades = TradeRepository(session)
        trade_id = await trades.insert(
            Trade(f"B{bot}-{n}", BOT_SYMBOL, "binance", "long", "open", price, "0.01", datetime.now(UTC))
        )
        await trades.update(trade_id, action="close", exit_price=price + 1, exit_time=datetime.now(UTC))
        await SystemEventRepository(session).log_event("tick", "info", f"bot {bot} iteration {n}", symbol=BOT_SYMBOL)


async def run_bot(args: argparse.Namespace) -> dict[str, Any]:
    durations: list[float] = []
    starts: list[float] = []
    errors: dict[str, int] = {}
    async with DatabaseManager(args.url, pool_size=2) as db:
        for n in range(3):  # warm up: connections, statement caches
            await bot_unit(db, args.id, -1 - n)
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
        began = time.perf_counter()
        n = 0
        while time.perf_counter() - began < args.duration:
            if args.rate:
                await asyncio.sleep(max(0.0, began + n / args.rate - time.perf_counter()))
            started = time.perf_counter()
            try:
                await bot_unit(db, args.id, n)
            except Exception as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            starts.append(started)
            durations.append(time.perf_counter() - started)
            n += 1
        elapsed = time.perf_counter() - began
    return {"durations": durations, "starts": starts, "errors": errors, "elapsed": elapsed}


async def run_importer(args: argparse.Namespace) -> dict[str, Any]:
    size, every = LOADS[args.load]
    # A few distinct chunks, written again and again (each write rewrites its rows): building
    # bars is not what is measured, and an importer fetching pages spends its time elsewhere.
    chunks = [make_bars(f"IMP{i % 3}", (i // 3) * size, size) for i in range(6)]
    durations: list[float] = []
    starts: list[float] = []
    errors: dict[str, int] = {}
    async with DatabaseManager(args.url, pool_size=1) as db:
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
        began = time.perf_counter()
        n = 0
        while size and time.perf_counter() - began < args.duration:
            if every:
                await asyncio.sleep(max(0.0, began + n * every - time.perf_counter()))
            started = time.perf_counter()
            try:
                async with db.get_session() as session:
                    await OHLCVRepository(session).upsert_many(chunks[n % len(chunks)])
            except Exception as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            starts.append(started)
            durations.append(time.perf_counter() - started)
            n += 1
    return {"durations": durations, "starts": starts, "errors": errors}


# --- the coordinator --------------------------------------------------------------------------


@dataclass
class Figures:
    load: str
    units: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    chunks: int
    chunk_p50_ms: float
    chunk_max_ms: float
    importer_errors: dict[str, int]
    #: Bot units that took longer than the two longest importer chunks they overlapped + 50 ms.
    starved: int

    def line(self) -> str:
        return (
            f"{self.load:6} bot units {self.units:5}  p50 {self.p50_ms:7.1f} ms  p99 {self.p99_ms:7.1f} ms  "
            f"max {self.max_ms:7.1f} ms  errors {sum(self.errors.values())} {self.errors or ''}  | importer "
            f"{self.chunks} chunks, p50 {self.chunk_p50_ms:.1f} ms, max {self.chunk_max_ms:.1f} ms, "
            f"errors {sum(self.importer_errors.values())}"
            + (f"; bot units > 2 overlapping chunks + 50 ms: {self.starved}" if self.chunks else "")
        )


def spawn(role: str, url: str, start_at: float, duration: float, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "benchmarks.processes", role, "--url", url, "--start-at", str(start_at)]
    command += ["--duration", str(duration), *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def collect(processes: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    """Each process's JSON result, in order; if one fails, the others are stopped."""
    try:
        results = []
        for process in processes:
            out, _ = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"{process.args!r} failed with exit code {process.returncode}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


async def prepare(url: str) -> None:
    async with DatabaseManager(url) as db:
        await db.create_all()
        async with db.get_session() as session:
            await OHLCVRepository(session).upsert_many(make_bars(BOT_SYMBOL, 0, 200))


def shared_file(load: str, duration: float, bots: int, rate: float, workdir: str | None) -> Figures:
    folder = tempfile.mkdtemp(prefix="tradestore-shared-", dir=workdir)
    url = f"sqlite+aiosqlite:///{folder}/shared.db"
    try:
        asyncio.run(prepare(url))
        start_at = time.time() + 3.0  # every process connected and warmed up by then
        importer = spawn("importer", url, start_at, duration, "--load", load)
        bot_processes = [
            spawn("bot", url, start_at, duration, "--id", str(i), "--rate", str(rate)) for i in range(bots)
        ]
        *results, imported = collect([*bot_processes, importer])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    durations = [d for r in results for d in r["durations"]]
    errors: dict[str, int] = {}
    for r in results:
        for name, count in r["errors"].items():
            errors[name] = errors.get(name, 0) + count
    chunks = imported["durations"]
    spans = list(zip(imported["starts"], chunks, strict=True))
    starved = sum(
        duration > starved_limit(start, duration, spans)
        for r in results
        for start, duration in zip(r["starts"], r["durations"], strict=True)
    )
    return Figures(
        load=load,
        units=len(durations),
        p50_ms=statistics.median(durations) * 1000,
        p99_ms=percentile(durations, 0.99) * 1000,
        max_ms=max(durations) * 1000,
        errors=errors,
        chunks=len(chunks),
        chunk_p50_ms=statistics.median(chunks) * 1000 if chunks else 0.0,
        chunk_max_ms=max(chunks, default=0.0) * 1000,
        importer_errors=imported["errors"],
        starved=starved,
    )


def starved_limit(start: float, duration: float, chunks: list[tuple[float, float]]) -> float:
    """The longest a bot unit may take: the two longest importer chunks it overlapped, + 50 ms."""
    end = start + duration
    overlapping = sorted((d for s, d in chunks if s < end and s + d > start), reverse=True)
    return sum(overlapping[:2]) + 0.050


def run_shared_file(args: argparse.Namespace) -> int:
    """The two loads of issue 9, one after the other, each on a fresh file; exit 1 if a goal is missed."""
    print(f"# {args.bots} bot processes at {args.rate:g} iterations/s + 1 importer, {args.duration:g} s per load")
    missed = 0
    for load in args.loads:
        figures = shared_file(load, args.duration, args.bots, args.rate, args.workdir)
        print(figures.line(), flush=True)
        ok = not figures.errors and not figures.importer_errors
        if load in ("paced", "alone"):
            goal = "0 errors, p99 <= 50 ms"
            ok = ok and figures.p99_ms <= 50
        else:
            goal = "0 errors, no bot unit longer than the 2 longest chunks it overlapped + 50 ms"
            ok = ok and figures.starved == 0
            typical = 2 * figures.chunk_p50_ms + 50
            goal += f" (max {figures.max_ms:.0f} ms; 2 median chunks + 50 ms = {typical:.0f} ms)"
        print(f"       goal: {goal}: {'met' if ok else 'MISSED'}")
        missed += not ok
    return 1 if missed else 0


def run_many_bots(args: argparse.Namespace) -> int:
    """``--bots`` processes against one PostgreSQL database, each as fast as it can (or at ``--rate``)."""
    import asyncpg

    from benchmarks.run import DEFAULT_PG_URL, drop_pg_database, pg_database

    admin = os.environ.get("TRADESTORE_BENCH_PG_URL", DEFAULT_PG_URL)
    url = asyncio.run(pg_database(admin))
    if url is None:
        print(f"PostgreSQL not reachable at {admin}: set TRADESTORE_BENCH_PG_URL")
        return 1
    try:
        asyncio.run(prepare(url))
        start_at = time.time() + 5.0 + args.bots * 0.2
        extra = ["--rate", str(args.rate)] if args.rate else []
        processes = [spawn("bot", url, start_at, args.duration, "--id", str(i), *extra) for i in range(args.bots)]
        results = collect(processes)
    finally:
        asyncio.run(drop_pg_database(admin, url))
    durations = [d for r in results for d in r["durations"]]
    errors = sum(sum(r["errors"].values()) for r in results)
    elapsed = max(r["elapsed"] for r in results)
    rate = f"{args.rate:g} iterations/s each" if args.rate else "as fast as they can"
    print(f"# {args.bots} bot processes, {rate}, {args.duration:g} s, one PostgreSQL server ({asyncpg.__name__})")
    print(
        f"iterations {len(durations)}  ({len(durations) / elapsed:,.0f}/s in all)  p50 "
        f"{statistics.median(durations) * 1000:.1f} ms  p99 {percentile(durations, 0.99) * 1000:.1f} ms  "
        f"max {max(durations) * 1000:.1f} ms  errors {errors}"
    )
    return 1 if errors else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m benchmarks --shared-file`` / ``--many-bots``."""
    group = parser.add_argument_group("bots in separate processes (instead of the other benchmarks)")
    group.add_argument(
        "--shared-file", action="store_true", help="2 bot processes + an importer on one SQLite file (issue 9)"
    )
    group.add_argument("--many-bots", action="store_true", help="20 bot processes against one PostgreSQL server")
    group.add_argument("--duration", type=float, default=45.0, help="seconds per run (default 45)")
    group.add_argument("--bots", type=int, default=None, help="bot processes (default 2 / 20)")
    group.add_argument(
        "--rate", type=float, default=None, help="iterations/s per bot (default 20 / 0 = as fast as it can)"
    )
    group.add_argument(
        "--loads",
        type=lambda s: s.split(","),
        default=["paced", "flood"],
        help="comma-separated: paced,flood,alone (default paced,flood)",
    )


def run(args: argparse.Namespace) -> int:
    """``--shared-file`` or ``--many-bots``, with their defaults filled in."""
    if args.shared_file:
        args.bots = 2 if args.bots is None else args.bots
        args.rate = 20.0 if args.rate is None else args.rate
        return run_shared_file(args)
    args.bots = 20 if args.bots is None else args.bots
    args.rate = 0.0 if args.rate is None else args.rate
    return run_many_bots(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.processes", description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("bot", "importer"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--start-at", type=float, required=True, help="time.time() at which timing starts")
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--id", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0, help="iterations per second (0: as fast as possible)")
    parser.add_argument("--load", choices=tuple(LOADS), default="paced")
    args = parser.parse_args(argv)
    result = asyncio.run(run_bot(args) if args.role == "bot" else run_importer(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
