"""The Alembic migrations create exactly the schema of ``tradestore.models``, on both backends."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Integer, String, Table, column, delete, insert, inspect, select, table, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError

from factories import position, trade
from tradestore import DatabaseManager
from tradestore.engine import build_engine
from tradestore.models import Base, PositionModel
from tradestore.schema import scripts
from tradestore.types import ExactDecimal, UTCDateTime
from tradestore.urls import resolve

ROOT = Path(__file__).resolve().parents[1]
# Neither backend's reflection reads expression indexes back; the open-position index is
# checked by behaviour instead (see below).
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*expression-based index:UserWarning", "ignore:.*expression-based index"
)


def alembic_config(url: URL | str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["url"] = resolve(url).render_as_string(hide_password=False)
    config.attributes["configure_logger"] = False
    return config


async def schema_state(url: URL | str) -> tuple[list[Any], set[str]]:
    engine = build_engine(resolve(url), pool_size=1, max_overflow=0, echo=False)
    try:
        async with engine.connect() as conn:

            def inspect_sync(sync_conn: Any) -> tuple[list[Any], set[str]]:
                context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return compare_metadata(context, Base.metadata), set(inspect(sync_conn).get_table_names())

            return await conn.run_sync(inspect_sync)
    finally:
        await engine.dispose()


async def second_open_position_is_refused(url: URL | str) -> None:
    async with DatabaseManager(url) as db:
        row = {k: v for k, v in vars(position()).items() if k != "id"} | {"updated_at": datetime.now(UTC)}
        async with db.get_session() as session:
            await session.execute(insert(PositionModel).values(row))
        with pytest.raises(IntegrityError):
            async with db.get_session() as session:
                await session.execute(insert(PositionModel).values(row))
        async with db.get_session() as session:
            await session.execute(delete(PositionModel))


def file_or_pg(url: URL | str, tmp_path: Path) -> URL | str:
    # A file, not :memory:: Alembic and the checks below open their own connections.
    return f"sqlite:///{tmp_path / 'migrated.db'}" if resolve(url).get_backend_name() == "sqlite" else url


def test_upgrade_creates_the_models_schema_and_downgrade_removes_it(url: URL | str, tmp_path: Path) -> None:
    target = file_or_pg(url, tmp_path)
    config = alembic_config(target)
    command.upgrade(config, "head")
    try:
        differences, tables = asyncio.run(schema_state(target))
        assert differences == []
        assert tables == {*Base.metadata.tables, "alembic_version"}
        asyncio.run(second_open_position_is_refused(target))
    finally:
        command.downgrade(config, "base")
    _, tables = asyncio.run(schema_state(target))
    assert tables <= {"alembic_version"}


def test_alembic_cli_reads_the_url_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    env = {**os.environ, "TRADESTORE_DATABASE_URL": f"sqlite:///{path}"}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    differences, tables = asyncio.run(schema_state(f"sqlite:///{path}"))
    assert differences == [] and "ohlcv" in tables


# --- revision 0002: orders and fills; trades gain a status ---------------------------------

_OLD_TRADES = table(
    "trades",
    column("id", Integer()),
    column("trade_id", String()),
    column("symbol", String()),
    column("exchange", String()),
    column("side", String()),
    column("action", String()),
    column("entry_price", ExactDecimal()),
    column("quantity", ExactDecimal()),
    column("entry_time", UTCDateTime()),
    column("leverage", ExactDecimal()),
    column("exit_price", ExactDecimal()),
    column("exit_time", UTCDateTime()),
    column("realized_pnl", ExactDecimal()),
    column("fee", ExactDecimal()),
    column("mode", String()),
    column("created_at", UTCDateTime()),
    column("updated_at", UTCDateTime()),
)
T = datetime(2024, 1, 1, tzinfo=UTC)
#: Trades as an older tradestore stored them, and the status revision 0002 gives each.
OLD_TRADES: list[tuple[dict[str, Any], str]] = [
    ({"trade_id": "still-open", "action": "open"}, "open"),
    ({"trade_id": "exited", "action": "open", "exit_time": T, "exit_price": Decimal("2")}, "closed"),
    ({"trade_id": "pnl-only", "action": "open", "realized_pnl": Decimal("-1.5")}, "closed"),
    ({"trade_id": "close-row", "action": "close"}, "closed"),
    ({"trade_id": "liquidated", "action": "liquidated"}, "closed"),
]


def _old_trade(fields: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "exchange": "binance",
        "side": "long",
        "entry_price": Decimal("50000.12345678901234567890"),
        "quantity": Decimal("0.01"),
        "entry_time": T,
        "leverage": Decimal(1),
        "exit_price": None,
        "exit_time": None,
        "realized_pnl": None,
        "fee": Decimal("0.00000001"),
        "mode": "live",
        "created_at": T,
        "updated_at": T,
    }
    return row | fields


async def _run(url: URL | str, work: Any) -> Any:
    engine = build_engine(resolve(url), pool_size=1, max_overflow=0, echo=False)
    try:
        async with engine.begin() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


async def _old_rows(conn: Any) -> list[Any]:
    return list((await conn.execute(select(_OLD_TRADES).order_by(_OLD_TRADES.c.id))).all())


def test_0002_keeps_every_row_and_its_downgrade_removes_only_what_it_added(url: URL | str, tmp_path: Path) -> None:
    target = file_or_pg(url, tmp_path)
    config = alembic_config(target)
    previous = ScriptDirectory.from_config(config).get_revision("0002").down_revision
    assert isinstance(previous, str)
    command.upgrade(config, previous)
    try:

        async def fill(conn: Any) -> list[Any]:
            await conn.execute(insert(_OLD_TRADES), [_old_trade(fields) for fields, _ in OLD_TRADES])
            await conn.execute(
                insert(cast(Table, PositionModel.__table__)),
                [{k: v for k, v in vars(position()).items() if k != "id"} | {"updated_at": T}],
            )
            return await _old_rows(conn)

        before = asyncio.run(_run(target, fill))
        _, tables_before = asyncio.run(schema_state(target))
        command.upgrade(config, "0002")

        async def read(conn: Any) -> tuple[list[Any], dict[str, str], int]:
            statuses = dict((await conn.execute(text("SELECT trade_id, status FROM trades"))).all())
            positions = (await conn.execute(text("SELECT count(*) FROM positions"))).scalar()
            return await _old_rows(conn), statuses, positions

        after, statuses, positions = asyncio.run(_run(target, read))
        assert after == before and positions == 1
        assert statuses == {fields["trade_id"]: status for fields, status in OLD_TRADES}
        _, tables = asyncio.run(schema_state(target))
        assert tables == tables_before | {"orders", "order_history", "fills"}

        async def columns(conn: Any) -> set[str]:
            names: set[str] = await conn.run_sync(lambda sync: {c["name"] for c in inspect(sync).get_columns("trades")})
            return names

        assert {"status", "stop_loss", "take_profit", "exit_reason", "timeframe"} <= asyncio.run(_run(target, columns))
        command.downgrade(config, previous)
        assert asyncio.run(_run(target, _old_rows)) == before
        _, tables = asyncio.run(schema_state(target))
        assert tables == tables_before
        assert not {"status", "stop_loss", "take_profit", "exit_reason", "timeframe"} & asyncio.run(
            _run(target, columns)
        )
        command.upgrade(config, "head")  # and up again: the models' schema, nothing missing
        differences, _ = asyncio.run(schema_state(target))
        assert differences == []
    finally:
        command.downgrade(config, "base")


# --- revision 0003: bots and equity --------------------------------------------------------

MINE = "0003"


async def _rows(url: URL | str) -> dict[str, list[Any]]:
    """Every row of the tables that existed before revision 0003, in a stable order."""
    engine = build_engine(resolve(url), pool_size=1, max_overflow=0, echo=False)
    try:
        async with engine.connect() as conn:
            found = {}
            for name in ("ohlcv", "trades", "positions", "system_events", "orders", "fills", "order_history"):
                # every column as stored, whatever later revisions make of the table
                result = await conn.exec_driver_sql(f"SELECT * FROM {name}")
                found[name] = sorted((tuple(r) for r in result.all()), key=repr)
            return found
    finally:
        await engine.dispose()


#: The candle table as revisions 0001 to 0004 have it (0005 replaces it).
_OLD_OHLCV = table(
    "ohlcv",
    *(column(name, String()) for name in ("exchange", "symbol", "timeframe")),
    *(column(name, UTCDateTime()) for name in ("timestamp", "created_at")),
    *(column(name, ExactDecimal()) for name in ("open", "high", "low", "close", "volume")),
)


async def _fill(url: URL | str) -> None:
    engine = build_engine(resolve(url), pool_size=1, max_overflow=0, echo=False)
    now = datetime.now(UTC)
    try:
        async with engine.begin() as conn:
            for n in range(3):
                await conn.execute(
                    insert(_OLD_OHLCV).values(
                        exchange="binance", symbol="BTCUSDT", timeframe="1m",
                        timestamp=now.replace(second=0, microsecond=0) - timedelta(minutes=n),
                        open="1.5", high="2", low="1", close="1.75", volume="10.000000001", created_at=now,
                    )
                )  # fmt: skip
            skip = ("id", "metadata", "created_at", "updated_at")
            t = {k: v for k, v in vars(trade(1, pnl="12.5", bot_id="alpha")).items() if k not in skip}
            await conn.execute(insert(Base.metadata.tables["trades"]).values(**t, created_at=now, updated_at=now))
            p = {k: v for k, v in vars(position(bot_id="alpha")).items() if k != "id"}
            await conn.execute(insert(PositionModel).values(**p | {"updated_at": now}))
            await conn.execute(
                insert(Base.metadata.tables["system_events"]).values(
                    event_type="x", severity="info", message="kept", details={"a": "1"}, created_at=now
                )
            )
    finally:
        await engine.dispose()


def test_revision_0003_keeps_every_row_and_downgrades_to_exactly_what_was_there(fresh_url: str) -> None:
    before = scripts().get_revision(MINE).down_revision
    assert isinstance(before, str)
    config = alembic_config(fresh_url)
    command.upgrade(config, before)
    asyncio.run(_fill(fresh_url))
    rows = asyncio.run(_rows(fresh_url))
    _, old_tables = asyncio.run(schema_state(fresh_url))
    command.upgrade(config, MINE)
    differences, tables = asyncio.run(schema_state(fresh_url))
    assert tables - old_tables == {"bots", "equity_snapshots", "performance_reports"}
    assert asyncio.run(_rows(fresh_url)) == rows
    assert all(rows[name] for name in ("ohlcv", "trades", "positions", "system_events"))
    if scripts().get_current_head() == MINE:
        assert differences == []
    assert asyncio.run(_indexes(fresh_url)) == {"ix_positions_bot_id_mode"}
    command.downgrade(config, before)
    _, after = asyncio.run(schema_state(fresh_url))
    assert after == old_tables and asyncio.run(_rows(fresh_url)) == rows
    assert asyncio.run(_indexes(fresh_url)) == set()
    command.upgrade(config, "head")
    asyncio.run(second_open_position_is_refused(fresh_url))  # the open-position index survived both ways


async def _indexes(url: URL | str) -> set[str]:
    """The index 0003 adds to an existing table, where it exists."""
    engine = build_engine(resolve(url), pool_size=1, max_overflow=0, echo=False)
    try:
        async with engine.connect() as conn:

            def names(sync_conn: Any) -> set[str]:
                inspector = inspect(sync_conn)
                return {
                    i["name"] for i in inspector.get_indexes("positions") if i["name"] == "ix_positions_bot_id_mode"
                }

            return await conn.run_sync(names)
    finally:
        await engine.dispose()


# --- revision 0004: decisions and proposals ---------------------------------------------


def test_0004_upgrades_a_database_holding_rows_and_downgrades_to_what_it_was(url: URL | str, tmp_path: Path) -> None:
    """Decisions and proposals: every existing row survives both ways; downgrade drops only what 0004 added."""
    target = file_or_pg(url, tmp_path)
    config = alembic_config(target)
    before = ScriptDirectory.from_config(config).get_revision("0004").down_revision
    assert isinstance(before, str)
    command.upgrade(config, before)
    asyncio.run(_fill_0001_tables(target))
    try:
        rows_before = asyncio.run(_rows_0004(target, ("ohlcv", "trades", "positions", "system_events")))
        command.upgrade(config, "0004")
        assert asyncio.run(_rows_0004(target, tuple(rows_before))) == rows_before
        asyncio.run(_use_0004(target))
        command.downgrade(config, before)
        assert asyncio.run(_rows_0004(target, tuple(rows_before))) == rows_before
        _, tables = asyncio.run(schema_state(target))
        assert not {"decisions", "proposals"} & tables
        columns = asyncio.run(_columns(target, "system_events"))
        assert "content_key" not in columns
        command.upgrade(config, "head")
        differences, _ = asyncio.run(schema_state(target))
        assert differences == []
    finally:
        command.downgrade(config, "base")


async def _fill_0001_tables(url: URL | str) -> None:
    engine = build_engine(resolve(url), pool_size=1, max_overflow=0, echo=False)
    now = datetime.now(UTC).isoformat(" ")
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO system_events (event_type, severity, message, created_at) "
                f"VALUES ('start', 'info', 'bot started', '{now}')"
            )
            await conn.exec_driver_sql(
                "INSERT INTO trades (trade_id, symbol, exchange, side, action, entry_price, quantity, entry_time, "
                f"leverage, fee, mode, created_at, updated_at) VALUES ('T1', 'BTCUSDT', 'binance', 'long', 'open', "
                f"'50000.10', '0.01', '{now}', '1', '0', 'live', '{now}', '{now}')"
            )
    finally:
        await engine.dispose()


async def _rows_0004(url: URL | str, tables: tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
    engine = build_engine(resolve(url), pool_size=1, max_overflow=0, echo=False)
    try:
        async with engine.connect() as conn:
            found = {}
            for name in tables:
                columns = await conn.run_sync(_column_names, name)
                kept = ", ".join(c for c in columns if c != "content_key")
                result = await conn.exec_driver_sql(f"SELECT {kept} FROM {name} ORDER BY id")
                found[name] = [tuple(str(v) for v in row) for row in result]
            return found
    finally:
        await engine.dispose()


def _column_names(connection: Any, table: str) -> list[str]:
    return [c["name"] for c in inspect(connection).get_columns(table)]


async def _columns(url: URL | str, table: str) -> set[str]:
    engine = build_engine(resolve(url), pool_size=1, max_overflow=0, echo=False)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: [x["name"] for x in inspect(c).get_columns(table)]))
    finally:
        await engine.dispose()


async def _use_0004(url: URL | str) -> None:
    """The new tables take rows on the upgraded database, linked to the trade that was there."""
    engine = build_engine(resolve(url), pool_size=1, max_overflow=0, echo=False)
    now = datetime.now(UTC).isoformat(" ")
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO decisions (bot_id, symbol, exchange, action, timestamp, mode, trade_id, content_key, "
                f"created_at) VALUES ('bot', 'BTCUSDT', 'binance', 'buy', '{now}', 'live', 1, '{'0' * 64}', '{now}')"
            )
            await conn.exec_driver_sql(
                "INSERT INTO proposals (bot_id, symbol, exchange, side, quantity, mode, leverage, status, decision_id, "
                f"created_at, updated_at) VALUES ('bot', 'BTCUSDT', 'binance', 'buy', '0.01', 'live', '1', 'pending', "
                f"1, '{now}', '{now}')"
            )
            await conn.exec_driver_sql("UPDATE system_events SET content_key = 'k'")
    finally:
        await engine.dispose()
