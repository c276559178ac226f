"""Blocking work of the asyncio hub: store transactions run off the event loop.

The hub serves on ``grpc.aio``: one event loop owns the transport, and every servicer is a
coroutine. The store is synchronous (SQLAlchemy Core on SQLite or psycopg), so a servicer's
transaction runs on the loop's executor — a small pool of threads sized to the database's
connection pool, not one thread per open call — with the call's context variables (the
authenticated caller) copied along. :func:`blocking` turns a synchronous servicer method into
such a coroutine without touching its body; a client-streaming method gets its request stream
as a plain iterator whose every message is read on the loop. :func:`iterate_blocking` runs a
blocking iterator (a page read in batches) on the executor and hands each item to the loop as it
is produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Iterator,
)
from typing import Any, TypeVar

T = TypeVar("T")
S = TypeVar("S")
R = TypeVar("R")
C = TypeVar("C")

BLOCKING_WORKERS = 8
"""Threads of the executor that runs store transactions (the loop's default executor)."""


async def run_blocking(work: Callable[[], T]) -> T:
    """Run ``work`` on the running loop's executor, in a copy of the current context."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return await loop.run_in_executor(None, context.run, work)


async def iterate_blocking(
    produce: Callable[[], Generator[T, None, None]],
) -> AsyncGenerator[T, None]:
    """Each item of the generator ``produce()`` returns, as soon as it is produced: the iterator
    runs on the loop's executor (in a copy of the current context) without waiting for the
    caller, who takes the items on the loop. An exception of the iterator is raised here, after
    the items before it.

    The producer never waits for the consumer, so a transaction it holds lasts as long as its
    reads alone, and what it produces is held at most once (the caller bounds it: one page).
    A caller that stops early lets the producer stop (closed) at its next item.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()
    abandoned = threading.Event()

    def hand_over(finished: bool, value: Any) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (finished, value))
        except RuntimeError:  # the loop has closed: nobody is waiting for the rest
            return False
        return True

    def run() -> None:
        try:
            with contextlib.closing(produce()) as items:
                for item in items:
                    if abandoned.is_set() or not hand_over(False, item):
                        return
        except Exception as e:  # noqa: BLE001 - handed to the caller, raised there
            hand_over(True, e)
            return
        hand_over(True, None)

    loop.run_in_executor(None, contextvars.copy_context().run, run)
    try:
        while True:
            finished, value = await queue.get()
            if finished:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        abandoned.set()


def blocking(
    method: Callable[[S, R, C], T],
) -> Callable[[S, R, C], Coroutine[Any, Any, T]]:
    """A servicer method that blocks (a store transaction), as a coroutine run on the executor."""

    @functools.wraps(method)
    async def coroutine(self: S, request: R, context: C) -> T:
        if hasattr(request, "__aiter__"):  # a client stream: read on the loop, one at a time
            request = _sync_iterator(request, asyncio.get_running_loop())  # type: ignore[assignment]
        return await run_blocking(functools.partial(method, self, request, context))

    return coroutine


async def _next(iterator: AsyncIterator[T]) -> tuple[bool, T | None]:
    try:
        return False, await anext(iterator)
    except StopAsyncIteration:
        return True, None


def _sync_iterator(requests: Any, loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """Each message of an asynchronous request stream, fetched on ``loop`` when asked for."""
    iterator = aiter(requests)
    while True:
        finished, message = asyncio.run_coroutine_threadsafe(_next(iterator), loop).result()
        if finished:
            return
        yield message
