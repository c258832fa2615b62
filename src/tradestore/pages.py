"""Keyset pagination: the one loop that reads a long, ordered result a page at a time.

Each page is asked for by the key it starts from, never by an offset, so every page costs the
same whatever its position, and rows written meanwhile never shift a page onto rows already
read. The callers (``OHLCVRepository.stream_range``, ``tradestore export``, ``tradestore
copy``) supply how to read one page; this module supplies when to stop and where to go on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

K = TypeVar("K")
T = TypeVar("T")


async def keyset_pages(
    read: Callable[[K], Awaitable[Sequence[T]]],
    start: K,
    size: int,
    follow: Callable[[T], K],
) -> AsyncIterator[Sequence[T]]:
    """Every page of an ordered result, first to last; none is empty.

    Args:
        read: ``read(key)`` returns at most ``size`` items, in key order, from ``key`` on
            (the caller decides whether ``key`` itself is included).
        start: the key of the first page.
        size: the page size ``read`` honours; a shorter page is the last one.
        follow: the key of the page after the one ending with this item.
    """
    key = start
    while True:
        page = await read(key)
        if page:
            yield page
        if len(page) < size:
            return
        key = follow(page[-1])
