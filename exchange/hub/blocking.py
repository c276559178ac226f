"""Blocking work of the asyncio hub: store transactions run off the event loop.

The hub serves on ``grpc.aio``: one event loop owns the transport, and every servicer is a
coroutine. The store is synchronous (SQLAlchemy Core on SQLite or psycopg), so a servicer's
transaction runs on the loop's executor — a small pool of threads sized to the database's
connection pool, not one thread per open call — with the call's context variables (the
authenticated caller) copied along. :func:`blocking` turns a synchronous servicer method into
such a coroutine without touching its body; a client-streaming method gets its request stream
as a plain iterator whose every message is read on the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
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
