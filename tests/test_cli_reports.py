"""``tradestore health | stats | series | gaps``, on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete

from cli_runner import fails, ok, seed
from factories import trade
from tradestore import (
    Bot,
    BotRepository,
    DatabaseManager,
    Decision,
    DecisionRepository,
    Proposal,
    ProposalRepository,
    TradeRepository,
    schema,
)
from tradestore.admin import inventory
from tradestore.models import OHLCVModel
from tradestore.urls import resolve

HEAD = schema.head_revision()


def test_health(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [0, 1])
    report = ok("health", "--url", fresh_url, "--json").json
    assert report["status"] == "healthy" and report["latency_ms"] >= 0 and report["server_version"]
    assert (report["schema_revision"], report["schema_head"], report["schema_status"]) == (HEAD, HEAD, "current")
    assert report["size_bytes"] > 0
    text = ok("health", "--url", fresh_url).out
    assert "healthy" in text and f"{HEAD} (current" in text


def test_stats_counts_rows_per_table_and_series(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [0, 1, 2, 5])
    seed(fresh_url, tmp_path, [0, 1], symbol="ETHUSDT")
    stats = ok("stats", "--url", fresh_url, "--json").json
    # the series ledger: one row per series; the fetched ranges: BTCUSDT's 0-2 and 5, ETHUSDT's 0-1
    assert stats["rows"] == {t: 0 for t in schema.TABLES} | {"ohlcv": 6, "ohlcv_series": 2, "ohlcv_fetched": 3}
    assert stats["series"] == 2 and stats["schema_status"] == "current" and stats["size_bytes"] > 0
    text = ok("stats", "--url", fresh_url).out
    assert ["ohlcv", "6"] in [line.split() for line in text.splitlines()] and "series    2" in text


async def _fill(url: str) -> None:
    now = datetime.now(UTC)
    async with DatabaseManager(url) as db, db.get_session() as session:
        trades = TradeRepository(session)
        closed = await trades.insert(trade(1, pnl="10", mode="paper"))
        await trades.insert(trade(2, mode="paper"))
        await trades.insert(trade(3))
        await DecisionRepository(session).record_many(
            [Decision("bot", "BTCUSDT", "buy", now - timedelta(minutes=m), mode="paper" if m % 2 else "live",
                      trade_id=closed) for m in range(5)]
        )  # fmt: skip
        proposals = ProposalRepository(session)
        await proposals.create(Proposal("bot", "BTCUSDT", "buy", "1"))
        await proposals.create(Proposal("bot", "BTCUSDT", "buy", "1", expires_at=now - timedelta(seconds=1)))
        await proposals.reject(await proposals.create(Proposal("bot", "BTCUSDT", "sell", "1")), reason="no")
        bots = BotRepository(session)
        for name in ("a", "b", "c"):
            await bots.register(Bot(name, mode="paper"))
        await bots.set_status("b", "stopped")


def test_stats_splits_rows_by_mode_and_counts_what_bots_ask(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, list(range(1400)))
    asyncio.run(_fill(fresh_url))

    async def forget_candles() -> None:
        async with DatabaseManager(fresh_url) as db, db.get_session() as session:
            await session.execute(delete(OHLCVModel))

    asyncio.run(forget_candles())
    stats = ok("stats", "--url", fresh_url, "--json").json
    assert stats["rows"]["trades"] == 3 and stats["rows"]["decisions"] == 5 and stats["rows"]["proposals"] == 3
    assert stats["rows_by_mode"]["trades"] == {"live": 1, "paper": 2}
    assert stats["rows_by_mode"]["decisions"] == {"live": 3, "paper": 2}
    assert stats["rows_by_mode"]["positions"] == {} and "ohlcv" not in stats["rows_by_mode"]
    assert (stats["open_trades"], stats["closed_trades"], stats["pending_proposals"]) == (2, 1, 1)
    assert stats["bots_by_status"] == {"running": 2, "stopped": 1} and stats["rows_by_mode"]["bots"] == {"paper": 3}
    if resolve(fresh_url).get_backend_name() == "sqlite":
        assert stats["free_pages"] > 0 and stats["free_bytes"] == stats["free_pages"] * 4096
        text = ok("stats", "--url", fresh_url).out
        assert f"free      {stats['free_pages']:,} pages" in text
        ok("optimize", "--url", fresh_url)
        assert ok("stats", "--url", fresh_url, "--json").json["free_pages"] == 0
    else:
        assert stats["free_pages"] is None and stats["free_bytes"] is None
    text = ok("stats", "--url", fresh_url).out
    assert "pending proposals  1" in text and "open trades        2" in text
    assert "bots               2 running, 1 stopped" in text
    assert ["table", "rows", "live", "paper"] in [line.split() for line in text.splitlines()]
    assert ["trades", "3", "1", "2"] in [line.split() for line in text.splitlines()]
    library = asyncio.run(inventory.inventory(resolve(fresh_url))).as_dict()
    assert library == ok("stats", "--url", fresh_url, "--json").json | {"size_bytes": library["size_bytes"]}


def test_stats_of_an_empty_database(fresh_url: str) -> None:
    stats = ok("stats", "--url", fresh_url, "--json").json
    assert stats["rows"] == {} and stats["series"] == 0 and stats["schema_status"] == "empty"
    assert stats["open_trades"] is None and stats["pending_proposals"] is None and stats["rows_by_mode"] == {}
    assert stats["bots_by_status"] is None  # no bots table: unknown, not "no bots"


def test_stats_of_a_database_without_bots(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [0])
    assert ok("stats", "--url", fresh_url, "--json").json["bots_by_status"] == {}
    assert "bots               none" in ok("stats", "--url", fresh_url).out


def test_series_lists_spans_bars_and_gaps(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [0, 1, 2, 5, 6, 9])  # gaps: 3-4 and 7-8
    seed(fresh_url, tmp_path, [0, 1], symbol="ETHUSDT")
    rows = ok("series", "--url", fresh_url, "--json").json
    assert [(r["symbol"], r["bars"], r["gaps"], r["missing"]) for r in rows] == [
        ("BTCUSDT", 6, 2, 4),
        ("ETHUSDT", 2, 0, 0),
    ]
    assert rows[0]["first"] == "2024-01-01T00:00:00Z" and rows[0]["last"] == "2024-01-01T00:09:00Z"
    lines = ok("series", "--url", fresh_url).out.splitlines()
    assert lines[0].split() == ["exchange", "symbol", "timeframe", "first", "last", "bars", "gaps", "missing"]
    assert lines[2].split()[-3:] == ["6", "2", "4"]
    assert ok("series", "--exchange", "kraken", "--url", fresh_url).out == "no candles stored for kraken\n"


def test_gaps_with_and_without_a_window(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [2, 3, 4, 8, 9])
    found = ok("gaps", "binance", "BTCUSDT", "1m", "--url", fresh_url, "--json").json
    assert found["gaps"] == [{"first": "2024-01-01T00:05:00Z", "last": "2024-01-01T00:07:00Z", "missing": 3}]
    window = ok(
        "gaps", "binance", "BTCUSDT", "1m", "--start", "2024-01-01", "--end", "2024-01-01T00:11:00Z",
        "--url", fresh_url, "--json",
    ).json  # fmt: skip
    assert [(g["first"][11:16], g["last"][11:16], g["missing"]) for g in window["gaps"]] == [
        ("00:00", "00:01", 2),
        ("00:05", "00:07", 3),
        ("00:10", "00:11", 2),
    ]
    assert window["missing"] == 7
    text = ok("gaps", "binance", "BTCUSDT", "1m", "--url", fresh_url).out
    assert "2024-01-01 00:05:00Z  2024-01-01 00:07:00Z     3" in text and "1 gap, 3 missing bars" in text


def test_gaps_of_a_series_without_holes_and_of_an_unknown_series(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [0, 1, 2])
    assert ok("gaps", "binance", "BTCUSDT", "1m", "--url", fresh_url).out == "binance BTCUSDT 1m: no gaps\n"
    assert "no 1m bars stored for binance DOGEUSDT" in fails("gaps", "binance", "DOGEUSDT", "1m", "--url", fresh_url)


def test_reading_commands_refuse_a_database_without_schema(fresh_url: str) -> None:
    assert "no tradestore schema yet" in fails("series", "--url", fresh_url)


def test_gaps_of_an_unknown_series_is_an_error_with_or_without_a_window(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [0, 1, 2], symbol="DOGEUSDT")
    windows = [(), ("--start", "2024-01-01"), ("--end", "2024-01-02"), ("--start", "2024-01-01", "--end", "2024-01-02")]
    for window in windows:
        line = fails("gaps", "binance", "DOGEUSTD", "1m", *window, "--url", fresh_url)  # misspelt
        assert "no 1m bars stored for binance DOGEUSTD on any exchange" in line, window
        line = fails("gaps", "kraken", "DOGEUSDT", "1m", *window, "--url", fresh_url)  # stored elsewhere
        assert "no 1m bars stored for kraken DOGEUSDT; DOGEUSDT 1m is stored for binance" in line, window
    known = ok("gaps", "binance", "DOGEUSDT", "1m", "--end", "2024-01-01T00:04:00Z", "--url", fresh_url, "--json")
    assert known.json["missing"] == 2  # a known series: its missing bars, as before
