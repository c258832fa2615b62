"""``tradestore.admin.transfer.copy_database`` through its Python API, on both backends.

The command line's view of the same is in ``test_cli_copy.py``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import URL

from factories import bars, trade
from tradestore import DatabaseManager, OHLCVRepository, SystemEventRepository, TradeRepository
from tradestore.admin.transfer import copy_database, json_canonical, row_digest
from tradestore.errors import ConfigurationError, StorageError
from tradestore.models import OHLCVModel
from tradestore.urls import resolve

pytestmark = pytest.mark.filterwarnings("ignore:.*expression-based index")
PAIRS = [
    pytest.param("sqlite", "postgres", id="sqlite-to-postgres", marks=pytest.mark.postgres),
    pytest.param("postgres", "sqlite", id="postgres-to-sqlite", marks=pytest.mark.postgres),
    pytest.param("sqlite", "sqlite", id="sqlite-to-sqlite", marks=pytest.mark.sqlite),
]
#: JSON a bot really stores: floats JSONB rewrites (1e16 → 10000000000000000, -0.0 → 0.0),
#: integers beyond 64 bits, the float extremes, and text that only looks like a number.
DOCUMENT: dict[str, Any] = {
    "big": 1e16,
    "negative zero": -0.0,
    "huge int": 2**80,
    "tenth": 0.1,
    "tiny": 5e-324,
    "largest": 1.7976931348623157e308,
    "small": 1e-7,
    "nested": [1e16, {"z": -0.0, "a": 2.5e-300}],
    "text": "1e16",
    "flag": True,
    "nothing": None,
}
#: 32 significant digits: two values that differ only in the last are equal to 28 digits.
PRECISE = "100.12345678901234567890123456789"
NUDGED = "100.12345678901234567890123456788"


async def fill(url: str) -> None:
    async with DatabaseManager(url, auto_migrate=True) as db, db.get_session() as session:
        await OHLCVRepository(session).upsert_many(bars(20, close=PRECISE))
        await TradeRepository(session).insert(trade(1, metadata=DOCUMENT))
        events = SystemEventRepository(session)
        await events.log_event("fill", "info", "filled", DOCUMENT)
        await events.log_event("empty", "info", "no details")


async def documents(url: str) -> list[Any]:
    async with DatabaseManager(url) as db, db.get_session() as session:
        (stored,) = await TradeRepository(session).get_recent()
        events = await SystemEventRepository(session).get_recent_events()
    return [stored.metadata, *sorted((e.details for e in events), key=lambda d: d is None)]


def exact(value: Any) -> Any:
    """``value`` with every number as its exact decimal value (a float by its shortest text, zero unsigned)."""
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [exact(v) for v in value]
    if isinstance(value, float | int) and not isinstance(value, bool):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        return number if number else Decimal(0)
    return value


@pytest.mark.parametrize(("source_kind", "target_kind"), PAIRS)
def test_json_floats_copy_and_verify(new_database: Callable[[str], str], source_kind: str, target_kind: str) -> None:
    source, target, back = new_database(source_kind), new_database(target_kind), new_database(source_kind)

    async def scenario() -> None:
        await fill(source)
        report = await copy_database(resolve(source), resolve(target), chunk_rows=3)  # several pages a table
        assert all(t.verified for t in report.tables) and report.copied == 20 + 1 + 1 + 2  # 1: the fetched range
        again = await copy_database(resolve(target), resolve(back))  # and back: the round trip verifies too
        assert all(t.verified for t in again.tables)
        # Every number keeps its value, whatever spelling the backend keeps (JSONB gives 1e16 back
        # as the integer 10000000000000000, -0.0 as 0.0).
        expected = exact([DOCUMENT, DOCUMENT, None])
        assert exact(await documents(target)) == exact(await documents(back)) == expected

    asyncio.run(scenario())


@pytest.mark.parametrize("target_kind", [pytest.param("sqlite", marks=pytest.mark.sqlite), "postgres"])
def test_a_value_changed_after_the_28th_digit_fails_verification(
    new_database: Callable[[str], str], target_kind: str
) -> None:
    source, target = new_database("sqlite"), new_database(target_kind)
    asyncio.run(nudged_copy(source, target, target_kind))


async def nudged_copy(source: str, target: str, target_kind: str) -> None:
    await fill(source)
    async with DatabaseManager(target, auto_migrate=True) as db, db.engine.begin() as conn:
        # The target stores every close one unit of the 32nd digit lower than it was sent.
        if target_kind == "sqlite":
            await conn.exec_driver_sql(
                f"CREATE TRIGGER nudge AFTER INSERT ON ohlcv BEGIN "
                f"UPDATE ohlcv SET close = '{NUDGED}' WHERE series_id = NEW.series_id AND time = NEW.time; END"
            )
        else:
            await conn.exec_driver_sql(
                "CREATE FUNCTION nudge() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN NEW.close := NEW.close - 0.00000000000000000000000000001; RETURN NEW; END $$"
            )
            await conn.exec_driver_sql(
                "CREATE TRIGGER nudge BEFORE INSERT ON ohlcv FOR EACH ROW EXECUTE FUNCTION nudge()"
            )
    with pytest.raises(StorageError, match="verification failed for ohlcv") as caught:
        await copy_database(resolve(source), resolve(target), append=True)
    assert "nothing was written" in str(caught.value)
    async with DatabaseManager(target) as db, db.get_session() as session:
        assert await session.scalar(select(func.count()).select_from(OHLCVModel)) == 0


@pytest.mark.sqlite
async def test_the_same_sqlite_file_under_another_name_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    await fill("sqlite:///bot.db")
    os.symlink(tmp_path / "bot.db", tmp_path / "link.db")
    os.link(tmp_path / "bot.db", tmp_path / "hard.db")
    (tmp_path / "sub").mkdir()
    names = ["sqlite:///./bot.db", f"sqlite:///{tmp_path}/bot.db", "sqlite:///sub/../bot.db", "sqlite:///link.db"]
    for other in [*names, "sqlite:///hard.db"]:
        with pytest.raises(ConfigurationError, match="same database"):
            await copy_database(resolve("sqlite:///bot.db"), resolve(other), append=True)
    async with DatabaseManager("sqlite:///bot.db") as db, db.get_session() as session:
        assert await session.scalar(select(func.count()).select_from(OHLCVModel)) == 20  # not doubled


@pytest.mark.postgres
def test_the_same_postgres_database_spelt_otherwise_is_refused(new_database: Callable[[str], str]) -> None:
    asyncio.run(refused_as_the_same(resolve(new_database("postgres"))))


async def refused_as_the_same(url: URL) -> None:
    others = [
        url.set(port=None) if url.port == 5432 else url.set(host=(url.host or "localhost").upper()),
        url.set(username="someone-else", password="pw"),  # another role: still the same database
        url.set(host=(url.host or "localhost").upper()),
    ]
    for other in others:
        with pytest.raises(ConfigurationError, match="same database"):
            await copy_database(url, other, append=True)
    with pytest.raises(StorageError) as caught:  # another database on the same server is not refused as "same"
        await copy_database(url, url.set(database=f"{url.database}_elsewhere"))
    assert "same database" not in str(caught.value)


def test_checksums_compare_exact_values() -> None:
    # Equal values stored in different forms: the same digest.
    assert row_digest([Decimal("1E+3")]) == row_digest([Decimal("1000.000")])
    assert row_digest([Decimal("-0")]) == row_digest([Decimal("0E-8")])
    # Different values: different digests, however far down the difference is.
    assert row_digest([Decimal(PRECISE)]) != row_digest([Decimal(NUDGED)])
    assert row_digest([Decimal("1E+40")]) != row_digest([Decimal("10000000000000000000000000000000000000001")])
    assert row_digest([None]) != row_digest(["\x00"]) and row_digest([1]) != row_digest(["1"])


def test_json_documents_compare_by_exact_value_whatever_the_stored_form() -> None:
    assert json_canonical('{"b": 1e+16, "a": -0.0}') == json_canonical('{"a":0.0,"b":10000000000000000}')
    assert json_canonical("[0.1]") == json_canonical("[0.10]") != json_canonical("[0.1000000000000000000000001]")
    assert json_canonical('["1"]') != json_canonical("[1]") and json_canonical("[true]") != json_canonical("[1]")
    assert json_canonical("null") is None and json_canonical(None) is None
    assert json_canonical('{"a": {"y": [], "x": {}}}') == '{"a":{"x":{},"y":[]}}'
