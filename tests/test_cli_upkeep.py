"""``tradestore backup | prune | optimize``."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from cli_runner import fails, ok, run, seed
from factories import T0, bars
from tradestore import DatabaseManager, OHLCVBar, OHLCVRepository, SystemEventRepository
from tradestore.admin.backup import backup
from tradestore.models import OHLCVModel, SystemEventModel
from tradestore.urls import resolve


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_backup_is_a_private_checked_single_file(new_database: Callable[[str], str], tmp_path: Path) -> None:
    url = new_database("sqlite")
    seed(url, tmp_path, [0, 1, 2])
    dest = tmp_path / "backups" / "bot.db"
    dest.parent.mkdir()
    report = ok("backup", dest, "--url", url, "--json").json
    assert report["integrity"] == "ok" and report["method"] == "sqlite online backup"
    assert mode(dest) == 0o600 and sorted(p.name for p in dest.parent.iterdir()) == ["bot.db"]
    with sqlite3.connect(dest) as copy:
        assert copy.execute("SELECT count(*) FROM ohlcv").fetchone() == (3,)
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert ok("series", "--url", f"sqlite:///{dest}", "--json").json[0]["bars"] == 3
    assert "already exists" in fails("backup", dest, "--url", url)
    ok("backup", dest, "--force", "--url", url)
    named = ok("backup", dest.parent, "--url", url, "--json").json["destination"]
    assert Path(named).parent == dest.parent and Path(named).name.startswith("fresh-") and mode(Path(named)) == 0o600


async def test_sqlite_backup_is_consistent_while_writers_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    async with DatabaseManager(url, auto_migrate=True) as db:
        stop = asyncio.Event()
        written = 0

        async def writer() -> None:  # ten events per transaction, as fast as it can
            nonlocal written
            while not stop.is_set():
                async with db.get_session() as session:
                    events = SystemEventRepository(session)
                    for i in range(10):
                        await events.log_event("tick", "debug", f"tick {written + i}")
                written += 10
                await asyncio.sleep(0)

        task = asyncio.create_task(writer())
        while written < 200:
            await asyncio.sleep(0.01)
        reports = [await backup(resolve(url), tmp_path / f"copy-{n}.db") for n in range(3)]
        stop.set()
        await task
    for report in reports:
        assert report.integrity == "ok"
        with sqlite3.connect(report.destination) as copy:
            (count,) = copy.execute("SELECT count(*) FROM system_events").fetchone()
        assert count >= 200 and count % 10 == 0  # whole transactions only


def test_postgres_backup_runs_pg_dump(new_database: Callable[[str], str], tmp_path: Path) -> None:
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not on the PATH")
    url = new_database("postgres")
    seed(url, tmp_path, [0, 1])
    dest = tmp_path / "bot.dump"
    report = ok("backup", dest, "--url", url, "--json").json
    assert report["method"] == "pg_dump (custom format)" and report["size_bytes"] > 0
    assert mode(dest) == 0o600 and dest.read_bytes().startswith(b"PGDMP")


def test_postgres_backup_without_pg_dump_says_so(
    new_database: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = new_database("postgres")
    monkeypatch.setenv("PATH", str(tmp_path))
    line = fails("backup", tmp_path / "bot.dump", "--url", url)
    assert "pg_dump is not on the PATH" in line and not (tmp_path / "bot.dump").exists()


def test_backup_of_an_unreachable_server_or_in_memory_database(tmp_path: Path) -> None:
    line = fails("backup", tmp_path / "x.dump", "--url", "postgresql://bot:s3cr3t-pw@127.0.0.1:1/nowhere")
    assert "pg_dump" in line and "s3cr3t-pw" not in line
    assert "in-memory" in fails("backup", tmp_path / "x.db", "--url", "sqlite:///:memory:")
    assert list(tmp_path.iterdir()) == []


async def old_rows(url: str) -> None:
    """Events of 40 and 5 days ago; 1m bars of 2024 (old) and of now, and 1h bars of 2024."""
    now = datetime.now(UTC)
    async with DatabaseManager(url, auto_migrate=True) as db, db.get_session() as session:
        for age in (40, 40, 5):
            await session.execute(
                insert(SystemEventModel).values(
                    event_type="x", severity="info", message="m", created_at=now - timedelta(days=age)
                )
            )
        repo = OHLCVRepository(session)
        await repo.upsert_many(bars(5))
        await repo.upsert_many(
            [OHLCVBar("BTCUSDT", "binance", "1h", T0 + timedelta(hours=h), 1, 1, 1, 1, 1) for h in (0, 1)]
        )
        recent = now.replace(second=0, microsecond=0)
        await repo.upsert_many([OHLCVBar("NOW", "binance", "1m", recent, 1, 1, 1, 1, 1)])


async def row_counts(url: str) -> tuple[int, int]:
    async with DatabaseManager(url) as db, db.get_session() as session:
        events = await session.scalar(select(func.count()).select_from(SystemEventModel))
        candles = await session.scalar(select(func.count()).select_from(OHLCVModel))
    return int(events or 0), int(candles or 0)


def test_prune_reports_then_removes(fresh_url: str) -> None:
    asyncio.run(old_rows(fresh_url))
    args = ("prune", "--events-older-than", "30d", "--bars-older-than", "365d", "--timeframe", "1m")
    dry = ok(*args, "--dry-run", "--url", fresh_url, "--json").json
    assert [(p["table"], p["rows"], p["removed"]) for p in dry["pruned"]] == [
        ("system_events", 2, False),
        ("ohlcv", 5, False),
    ]
    assert asyncio.run(row_counts(fresh_url)) == (3, 8)
    text = ok(*args, "--url", fresh_url).out
    assert "removed 7 rows" in text and "created before" in text
    assert asyncio.run(row_counts(fresh_url)) == (1, 3)  # the 1h bars and the recent 1m bar stay


def test_prune_needs_a_rule(fresh_url: str) -> None:
    asyncio.run(old_rows(fresh_url))
    assert "nothing to prune" in fails("prune", "--url", fresh_url)
    assert "needs --timeframe" in fails("prune", "--bars-older-than", "1d", "--url", fresh_url)


def test_prune_has_a_rule_for_decisions_and_proposals(fresh_url: str) -> None:
    asyncio.run(old_rows(fresh_url))
    args = ("prune", "--decisions-older-than", "30d", "--proposals-older-than", "30d", "--trades-older-than", "30d")
    dry = ok(*args, "--dry-run", "--url", fresh_url, "--json").json
    assert [p["table"] for p in dry["pruned"]] == ["trades", "proposals", "decisions"]
    assert "--proposals-older-than" in fails("prune", "--url", fresh_url)  # named among the rules


def test_optimize(fresh_url: str) -> None:
    asyncio.run(old_rows(fresh_url))
    result = ok("optimize", "--url", fresh_url, "--json").json
    if fresh_url.startswith("sqlite"):
        assert result["statements"][0] == "VACUUM" and result["size_after"] > 0
    else:
        assert result["statements"] == ["ANALYZE"]
    assert asyncio.run(row_counts(fresh_url)) == (3, 8)


@pytest.mark.parametrize("age", ["99999999999d", "999999999d", "5000000w", "9" * 30 + "s"])
def test_prune_with_an_age_beyond_the_calendar_is_a_usage_error(fresh_url: str, age: str) -> None:
    asyncio.run(old_rows(fresh_url))
    for flag in ("--events-older-than", "--bars-older-than"):
        result = run("prune", flag, age, "--timeframe", "1m", "--url", fresh_url)
        assert result.code == 2 and "Traceback" not in result.err, result.err
        assert "too long an age" in result.err or "not a duration" in result.err
    assert asyncio.run(row_counts(fresh_url)) == (3, 8)
    assert ok("prune", "--events-older-than", "700000d", "--dry-run", "--url", fresh_url, "--json").json["pruned"]


def test_delete_ohlcv_removes_a_window_or_a_series_and_can_only_count(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, list(range(10)))
    seed(fresh_url, tmp_path, [0, 1], symbol="ETHUSDT")
    series = ("delete", "ohlcv", "binance", "BTCUSDT", "1m", "--url", fresh_url)
    window = ("--start", "2024-01-01T00:02", "--end", "2024-01-01T00:04")
    dry = ok(*series, *window, "--dry-run", "--json").json
    assert (dry["bars"], dry["dry_run"]) == (3, True)
    assert (
        "would remove 3 1m bars of binance BTCUSDT from 2024-01-01 00:02:00Z to 2024-01-01 00:04:00Z"
        in ok(*series, *window, "--dry-run").out
    )
    assert ok("series", "--url", fresh_url, "--json").json[0]["bars"] == 10  # a dry run removes nothing
    assert "removed 3 1m bars" in ok(*series, *window).out
    listed = {s["symbol"]: s for s in ok("series", "--url", fresh_url, "--json").json}
    assert (listed["BTCUSDT"]["bars"], listed["BTCUSDT"]["gaps"], listed["BTCUSDT"]["missing"]) == (7, 1, 3)
    assert "removed all 7 1m bars of binance BTCUSDT" in ok(*series).out
    assert [s["symbol"] for s in ok("series", "--url", fresh_url, "--json").json] == ["ETHUSDT"]
    assert "no 1m bars stored for binance BTCUSDT" in fails(*series)
    assert "no 1m bars stored for binance NOPE" in fails("delete", "ohlcv", "binance", "NOPE", "1m", "--url", fresh_url)


def test_delete_ohlcv_dry_run_of_an_unknown_series_fails_like_the_deletion(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [0, 1])
    nope = ("delete", "ohlcv", "binance", "NOPE", "1m", "--url", fresh_url)
    assert "no 1m bars" in fails(*nope, "--start", "2024-01-01")
    start, end = ("--start", "2024-01-01"), ("--end", "2024-01-02")
    for window in ((), start, end, (*start, *end)):
        assert "no 1m bars stored for binance NOPE" in fails(*nope, *window, "--dry-run")
        assert "no 5m bars stored for binance BTCUSDT" in fails(
            "delete", "ohlcv", "binance", "BTCUSDT", "5m", *window, "--dry-run", "--url", fresh_url
        )
    known = ("delete", "ohlcv", "binance", "BTCUSDT", "1m", "--dry-run", "--url", fresh_url, "--json")
    assert ok(*known).json["bars"] == 2
