"""The event loop's side of the publish writer: a publish call checks its request on the loop,
queues it for the writer thread and awaits its receipt.

The checks (the manifest's signature, every header's commitment and ciphertext hash, the
policies) are CPU work of a fraction of a millisecond for an ordinary alert: they run on the
loop, in the call's own coroutine, so that the requests that arrive in one loop iteration are
all checked in that iteration, with no hop to a thread and back. A large request (over
:data:`ON_LOOP_CHECK_BYTES`) is checked on the executor instead, so that hashing megabytes of
ciphertext never stalls the loop's other calls.

The writer (:class:`~exchange.store.publish_writer.PublishWriter`) hands each batch's results
over in one call from its thread; they are put on the loop with one ``call_soon_threadsafe``,
which resolves every waiting call of the batch, hands the batch's feed events to
:class:`~exchange.hub.recent_events.RecentEvents` (live streams take them from there instead of
reading them back) and wakes the feed streams once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import datetime

from exchange.hub.blocking import run_blocking
from exchange.hub.notifier import FeedNotifier
from exchange.hub.recent_events import RecentEvents
from exchange.statements.publish import CheckedPublish
from exchange.store.db import Database
from exchange.store.publish_writer import BatchSigner, PublishWriter, Receipt

ON_LOOP_CHECK_BYTES = 256 * 1024
"""Publish requests up to this size are checked on the event loop; larger ones on the executor."""

Result = Receipt | BaseException


class PublishQueue:
    """Publishes from the loop's calls to the one writer thread, and their receipts back."""

    def __init__(
        self,
        db: Database,
        notifier: FeedNotifier,
        *,
        clock: Callable[[], datetime],
        sign: BatchSigner | None,
        observe_batch: Callable[[int], None] | None = None,
        sender: str = "",
    ) -> None:
        """``sender``: the writer's name in the feed channel's notifications on PostgreSQL,
        which this hub's replica listener skips (the queue wakes the hub's own streams)."""
        self._notifier = notifier
        self.recent = RecentEvents()
        """The feed events of the batches committed lately (on the loop)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: PublishWriter[asyncio.Future[Receipt]] = PublishWriter(
            db,
            clock=clock,
            deliver=self._deliver,
            sign=sign,
            observe_batch=observe_batch,
            sender=sender,
        )

    @property
    def in_flight(self) -> int:
        """Publishes queued or being written, not answered yet."""
        return self._writer.in_flight

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the writer; receipts are resolved on ``loop``."""
        self._loop = loop
        self._writer.start()

    def stop(self) -> None:
        """Write what is queued and stop the writer (after the server stopped taking calls)."""
        self._writer.stop()

    async def check(self, request_bytes: int, check: Callable[[], CheckedPublish]) -> CheckedPublish:
        """Run ``check`` (a request's :func:`~exchange.statements.publish.check_publish`) on
        the loop, or on the executor for a request of more than :data:`ON_LOOP_CHECK_BYTES`."""
        if request_bytes <= ON_LOOP_CHECK_BYTES:
            return check()
        return await run_blocking(check)

    async def publish(self, checked: CheckedPublish, *, known_size: int) -> Receipt:
        """Queue a checked publish and wait until it is durably stored; return its receipt, or
        raise the error that refused it."""
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._writer.submit(checked, known_size=known_size, token=future)
        return await future

    def _deliver(self, results: list[tuple[asyncio.Future[Receipt], Result]]) -> None:
        """From the writer's thread: one batch's results, resolved on the loop in one call."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(functools.partial(self._resolve, results))
        except RuntimeError:  # the loop is closed: no call waits any more
            pass

    def _resolve(self, results: list[tuple[asyncio.Future[Receipt], Result]]) -> None:
        events = False
        for future, result in results:
            if isinstance(result, BaseException):
                if not future.done():
                    future.set_exception(result)
                continue
            outcome = result.outcome
            if outcome.feed_events:
                events = True
                for agency_id, event in zip(outcome.notified, outcome.feed_events, strict=True):
                    self.recent.add(agency_id, (event,))
            if not future.done():  # a caller that went away leaves its publish stored
                future.set_result(result)
        if events:
            self._notifier.notify_on_loop()
