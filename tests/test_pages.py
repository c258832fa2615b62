"""``tradestore.pages.keyset_pages``: the one keyset-paginated reader."""

from __future__ import annotations

import random
from collections.abc import Sequence

from tradestore.pages import keyset_pages


async def pages_of(items: list[int], size: int) -> tuple[list[Sequence[int]], list[int]]:
    """The pages of ``items`` (sorted, distinct) read ``size`` at a time, and the keys each read began at."""
    asked: list[int] = []

    async def read(after: int) -> list[int]:
        asked.append(after)
        return [i for i in items if i > after][:size]

    return [page async for page in keyset_pages(read, -1, size, lambda item: item)], asked


async def test_every_item_once_in_order_against_a_plain_slice() -> None:
    rng = random.Random(3)
    for _ in range(50):
        items = sorted(rng.sample(range(1_000), rng.randrange(0, 60)))
        size = rng.randrange(1, 12)
        pages, asked = await pages_of(items, size)
        assert [i for page in pages for i in page] == items
        assert all(len(page) == size for page in pages[:-1]) and all(pages)
        # One read per full page, and one more that ends it (short, possibly empty).
        assert len(asked) == len(items) // size + 1
        assert asked[1:] == [page[-1] for page in pages][: len(asked) - 1]


async def test_rows_written_meanwhile_never_shift_a_page() -> None:
    items = [10, 20, 30, 40, 50]

    async def read(after: int) -> list[int]:
        page = [i for i in items if i > after][:2]
        items.insert(0, -after)  # a row before the current position: an offset would re-read a row
        return page

    seen = [i async for page in keyset_pages(read, 0, 2, lambda item: item) for i in page]
    assert seen == [10, 20, 30, 40, 50]
