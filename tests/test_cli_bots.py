"""``tradestore bots``, ``tradestore performance BOT_ID [--plot]`` and the new ``prune`` rules."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cli_runner import fails, ok
from factories import trade
from tradestore import Bot, BotRepository, DatabaseManager, EquityRepository, EquitySnapshot, TradeRepository

T0 = datetime(2024, 1, 1, tzinfo=UTC)


async def seed(url: str) -> None:
    async with DatabaseManager(url, auto_migrate=True) as db, db.get_session() as session:
        bots = BotRepository(session)
        await bots.register(Bot("alpha", strategy="grid", version="2", balance="1000"))
        await bots.register(Bot("beta", mode="paper"))
        await bots.register(Bot("gamma"))
        await bots.heartbeat("gamma", at=datetime.now(UTC) - timedelta(hours=3))
        await bots.set_status("beta", "stopped")
        equity = EquityRepository(session)
        await equity.record_many(
            EquitySnapshot("alpha", T0 + timedelta(hours=6 * i), Decimal(1000) + (i % 7) * 10 - i) for i in range(200)
        )
        await TradeRepository(session).insert(
            trade(1, pnl="12", fee="1", bot_id="alpha", exit_time=T0 + timedelta(days=2))
        )


def test_bots_lists_status_and_marks_stale_ones(fresh_url: str) -> None:
    asyncio.run(seed(fresh_url))
    text = ok("bots", "--url", fresh_url).out
    lines = {line.split()[0]: line for line in text.splitlines()[2:5]}
    assert "STALE" in lines["gamma"] and "3h ago" in lines["gamma"]
    assert "STALE" not in lines["alpha"] and "stopped" in lines["beta"] and "STALE" not in lines["beta"]
    assert "3 bots; 1 stale" in text
    data = ok("bots", "--url", fresh_url, "--json", "--stale-after", "4h").json
    assert [(b["bot_id"], b["stale"]) for b in data["bots"]] == [("alpha", False), ("beta", False), ("gamma", False)]
    assert data["bots"][0]["balance"] == "1000" and data["bots"][0]["strategy"] == "grid"
    assert [b["bot_id"] for b in ok("bots", "--url", fresh_url, "--json", "--mode", "paper").json["bots"]] == ["beta"]
    assert "no bots registered matching" in ok("bots", "--url", fresh_url, "--status", "error").out


def test_performance_table_json_and_errors(fresh_url: str) -> None:
    asyncio.run(seed(fresh_url))
    text = ok("performance", "alpha", "--url", fresh_url).out
    for label in ("total return", "max drawdown", "sharpe", "sortino", "calmar", "trades closed", "win rate"):
        assert label in text
    data = ok("performance", "alpha", "--url", fresh_url, "--json").json
    assert data["snapshots"] == 200 and data["mode"] == "live" and data["trades"]["net_pnl"] == "11"
    assert Decimal(data["max_drawdown"]) > 0 and data["periods_per_year"] == "365"
    windowed = ok(
        "performance", "alpha", "--start", "2024-01-10", "--periods-per-year", "252", "--risk-free-rate", "0.04",
        "--url", fresh_url, "--json",
    ).json  # fmt: skip
    assert windowed["start"] == "2024-01-10T00:00:00Z" and windowed["trades"]["total_trades"] == 0
    assert windowed["sharpe"] != data["sharpe"]
    assert "no equity snapshots of bot 'nobody'" in fails("performance", "nobody", "--url", fresh_url)


def test_performance_plot(fresh_url: str, tmp_path: Path) -> None:
    asyncio.run(seed(fresh_url))
    png = tmp_path / "plots" / "alpha.png"
    text = ok("performance", "alpha", "--plot", png, "--url", fresh_url).out
    assert f"plot written to {png}" in text
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 10_000
    assert "ending in .png" in fails("performance", "alpha", "--plot", tmp_path / "a.jpg", "--url", fresh_url)


def test_performance_plot_without_matplotlib_says_how_to_get_it(
    fresh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(seed(fresh_url))
    real = __import__("importlib.util").util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "matplotlib" else real(name, *args)

    monkeypatch.setattr("importlib.util.find_spec", find_spec)
    line = fails("performance", "alpha", "--plot", tmp_path / "a.png", "--url", fresh_url)
    assert "pip install 'tradestore[plot]'" in line and not (tmp_path / "a.png").exists()
    assert ok(  # without --plot the command runs as before
        "performance", "alpha", "--url", fresh_url
    ).out


def test_prune_new_rules_dry_run_counts(fresh_url: str) -> None:
    asyncio.run(seed(fresh_url))
    args = ("prune", "--equity-older-than", "30d", "--trades-older-than", "30d", "--reports-older-than", "1d")
    dry = ok(*args, "--dry-run", "--url", fresh_url, "--json").json
    assert [(p["table"], p["rows"], p["removed"]) for p in dry["pruned"]] == [
        ("trades", 1, False),
        ("equity_snapshots", 200, False),
        ("performance_reports", 0, False),
    ]
    kept = ok(*args[:3], "--equity-keep-daily", "--dry-run", "--url", fresh_url, "--json").json
    assert kept["pruned"][0]["rows"] == 200 - 50  # 200 snapshots, 4 a day: one per day stays
    assert "removed 201 rows" in ok(*args, "--url", fresh_url).out
    assert "needs --equity-older-than" in fails("prune", "--equity-keep-daily", "--url", fresh_url)
    assert "nothing to prune" in fails("prune", "--url", fresh_url)
