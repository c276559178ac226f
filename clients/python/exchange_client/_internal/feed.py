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
from typing import Self

import grpc

from exchange.errors import ExchangeError, UnavailableError
from exchange.v1 import alerts_pb2
from exchange_client._internal.errors import FeedGapError, check_same_process
from exchange_client._internal.models import FeedEvent
from exchange_client._internal.retry import Backoff, RetrySchedule
from exchange_client._internal.state import CursorLock
from exchange_client._internal.status import hub_errors

OpenStream = Callable[[int], "grpc.CallIterator[alerts_pb2.SubscribeResponse]"]

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
    then is its sequence saved to ``state/cursor.json``.  Leaving a ``with`` block by an exception
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
    ) -> None:
        self._open_stream = open_stream
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
        self._call: grpc.CallIterator[alerts_pb2.SubscribeResponse] | None = None
        self._responses: Iterator[alerts_pb2.SubscribeResponse] | None = None
        self._closed = False
        self._created_in = os.getpid()

    @property
    def position(self) -> int:
        """The sequence of the last event handed out (or the starting point, if none was)."""
        return self._handed_out

    def __iter__(self) -> FeedSubscription:
        return self

    def __next__(self) -> FeedEvent:
        if self._closed:
            raise StopIteration
        # A forked child must not read the parent's stream nor save under its lock.
        check_same_process(self._created_in, "this feed subscription")
        try:
            self._save_cursor()
            return self._next_entry()
        except BaseException:
            self._shut_down()
            raise

    def _next_entry(self) -> FeedEvent:
        while True:
            response = self._receive()
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
                if self._heartbeats:
                    return FeedEvent.from_heartbeat(response.heartbeat)

    def _save_cursor(self) -> None:
        if self._unsaved:
            self._lock.commit(self._handed_out)
            self._unsaved = False

    def _receive(self) -> alerts_pb2.SubscribeResponse:
        while True:
            try:
                if self._responses is None:
                    self._call = self._open_stream(self._received)
                    self._responses = iter(self._call)
                with hub_errors(self._target):
                    response = next(self._responses, None)
                if response is not None:
                    self._retries.reset()
                    return response
                problem = UnavailableError(f"the hub at {self._target} ended the feed stream")
            except UnavailableError as e:
                problem = e
            self._drop_stream()
            if not self._retries.wait(functools.partial(self._announce, problem)):
                raise problem

    def _announce(self, problem: ExchangeError, seconds: float) -> None:
        if self._on_reconnect is not None:
            self._on_reconnect(seconds, problem)

    def _drop_stream(self) -> None:
        if self._call is not None:
            self._call.cancel()  # type: ignore[no-untyped-call]
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
