"""The Alembic migrations create exactly the schema of ``tradestore.models``, on both backends."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
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

from factories import position
from tradestore import DatabaseManager
from tradestore.engine import build_engine
from tradestore.models import Base, PositionModel
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
        assert tables == {
            "ohlcv",
            "ohlcv_fetched",
            "ohlcv_series",
            "trades",
            "positions",
            "system_events",
            "orders",
            "order_history",
            "fills",
            "alembic_version",
        }
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
