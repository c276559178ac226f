"""Reading this agency's feed by polling or by subscription, every event proven in the log.

The sequence rules are :mod:`exchange_client._internal.feed`'s (:func:`check_sequence`,
:func:`check_heartbeat`); the live stream is its :class:`FeedSubscription`, over a stream the
auditor verifies as it passes.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from exchange.errors import VerificationError
from exchange.v1 import alerts_pb2
from exchange_client._internal.audit import Auditor
from exchange_client._internal.calls import Steps, call, run_blocking
from exchange_client._internal.feed import (
    AsyncFeedSubscription,
    FeedSubscription,
    OpenStream,
    Reconnecting,
    check_heartbeat,
    check_sequence,
)
from exchange_client._internal.models import FeedEvent
from exchange_client._internal.state import ClientState
from exchange_client._internal.transport import AsyncTransport, Transport


def new_events(response: alerts_pb2.ListEventsResponse, start: int) -> list[FeedEvent]:
    """The events of a polled page after ``start``, each directly following the one before;
    raises :class:`FeedGapError` for a skipped sequence, or for an empty page while the hub
    states that the feed is further on."""
    received = start
    events = []
    for event in response.events:
        if event.sequence <= received:
            continue
        check_sequence(received, event.sequence)
        received = event.sequence
        events.append(FeedEvent.from_proto(event))
    if not events:
        check_heartbeat(received, response.latest_sequence)
    return events


class FeedReader:
    """This agency's feed: polled pages, the saved cursor, and live subscriptions."""

    def __init__(
        self,
        transport: Transport | AsyncTransport,
        *,
        state: ClientState,
        auditor: Auditor,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
    ) -> None:
        self._transport = transport
        self._state = state
        self._auditor = auditor
        self._sleep = sleep
        self._monotonic = monotonic

    def events(self, after: int | None = None, *, limit: int = 100) -> list[FeedEvent]:
        """See :meth:`exchange_client.Client.events`."""
        return run_blocking(self.events_steps(after, limit=limit), self._transport)

    def events_steps(self, after: int | None = None, *, limit: int = 100) -> Steps[list[FeedEvent]]:
        """:meth:`events` as steps."""
        start = self._state.read_cursor() if after is None else after
        response = yield from call(
            "alerts", "ListEvents", alerts_pb2.ListEventsRequest(after=start, limit=limit)
        )
        events = new_events(response, start)
        if not events:
            return events
        # The audit log: every polled event is proven under the checkpoint that came with it.
        if not response.checkpoint:
            raise VerificationError(
                "the hub returned feed events without a checkpoint to prove them in the log",
                reason="NOT_YET_CHECKPOINTED",
            )
        signed = yield from self._auditor.accept_steps(response.checkpoint)
        for event in response.events:
            if event.sequence > start:
                self._auditor.await_proof(event)
        yield from self._auditor.prove_awaiting_steps(signed.checkpoint)
        return events

    def commit_cursor(self, sequence: int) -> None:
        """See :meth:`exchange_client.Client.commit_cursor`."""
        with self._state.cursor_guard, self._state.lock_cursor() as lock:
            lock.commit(sequence)

    def cursor(self) -> int:
        """See :meth:`exchange_client.Client.cursor`."""
        return self._state.read_cursor()

    def subscribe(
        self,
        after: int | None = None,
        *,
        heartbeats: bool = False,
        give_up_after: float | None = None,
        on_reconnect: Reconnecting | None = None,
    ) -> FeedSubscription:
        """See :meth:`exchange_client.Client.subscribe`."""
        transport = self._transport
        if not isinstance(transport, Transport):
            raise TypeError("an asynchronous client watches the feed with watch()")

        def open_stream(after_sequence: int) -> grpc.CallIterator[alerts_pb2.SubscribeResponse]:
            # The audit log: heartbeats' checkpoints and the events are verified as they pass.
            return self._auditor.audited_stream(transport.subscribe(after_sequence))

        return self._subscription(
            open_stream,
            None,
            after,
            heartbeats=heartbeats,
            give_up_after=give_up_after,
            on_reconnect=on_reconnect,
        )

    def watch(
        self,
        after: int | None = None,
        *,
        heartbeats: bool = False,
        give_up_after: float | None = None,
        on_reconnect: Reconnecting | None = None,
    ) -> AsyncFeedSubscription:
        """:meth:`subscribe` over ``grpc.aio``: the same subscription, as an async iterator,
        each response audited by the same steps."""
        transport = self._transport
        if not isinstance(transport, AsyncTransport):
            raise TypeError("a blocking client subscribes to the feed with subscribe()")
        subscription = self._subscription(
            transport.subscribe,
            self._auditor.audit_response_steps,
            after,
            heartbeats=heartbeats,
            give_up_after=give_up_after,
            on_reconnect=on_reconnect,
        )
        return AsyncFeedSubscription(subscription, transport)

    def _subscription(
        self,
        open_stream: OpenStream,
        audit: Callable[[alerts_pb2.SubscribeResponse], Steps[None]] | None,
        after: int | None,
        *,
        heartbeats: bool,
        give_up_after: float | None,
        on_reconnect: Reconnecting | None,
    ) -> FeedSubscription:
        lock = self._state.lock_cursor()
        try:
            start = self._state.read_cursor() if after is None else after
        except BaseException:
            lock.release()
            raise
        return FeedSubscription(
            open_stream=open_stream,
            target=self._transport.target,
            lock=lock,
            after=start,
            heartbeats=heartbeats,
            sleep=self._sleep,
            clock=self._monotonic,
            give_up_after=give_up_after,
            on_reconnect=on_reconnect,
            audit=audit,
        )
