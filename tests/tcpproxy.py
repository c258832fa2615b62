"""A TCP proxy in front of PostgreSQL that can cut every connection or refuse new ones.

It stands in for a server restart or a network drop without touching the real server,
which other test runs share.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``; ``drop()``, ``refuse`` and ``frozen`` simulate failures."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        #: While set, a new client is accepted and closed at once (a server that is down).
        self.refuse = False
        #: While set, nothing is forwarded either way and new clients wait, their sockets open
        #: (a server that hangs without closing anything).
        self.frozen = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.transport.abort()
            return
        await self._thaw()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer)),
        ]
        self._tasks.update(pipes)
        for pipe in pipes:
            pipe.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._thaw()
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _thaw(self) -> None:
        while self.frozen:
            await asyncio.sleep(0.02)

    def drop(self) -> int:
        """Cut every open connection at once, both ways (like a server crash); returns how many."""
        cut = len(self._writers) // 2
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        return cut

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def running_proxy(host: str, port: int) -> AsyncIterator[TcpProxy]:
    """A started :class:`TcpProxy`, closed at the end."""
    proxy = TcpProxy(host, port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
