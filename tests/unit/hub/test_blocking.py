"""``iterate_blocking``: a blocking iterator run on the executor, its items taken on the loop as
they are produced (a feed page's first events go out while the rest is still read)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from exchange.hub.blocking import iterate_blocking


def test_each_item_reaches_the_loop_before_the_producer_is_done() -> None:
    # The producer waits, after its first item, until the loop has taken it: were the items
    # handed over only at the end, the producer would wait for ever (here: 10 s, then fail).
    taken = threading.Event()

    def produce() -> Iterator[int]:
        yield 1
        assert taken.wait(timeout=10), "the first item was not handed over on its own"
        yield 2

    async def consume() -> list[int]:
        items = []
        async for item in iterate_blocking(produce):
            items.append(item)
            taken.set()
        return items

    assert asyncio.run(consume()) == [1, 2]


def test_the_producers_error_is_raised_after_the_items_before_it() -> None:
    def produce() -> Iterator[int]:
        yield 1
        raise LookupError("the store failed")

    async def consume(items: list[int]) -> None:
        async for item in iterate_blocking(produce):
            items.append(item)

    items: list[int] = []
    with pytest.raises(LookupError, match="the store failed"):
        asyncio.run(consume(items))
    assert items == [1]


def test_a_consumer_that_stops_early_stops_the_producer() -> None:
    produced: list[int] = []
    finished = threading.Event()
    stopped = threading.Event()

    def produce() -> Iterator[int]:
        try:
            for n in range(1_000):
                produced.append(n)
                yield n
                if n == 0:
                    assert stopped.wait(timeout=10)
        finally:
            finished.set()

    async def consume() -> None:
        batches = iterate_blocking(produce)
        async for _ in batches:
            break
        await batches.aclose()
        stopped.set()

    asyncio.run(consume())
    assert finished.wait(timeout=10)
    assert produced == [0, 1]  # the item in hand when the consumer left, and no further
