"""``tradestore import trades|decisions|events|equity``: seed bots' history in, bad records refused, nothing twice."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cli_runner import fails, ok, run
from tradestore import (
    DatabaseManager,
    Decision,
    DecisionRepository,
    EquityRepository,
    EquitySnapshot,
    SystemEventRepository,
    Trade,
    TradeRepository,
)
from tradestore.cli import main
from tradestore.models import TradeModel

DATA = Path(__file__).resolve().parent / "data"
SEED000, SEED001 = DATA / "seed000", DATA / "seed001"
#: How seed 001's trades.jsonl reads as tradestore trades.
TRADES_001 = (
    "--map", "id=trade_id", "--map", "asset=symbol", "--map", "action=side", "--map", "entry_timestamp=entry_time",
    "--map", "entry_size=quantity", "--map", "exit_timestamp=exit_time", "--set", "bot_id=ai-bot",
    "--set", "mode=paper", "--set", "strategy=llm",
)  # fmt: skip
#: How seed 001's diary.jsonl reads as decisions.
DIARY_001 = (
    "--map", "asset=symbol", "--map", "llm_model=model", "--set", "bot_id=ai-bot", "--set", "mode=paper",
    "--set", "strategy=llm",
)  # fmt: skip
#: Seed 000's signals and trades.
SIGNALS_000 = (
    "--map", "final_signal=action", "--map", "final_confidence=confidence", "--map", "aggregation_method=aggregation",
    "--map", "strategies=signals", "--set", "bot_id=sentinel", "--set", "exchange=kraken",
)  # fmt: skip
TRADES_000 = (
    "--map", "id=trade_id", "--map", "action=side", "--map", "amount=quantity", "--map", "price=entry_price",
    "--map", "timestamp=entry_time", "--set", "bot_id=sentinel", "--set", "exchange=kraken",
)  # fmt: skip
#: How seed 001's bot_states (its equity/state snapshots, one JSON line each) read as equity snapshots.
STATES_001 = (
    "--map", "open_positions_count=open_positions", "--map", "total_unrealized_pnl=unrealized_pnl",
    "--set", "bot_id=ai-bot", "--set", "mode=paper",
)  # fmt: skip
EVENTS_000 = ("--map", "timestamp=created_at", "--map", "level=severity", "--map", "error_type=event_type",
              "--map", "context=details")  # fmt: skip


@pytest.fixture
def db_url(fresh_url: str) -> str:
    """A database with the schema, on each backend."""
    ok("db", "upgrade", "--url", fresh_url)
    return fresh_url


def read(url: str) -> tuple[list[Trade], list[Decision]]:
    async def go() -> tuple[list[Trade], list[Decision]]:
        async with DatabaseManager(url) as db, db.get_session() as session:
            trades = await TradeRepository(session).get_recent(1000)
            return trades, await DecisionRepository(session).find(limit=1000)

    return asyncio.run(go())


def test_seed_001_trades_and_diary_with_attribution(db_url: str, tmp_path: Path) -> None:
    result = ok("import", "trades", SEED001 / "trades.jsonl", *TRADES_001, "--url", db_url, "--json").json
    assert (result["written"], result["already_stored"], result["rejected"]) == (3, 0, 0)
    assert "entry_value" in result["files"][0]["kept_in_metadata"]
    rejects = tmp_path / "rejects.jsonl"
    diary = ok(
        "import", "decisions", SEED001 / "diary.jsonl", *DIARY_001, "--skip-invalid", rejects, "--url", db_url
    ).out
    assert "imported 5 decisions" in diary and f"1 rejected, each with its reason, in {rejects}" in diary
    (rejected,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert (rejected["line"], rejected["field"], rejected["value"]) == (7, "action", "wait")
    assert rejected["file"].endswith("diary.jsonl") and "must be one of" in rejected["reason"]
    assert rejected["record"]["asset"] == "DOGE"

    trades, decisions = read(db_url)
    by_trade_id = {t.trade_id: t for t in trades}
    btc = by_trade_id["1"]
    assert (btc.symbol, btc.side, btc.action, btc.mode, btc.bot_id) == ("BTC", "long", "close", "paper", "ai-bot")
    assert (btc.entry_price, btc.quantity, btc.leverage, btc.realized_pnl) == (
        Decimal("45000.0"), Decimal("0.1"), Decimal("2.0"), Decimal("120.0"),
    )  # fmt: skip
    assert (btc.status, btc.stop_loss, btc.take_profit) == ("closed", Decimal("44000.0"), Decimal("46000.0"))
    assert btc.metadata is not None and btc.metadata["entry_value"] == "4500.0" and btc.metadata["llm_model"]
    assert by_trade_id["2"].side == "short" and (by_trade_id["3"].action, by_trade_id["3"].status) == ("open", "open")
    assert [d.action for d in decisions] == ["buy", "hold", "sell", "buy", "hold"]  # newest first
    linked = {d.symbol: d.trade_id for d in decisions if d.trade_id is not None}
    assert linked == {"BTC": btc.id, "ETH": by_trade_id["2"].id, "SOL": by_trade_id["3"].id}
    hold = decisions[-1]
    assert hold.indicators == {"rsi_14": "58.2", "ema_20": "44710.35", "macd": {"value": "120.4", "signal": "98.1"}}
    assert hold.model == "x-ai/grok-4" and hold.rationale is not None and hold.rationale.startswith("Waiting")

    async def performance() -> Any:
        async with DatabaseManager(db_url) as db, db.get_session() as session:
            return await DecisionRepository(session).strategy_performance(bot_id="ai-bot")

    (llm,) = asyncio.run(performance())
    assert (llm.decisions, llm.with_trade, llm.closed_trades, llm.wins, llm.losses) == (5, 3, 2, 1, 1)
    assert llm.net_pnl == Decimal("45.75") and llm.win_rate == Decimal("50")

    # the same files again: nothing new
    again = ok("import", "trades", SEED001 / "trades.jsonl", *TRADES_001, "--url", db_url, "--json").json
    assert (again["written"], again["already_stored"]) == (0, 3)
    again = ok(
        "import", "decisions", SEED001 / "diary.jsonl", *DIARY_001, "--skip-invalid", rejects, "--url", db_url,
        "--json",
    ).json  # fmt: skip
    assert (again["written"], again["already_stored"], again["rejected"]) == (0, 5, 1)
    assert [len(x) for x in read(db_url)] == [3, 5]


def test_a_bad_record_names_file_line_field_and_value_and_writes_nothing(db_url: str) -> None:
    ok("import", "trades", SEED001 / "trades.jsonl", *TRADES_001, "--url", db_url)
    line = fails("import", "decisions", SEED001 / "diary.jsonl", *DIARY_001, "--url", db_url)
    assert f"{SEED001 / 'diary.jsonl'} line 7: action: must be one of buy, sell, hold, close; got 'wait'" in line
    assert "nothing of" in line
    assert read(db_url)[1] == []


def test_a_decision_naming_an_unknown_trade_is_refused(db_url: str) -> None:
    line = fails("import", "decisions", SEED001 / "diary.jsonl", *DIARY_001, "--url", db_url)
    assert "line 2: trade_id: no trade with trade_id '1' on binance (import the trades first)" in line
    assert read(db_url) == ([], [])


def test_seed_000_signals_trades_and_error_logs(db_url: str, tmp_path: Path) -> None:
    rejects = tmp_path / "rejected.jsonl"
    signals = ok(
        "import", "decisions", SEED000 / "signals.json", *SIGNALS_000, "--skip-invalid", rejects, "--url", db_url,
        "--json",
    ).json  # fmt: skip
    assert (signals["written"], signals["rejected"]) == (3, 1)
    (bad,) = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert (bad["line"], bad["field"], bad["value"]) == (34, "confidence", "1.7")
    trades = ok(
        "import", "trades", SEED000 / "trades.json", *TRADES_000, "--skip-invalid", rejects, "--url", db_url, "--json"
    ).json
    assert (trades["written"], trades["rejected"]) == (2, 1)
    (bad,) = [json.loads(x) for x in rejects.read_text().splitlines()]  # the file is rewritten per command
    assert (bad["line"], bad["field"], bad["value"]) == (3, "quantity", 0)
    stored_trades, decisions = read(db_url)
    assert {t.exchange for t in stored_trades} == {"kraken"} and {d.exchange for d in decisions} == {"kraken"}
    fee = {t.trade_id: t.fee for t in stored_trades}
    assert fee == {"101": Decimal("1.30026"), "103": Decimal("1.3053365")}
    eth = next(d for d in decisions if d.symbol == "ETHUSD")
    assert (eth.action, eth.price, eth.confidence, eth.aggregation) == (
        "hold", Decimal("2750.125"), Decimal("0.41"), "weighted_average",
    )  # fmt: skip
    assert eth.signals == {"sentiment": {"signal": "HOLD", "confidence": "0.5"},
                           "technical": {"signal": "SELL", "confidence": "0.32"}}  # fmt: skip
    assert eth.metadata == {"id": 2, "test_mode": False} and eth.strategy_version == "a3f9c2d1"

    for expected in ((3, 0), (0, 3)):  # twice: the second time adds nothing
        events = ok("import", "events", SEED000 / "error_logs.json", *EVENTS_000, "--url", db_url, "--json").json
        assert (events["written"], events["already_stored"]) == expected

    async def logged() -> Any:
        async with DatabaseManager(db_url) as db, db.get_session() as session:
            return await SystemEventRepository(session).get_recent_events()

    stored = asyncio.run(logged())
    assert [(e.event_type, e.severity) for e in stored] == [
        ("recovered", "info"), ("feed_timeout", "warning"), ("api_error", "error"),
    ]  # fmt: skip
    assert stored[2].details == {"endpoint": "AddOrder", "retry_in": "2.5"}
    assert stored[2].created_at is not None and stored[2].created_at.isoformat() == "2025-02-03T09:30:00+00:00"


def test_standard_input_and_json_arrays(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (SEED001 / "trades.jsonl").read_text().splitlines()
    monkeypatch.setattr(sys, "stdin", io.StringIO("[\n" + ",\n".join(text) + "\n]\n"))
    result = ok("import", "trades", "-", *TRADES_001, "--url", db_url, "--json").json
    assert result["files"][0]["file"] == "<stdin>" and result["written"] == 3


def test_map_and_set_mistakes_are_clear(db_url: str, tmp_path: Path) -> None:
    both = tmp_path / "both.jsonl"
    both.write_text('{"asset": "BTC", "symbol": "BTC"}\n')
    line = fails("import", "trades", both, "--map", "asset=symbol", "--url", db_url)
    assert "line 1: symbol: given twice, as 'asset' (renamed by --map) and as 'symbol'" in line
    assert "--set: expected NAME=VALUE, got 'mode'" in fails("import", "trades", both, "--set", "mode", "--url", db_url)
    missing = fails("import", "trades", SEED001 / "trades.jsonl", "--url", db_url)
    assert "line 1: trade_id: missing (required; rename a field with --map or give one with --set)" in missing
    assert "no such file" in fails("import", "events", tmp_path / "nope.json", "--url", db_url)
    copy = tmp_path / "t.jsonl"
    shutil.copy(SEED001 / "trades.jsonl", copy)
    assert "is an input file" in fails("import", "trades", copy, "--skip-invalid", copy, "--url", db_url)
    broken = tmp_path / "broken.json"
    broken.write_text('[\n {"a": 1},\n {"b": 2\n]\n')
    assert f"{broken} line 4: not JSON" in fails("import", "events", broken, "--url", db_url)
    assert run("import", "equities", both, "--url", db_url).code == 2


def test_the_progress_bar_is_drawn_on_a_terminal(db_url: str) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out, err = io.StringIO(), Terminal()
    path = SEED001 / "trades.jsonl"
    assert main(["import", "trades", str(path), *TRADES_001, "--url", db_url], stdout=out, stderr=err) == 0
    shown = err.getvalue()
    assert "importing trades.jsonl [" in shown and shown.endswith("\r\x1b[K")


def test_a_failed_file_leaves_earlier_files_imported(db_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text((SEED001 / "trades.jsonl").read_text().replace('"entry_size": 10.0', '"entry_size": "ten"'))
    line = fails("import", "trades", SEED000 / "trades.json", bad, *TRADES_000, "--url", db_url)
    assert f"{bad} line 1" in line or f"{SEED000 / 'trades.json'} line 3" in line

    async def count() -> int:
        async with DatabaseManager(db_url) as db, db.get_session() as session:
            return len((await session.execute(TradeModel.__table__.select())).all())

    assert asyncio.run(count()) == 0  # the first file stops at its own bad record (quantity 0): nothing written


def test_a_file_that_is_not_utf8_names_its_line(db_url: str, tmp_path: Path) -> None:
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"event_type": "a", "severity": "info", "message": "ok"}\n{"message": "caf\xe9"}\n')
    line = fails("import", "events", latin, "--url", db_url)
    assert f"{latin} line 2: not UTF-8 text" in line and "nothing of" in line


def curve(url: str) -> list[EquitySnapshot]:
    async def go() -> list[EquitySnapshot]:
        async with DatabaseManager(url) as db, db.get_session() as session:
            return await EquityRepository(session).get_curve("ai-bot")

    return asyncio.run(go())


def test_seed_001_bot_states_as_equity_snapshots_once(db_url: str) -> None:
    states = SEED001 / "bot_states.jsonl"
    result = ok("import", "equity", states, *STATES_001, "--url", db_url, "--json").json
    assert (result["kind"], result["written"], result["already_stored"], result["rejected"]) == ("equity", 5, 0, 0)
    kept = result["files"][0]["kept_in_metadata"]
    assert {"sharpe_ratio", "win_rate", "max_drawdown", "total_return_pct", "total_value"} <= set(kept)
    assert "balance" not in kept and "open_positions_count" not in kept
    snapshots = curve(db_url)
    assert [s.equity for s in snapshots] == [
        Decimal("10000.0"), Decimal("10120.0"), Decimal("10104.37"), Decimal("10045.75"), Decimal("10083.25"),
    ]  # fmt: skip
    third = snapshots[2]
    assert (third.bot_id, third.mode, third.balance, third.unrealized_pnl, third.open_positions) == (
        "ai-bot", "paper", Decimal("10120.0"), Decimal("-15.63"), 1,
    )  # fmt: skip
    assert third.timestamp.isoformat() == "2025-03-11T09:20:00+00:00"
    assert third.metadata is not None
    assert (third.metadata["sharpe_ratio"], third.metadata["win_rate"], third.metadata["max_drawdown"]) == (
        "1.21", "100.0", "0.15",
    )  # fmt: skip
    assert snapshots[0].metadata is not None and snapshots[0].metadata["sharpe_ratio"] is None

    # the same file again adds nothing; a file changing a stored snapshot leaves the stored one as it is
    again = ok("import", "equity", states, *STATES_001, "--url", db_url, "--json").json
    assert (again["written"], again["already_stored"]) == (0, 5)
    text = ok("import", "equity", states, *STATES_001, "--url", db_url).out
    assert "imported 0 equity" in text and "5 were already stored and left as they are" in text
    assert "fields without a column, kept in metadata: avg_loss" in text
    assert curve(db_url) == snapshots
    # another mode is another curve: the key is (bot_id, mode, timestamp)
    live = ok("import", "equity", states, *STATES_001, "--set", "mode=live", "--url", db_url, "--json").json
    assert (live["written"], live["already_stored"]) == (5, 0)
    assert len(curve(db_url)) == 10


def test_a_bad_snapshot_names_file_line_field_and_value_and_writes_nothing(db_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bot_states.jsonl"
    lines = (SEED001 / "bot_states.jsonl").read_text().splitlines()
    lines[2] = lines[2].replace('"equity": 10104.37', '"equity": -10104.37')
    bad.write_text("\n".join(lines) + "\n")
    line = fails("import", "equity", bad, *STATES_001, "--url", db_url)
    assert f"{bad} line 3: equity: must not be negative" in line and "-10104.37" in line
    assert f"nothing of {bad} was written" in line
    assert curve(db_url) == []
    missing = fails("import", "equity", SEED001 / "bot_states.jsonl", "--url", db_url)
    assert "line 1: bot_id: missing (required; rename a field with --map or give one with --set)" in missing

    rejects = tmp_path / "rejects.jsonl"
    result = ok("import", "equity", bad, *STATES_001, "--skip-invalid", rejects, "--url", db_url, "--json").json
    assert (result["written"], result["rejected"]) == (4, 1)
    (rejected,) = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert (rejected["line"], rejected["field"], rejected["value"]) == (3, "equity", "-10104.37")
    assert [s.timestamp.isoformat()[:16] for s in curve(db_url)] == [
        "2025-03-10T14:00", "2025-03-10T18:30", "2025-03-11T12:00", "2025-03-12T16:45",
    ]  # fmt: skip


def test_equity_from_standard_input_as_a_json_array(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (SEED001 / "bot_states.jsonl").read_text().splitlines()
    monkeypatch.setattr(sys, "stdin", io.StringIO("[\n" + ",\n".join(text) + "\n]\n"))
    result = ok("import", "equity", "-", *STATES_001, "--url", db_url, "--json").json
    assert result["files"][0]["file"] == "<stdin>" and result["written"] == 5
    assert [s.open_positions for s in curve(db_url)] == [0, 0, 1, 0, 1]
