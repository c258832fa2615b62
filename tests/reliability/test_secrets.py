"""Guarantee 10: a password is never printed.

Passwords in the user part, in the query string (``?password=``) and one holding ``@:/%``.
Everything a bot could print is collected: every log line at DEBUG with ``echo=True`` (and
what the echo handler writes to stdout), ``repr()``/``str()`` of the manager, its engine and
the repositories, ``health_check()`` reports, and the text and full traceback of errors from
failed connections: a refused port, a host that does not resolve, a wrong password (a fake
server that asks for the password and then quotes it back in its error, the worst case), and
a connection dropped mid-transaction. The password appears nowhere, in any encoding.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import traceback
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from sqlalchemy.engine import URL

from factories import bars, position, trade
from support import pg_terminate_pool
from tradestore import DatabaseManager, OHLCVRepository, PositionRepository, SystemEventRepository, TradeRepository
from tradestore.errors import ConnectionLostError, StorageError

pytestmark = pytest.mark.postgres

PASSWORDS = ["s3cr3t-Pa55w0rd", "p@ss:/w0rd%25x%"]


def _urls(host: str, port: int, database: str, password: str, user: str = "bot") -> list[str]:
    encoded = quote(password, safe="")
    return [
        f"postgresql://{user}:{encoded}@{host}:{port}/{database}",
        f"postgresql://{user}@{host}:{port}/{database}?password={encoded}",
    ]


def _forms(password: str) -> set[str]:
    return {password, quote(password, safe=""), quote_plus(password), quote(password)}


def _error_text(error: BaseException) -> str:
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])


class Seen:
    """Everything collected for one URL, checked for the password at the end."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.texts: list[str] = []

    def add(self, *texts: object) -> None:
        self.texts.extend(str(t) for t in texts)

    def assert_clean(self, figures: Counter[str]) -> None:
        blob = "\n".join(self.texts)
        for form in _forms(self.password):
            assert form not in blob, f"the password ({form!r}) was printed"
        figures["texts searched for a password (logs, reprs, reports, errors)"] += len(self.texts)


async def _fake_server_asking_for_a_password() -> AsyncIterator[int]:
    """A PostgreSQL look-alike: asks for a cleartext password, then fails quoting it back."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            length, code = struct.unpack("!ii", await reader.readexactly(8))
            if code == 80877103:  # SSLRequest: no SSL here
                writer.write(b"N")
                length, code = struct.unpack("!ii", await reader.readexactly(8))
            await reader.readexactly(length - 8)  # the rest of the startup message
            writer.write(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
            _, length = struct.unpack("!ci", await reader.readexactly(5))
            password = (await reader.readexactly(length - 4)).rstrip(b"\0")
            fields = [
                b"SFATAL",
                b"VFATAL",
                b"C28P01",
                b'Mpassword authentication failed for user "bot" (password given: "' + password + b'")',
            ]
            body = b"".join(f + b"\0" for f in fields) + b"\0"
            writer.write(b"E" + struct.pack("!i", len(body) + 4) + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def fake_server() -> AsyncIterator[int]:
    async for port in _fake_server_asking_for_a_password():
        yield port


async def _failed_connect(url: str, seen: Seen, kind: type[StorageError]) -> None:
    db = DatabaseManager(url, echo=True)
    seen.add(repr(db), str(db), db.database)
    with pytest.raises(kind) as caught:
        await db.connect()
    seen.add(_error_text(caught.value))
    seen.add(await db.health_check())


@pytest.mark.parametrize("password", PASSWORDS)
async def test_errors_of_failed_connections_never_show_the_password(
    password: str,
    fake_server: int,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    figures: Counter[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    seen = Seen(password)
    for url in _urls("127.0.0.1", 1, "trading", password):  # nothing listens on port 1
        await _failed_connect(url, seen, ConnectionLostError)
    for url in _urls("no-such-host.invalid", 5432, "trading", password):
        await _failed_connect(url, seen, ConnectionLostError)
    for url in _urls("127.0.0.1", fake_server, "trading", password):
        await _failed_connect(url, seen, StorageError)
    assert any("password authentication failed" in t for t in seen.texts)  # the fake server was reached
    out, err = capfd.readouterr()
    seen.add(caplog.text, out, err)
    seen.assert_clean(figures)


@pytest.mark.parametrize("password", PASSWORDS)
async def test_a_working_bot_never_shows_the_password(
    password: str,
    pg_url: URL,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    figures: Counter[str],
) -> None:
    """The local server trusts every connection, so any password is accepted (and must stay hidden)."""
    caplog.set_level(logging.DEBUG)
    seen = Seen(password)
    for url in _urls(pg_url.host or "127.0.0.1", pg_url.port or 5432, pg_url.database or "", password, "postgres"):
        db = DatabaseManager(url, echo=True, pool_size=2)
        await db.connect()
        try:
            await db.drop_all()
            await db.create_all()
            async with db.get_session() as session:
                repos: list[Any] = [
                    OHLCVRepository(session),
                    TradeRepository(session),
                    PositionRepository(session),
                    SystemEventRepository(session),
                ]
                await repos[0].upsert_many(bars(3))
                await repos[1].insert(trade(1))
                await repos[2].update_position(position())
                await repos[3].log_event("login", "info", "connected", details={"url": db.database})
                seen.add(*map(repr, repos), *map(str, repos), repr(session))
            seen.add(repr(db), str(db), db.database, repr(db.engine), db.engine.url, await db.health_check())

            with pytest.raises(ConnectionLostError) as caught:  # an error raised mid-transaction
                async with db.get_session() as session:
                    await OHLCVRepository(session).upsert_many(bars(3, symbol="X"))
                    await pg_terminate_pool(db)
                    await OHLCVRepository(session).upsert_many(bars(3, symbol="Y"))
            seen.add(_error_text(caught.value), await db.health_check())
            await db.drop_all()
        finally:
            await db.disconnect()
    out, err = capfd.readouterr()
    assert "INSERT INTO ohlcv" in caplog.text + out  # echo=True really logged the statements
    seen.add(caplog.text, out, err)
    seen.assert_clean(figures)
