"""Reading this agency's feed: dense sequences, a persisted cursor, and gap detection (DESIGN §7).

The hub numbers each agency's events 1, 2, 3, ... under the same lock as its log append, and its
heartbeats state the latest number.  So the client can tell when an event is missing: a sequence
that skips ahead, or a heartbeat announcing more than has arrived.  Either is
:class:`FeedGapError`.  Events at or below what was already received are skipped, which makes
re-delivery after a reconnect harmless: delivery at least once, processing effectively once.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from exchange.errors import ExchangeError, UnavailableError
from exchange.v1 import alerts_pb2
from exchange_client._internal.calls import Flush, Steps, read, run, run_async, sleep
from exchange_client._internal.errors import FeedGapError, check_same_process
from exchange_client._internal.models import FeedEvent
from exchange_client._internal.retry import Backoff, RetrySchedule
from exchange_client._internal.state import CursorLock
from exchange_client._internal.status import hub_errors

if TYPE_CHECKING:
    from exchange_client._internal.transport import AsyncTransport

OpenStream = Callable[[int], Any]
"""Opens the feed stream after a sequence: a blocking ``grpc.CallIterator`` (audited as it is
iterated) or, with an ``audit`` function, a ``grpc.aio`` stream call."""

RECONNECT_BACKOFF = Backoff(first_delay=0.5, max_delay=30.0)
"""The waits between reconnections: 0.5 s, doubled after each further failure, at most 30 s."""

Reconnecting = Callable[[float, ExchangeError], None]
"""Told the wait in seconds and the failure, before each wait to reconnect."""


def check_sequence(received: int, sequence: int) -> None:
    """Raise :class:`FeedGapError` unless ``sequence`` directly follows ``received``."""
    if sequence != received + 1:
        raise FeedGapError(
            f"feed event {received + 1} is missing: the hub sent event {sequence} after "
            f"{received}; it withheld or lost an event meant for this agency",
            missing_sequence=received + 1,
        )


def check_heartbeat(received: int, latest_sequence: int) -> None:
    """Raise :class:`FeedGapError` if the hub states a later sequence than it has delivered."""
    if latest_sequence > received:
        raise FeedGapError(
            f"feed event {received + 1} is missing: the hub's heartbeat says the feed is at "
            f"{latest_sequence} but delivered events only up to {received}",
            missing_sequence=received + 1,
        )


class FeedSubscription(Iterator[FeedEvent]):
    """A live iterator over the feed that persists its cursor as events are processed.

    An event counts as processed when the consumer asks for the next one, or when it closes the
    subscription cleanly: :meth:`close`, or leaving a ``with`` block without an exception.  Only
    then is its sequence saved: journalled at once, on disk at the next heartbeat, and in
    ``state/cursor.json`` when the subscription is closed.  Leaving a ``with`` block by an exception
    (the consumer failed while processing) saves nothing for the event in hand, so it is
    delivered again next time.  The subscription holds the profile's cursor lock from creation
    until it is closed, and closes itself when it raises.

    A stream that fails or ends is reopened after the last event received, with capped
    exponential backoff, until the subscription is closed; with ``give_up_after`` (seconds
    without a single answer from the hub) it raises :class:`UnavailableError` instead.
    """

    def __init__(
        self,
        *,
        open_stream: OpenStream,
        target: str,
        lock: CursorLock,
        after: int,
        heartbeats: bool,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        give_up_after: float | None = None,
        on_reconnect: Reconnecting | None = None,
        audit: Callable[[alerts_pb2.SubscribeResponse], Steps[None]] | None = None,
    ) -> None:
        self._open_stream = open_stream
        self._audit = audit
        self._sleep = sleep
        self._target = target
        self._lock = lock
        self._heartbeats = heartbeats
        self._retries = RetrySchedule(
            RECONNECT_BACKOFF, give_up_after=give_up_after, sleep=sleep, clock=clock
        )
        self._on_reconnect = on_reconnect
        self._received = after
        self._handed_out = after
        self._unsaved = False
        self._call: Any = None
        self._responses: Any = None
        self._closed = False
        self._created_in = os.getpid()

    @property
    def position(self) -> int:
        """The sequence of the last event handed out (or the starting point, if none was)."""
        return self._handed_out

    def __iter__(self) -> FeedSubscription:
        return self

    def __next__(self) -> FeedEvent:
        event = run(self.next_steps(), None, wait=self._sleep)
        if event is None:
            raise StopIteration
        return event

    def next_steps(self) -> Steps[FeedEvent | None]:
        """The next event (``None`` once closed) as steps: the blocking subscription runs them,
        :class:`AsyncFeedSubscription` awaits them."""
        if self._closed:
            return None
        # A forked child must not read the parent's stream nor save under its lock.
        check_same_process(self._created_in, "this feed subscription")
        try:
            self._save_cursor()
            return (yield from self._next_entry())
        except BaseException:
            self._shut_down()
            raise

    def _next_entry(self) -> Steps[FeedEvent]:
        while True:
            response = yield from self._receive()
            kind = response.WhichOneof("message")
            if kind == "event":
                event = response.event
                if event.sequence <= self._received:
                    continue
                check_sequence(self._received, event.sequence)
                self._received = self._handed_out = event.sequence
                self._unsaved = True
                return FeedEvent.from_proto(event)
            if kind == "heartbeat":
                check_heartbeat(self._received, response.heartbeat.latest_sequence)
                # The cursor committed so far goes to disk once per heartbeat, most often in
                # the flush that made the heartbeat's checkpoint durable (then this is a no-op).
                yield Flush(self._lock.flush)
                if self._heartbeats:
                    return FeedEvent.from_heartbeat(response.heartbeat)

    def _save_cursor(self) -> None:
        if self._unsaved:
            self._lock.commit(self._handed_out)
            self._unsaved = False

    def _receive(self) -> Steps[alerts_pb2.SubscribeResponse]:
        while True:
            try:
                if self._responses is None:
                    self._call = self._open_stream(self._received)
                    # A blocking call is read through its iterator (audited as it is iterated);
                    # a grpc.aio call, audited here by ``audit``, is read as it is.
                    self._responses = self._call if self._audit is not None else iter(self._call)
                with hub_errors(self._target):
                    response: alerts_pb2.SubscribeResponse | None = yield from read(
                        self._responses
                    )
                if response is not None:
                    if self._audit is not None:
                        yield from self._audit(response)
                    self._retries.reset()
                    return response
                problem = UnavailableError(f"the hub at {self._target} ended the feed stream")
            except UnavailableError as e:
                problem = e
            self._drop_stream()
            delay = self._retries.next_delay(functools.partial(self._announce, problem))
            if delay is None:
                raise problem
            yield from sleep(delay)

    def _announce(self, problem: ExchangeError, seconds: float) -> None:
        if self._on_reconnect is not None:
            self._on_reconnect(seconds, problem)

    def _drop_stream(self) -> None:
        if self._call is not None:
            self._call.cancel()
        self._call = None
        self._responses = None

    def _shut_down(self) -> None:
        if not self._closed:
            self._closed = True
            if os.getpid() != self._created_in:
                return  # the stream and the lock are the parent's
            self._drop_stream()
            self._lock.release()

    def close(self) -> None:
        """Save the cursor for the last event handed out, stop the stream, release the lock."""
        if self._closed:
            return
        check_same_process(self._created_in, "this feed subscription")
        try:
            self._save_cursor()
        finally:
            self._shut_down()

    def abandon(self) -> None:
        """Stop without saving: the last event handed out will be delivered again."""
        self._shut_down()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()


class AsyncFeedSubscription:
    """:class:`FeedSubscription` as an async iterator (``async for event in client.watch()``):
    the same subscription, each next event awaited over ``grpc.aio`` — the same cursor saves,
    gap checks, reconnections and audit of every response.

    Leaving an ``async with`` block cleanly saves the cursor; by an exception, nothing is saved
    for the event in hand (as for :class:`FeedSubscription`).
    """

    def __init__(self, subscription: FeedSubscription, transport: AsyncTransport) -> None:
        self._subscription = subscription
        self._transport = transport

    @property
    def position(self) -> int:
        """See :attr:`FeedSubscription.position`."""
        return self._subscription.position

    def __aiter__(self) -> AsyncFeedSubscription:
        return self

    async def __anext__(self) -> FeedEvent:
        event = await run_async(self._subscription.next_steps(), self._transport)
        if event is None:
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        """See :meth:`FeedSubscription.close`."""
        self._subscription.close()

    def abandon(self) -> None:
        """See :meth:`FeedSubscription.abandon`."""
        self._subscription.abandon()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()
