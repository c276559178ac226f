"""Wakes ``Subscribe`` streams when new feed events are committed.

In one process a condition variable is enough.  Hub replicas sharing a PostgreSQL database also
hear each other: every transaction that appends feed events notifies the ``exchange_feed``
channel at its commit (:mod:`exchange.store.feed`), and each replica's
:class:`~exchange.hub.background.ReplicaListener`
turns what it hears into a local wake-up.  The stream re-reads the database either way, so a
missed wake-up (a listener reconnecting) only delays an event until the next heartbeat, never
loses it.

The hub's streams are coroutines on one event loop (:meth:`FeedNotifier.attach`): they wait with
:meth:`FeedNotifier.wait_async`, and a notification from any thread (the writer, the sweeper,
the replica listener) wakes them with one call scheduled on that loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading

log = logging.getLogger(__name__)



class FeedNotifier:
    """A counter that increases with every commit of feed events, and a way to wait for it."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._version = 0
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken: asyncio.Event | None = None  # set (and replaced) on the loop per wake-up

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake the coroutines waiting on ``loop`` (:meth:`wait_async`) at every notification."""
        self._loop = loop

    @property
    def version(self) -> int:
        with self._condition:
            return self._version

    def notify(self) -> None:
        with self._condition:
            self._version += 1
            self._condition.notify_all()
        self._wake_loop()

    def notify_on_loop(self) -> None:
        """:meth:`notify`, called on the attached loop itself: wakes its streams at once, with
        no hop (the publish writer's receipts arrive on the loop)."""
        with self._condition:
            self._version += 1
            self._condition.notify_all()
        self._wake()

    def _wake_loop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: nobody waits on it any more
            pass

    def _wake(self) -> None:
        """On the loop: release every coroutine waiting now; later ones wait on a new event."""
        woken, self._woken = self._woken, None
        if woken is not None:
            woken.set()

    async def wait_async(self, seen_version: int, timeout: float) -> None:
        """On the attached loop: return when the version moved past ``seen_version``, on close,
        or after ``timeout``."""
        if self._version != seen_version or self._closed:
            return
        if self._woken is None:
            self._woken = asyncio.Event()
        woken = self._woken
        try:
            async with asyncio.timeout(timeout):
                await woken.wait()
        except TimeoutError:
            pass

    def wait(self, seen_version: int, timeout: float) -> None:
        """Return when the version moved past ``seen_version``, on close, or after ``timeout``."""
        with self._condition:
            self._condition.wait_for(
                lambda: self._version != seen_version or self._closed, timeout=timeout
            )

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._wake_loop()

    @property
    def closed(self) -> bool:
        return self._closed
