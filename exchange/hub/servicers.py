"""Thin gRPC servicers: read the request, call one core function or repository, map the result."""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc

from exchange.errors import InvalidInputError, NotFoundError
from exchange.hub.background import Checkpointer
from exchange.hub.blocking import blocking, iterate_blocking, run_blocking
from exchange.hub.directory import AgencyDirectory
from exchange.hub.guard import current_caller
from exchange.hub.log_proofs import heartbeat_log_state
from exchange.hub.notifier import FeedNotifier
from exchange.hub.publish_queue import PublishQueue
from exchange.statements.codec import envelope_from_proto
from exchange.statements.publish import KNOWN_LOG_SIZE_METADATA, PublishLimits, check_publish
from exchange.store import alerts as alert_store
from exchange.store import feed, registry
from exchange.store.checkpoints import StoredCheckpoint
from exchange.store.db import Database
from exchange.store.publish_writer import Receipt
from exchange.v1 import (
    alerts_pb2,
    alerts_pb2_grpc,
    directory_pb2,
    directory_pb2_grpc,
    statements_pb2,
)

MAX_EVENTS_PER_PAGE = 500

HEARTBEAT_SPACING_SECONDS = 0.05
"""Shortest time between two heartbeats of a stream that is sending events: a busy feed gets one
heartbeat (a checkpoint and the proofs of the events before it) per spacing, not per event."""


@dataclass(frozen=True)
class HubContext:
    """What every servicer needs: the database, the registry view, the clock, the settings."""

    db: Database
    directory: AgencyDirectory
    notifier: FeedNotifier
    clock: Callable[[], datetime]
    limits: PublishLimits
    heartbeat_interval: float
    publishes: PublishQueue
    """The one entry point for publish writes: checks on the loop, one writer thread storing
    batches (one durable commit per batch, receipts proven under the batch's checkpoint)."""
    checkpointer: Checkpointer | None = None
    # Runs before reads that embargo notices or expiry purges may concern (release controls).
    sweep_on_read: Callable[[], object] | None = None

    def before_read(self) -> None:
        """Let due embargo notices and expiry purges happen before a read sees the feed."""
        if self.sweep_on_read is not None:
            self.sweep_on_read()


class DirectoryServicer(directory_pb2_grpc.DirectoryServiceServicer):
    def __init__(self, hub: HubContext) -> None:
        self._hub = hub

    @blocking
    def ListAgencies(
        self, request: directory_pb2.ListAgenciesRequest, context: grpc.ServicerContext
    ) -> directory_pb2.ListAgenciesResponse:
        with self._hub.db.read() as connection:
            rows = registry.list_agencies(connection)
        return directory_pb2.ListAgenciesResponse(agencies=[_agency_record(r) for r in rows])

    @blocking
    def GetAgency(
        self, request: directory_pb2.GetAgencyRequest, context: grpc.ServicerContext
    ) -> directory_pb2.AgencyRecord:
        with self._hub.db.read() as connection:
            rows = registry.list_agencies(connection)
        for row in rows:
            if row.agency_id == request.agency_id:
                return _agency_record(row)
        raise NotFoundError(f"no agency {request.agency_id!r}")

    @blocking
    def PublishKeys(
        self, request: directory_pb2.PublishKeysRequest, context: grpc.ServicerContext
    ) -> directory_pb2.PublishKeysResponse:
        caller = current_caller()
        envelope = envelope_from_proto(request.keys)
        now = self._hub.clock()
        with self._hub.db.write() as connection:
            published = registry.publish_keys(connection, envelope, caller=caller, now=now)
        self._hub.directory.refresh()
        return directory_pb2.PublishKeysResponse(key_number=published.keys.key_number)


def _agency_record(row: registry.AgencyRow) -> directory_pb2.AgencyRecord:
    keys = []
    for raw in row.keys:
        envelope = statements_pb2.Envelope()
        envelope.ParseFromString(raw)
        keys.append(envelope)
    return directory_pb2.AgencyRecord(
        agency_id=row.agency_id,
        ca_certificate=row.ca_certificate_der,
        keys=keys,
        revoked=row.revoked,
    )


def _known_log_size(context: grpc.aio.ServicerContext[Any, Any]) -> int:
    """The tree size the caller said it trusts, 0 if it said none (or nothing usable)."""
    for key, value in context.invocation_metadata() or ():
        usable = isinstance(value, str) and value.isascii() and value.isdigit()
        if key == KNOWN_LOG_SIZE_METADATA and usable:
            return int(value)
    return 0


def _publish_response(receipt: Receipt) -> alerts_pb2.PublishResponse:
    outcome = receipt.outcome
    response = alerts_pb2.PublishResponse(
        originator=outcome.originator,
        alert_id=outcome.alert_id,
        version=outcome.version,
        manifest_hash=outcome.manifest_hash,
        log_index=outcome.log_index,
        notified=list(outcome.notified),
        leaf=receipt.leaf,
        checkpoint=receipt.checkpoint,
    )
    response.accepted_at.FromDatetime(outcome.accepted_at)
    if receipt.inclusion is not None:
        response.inclusion_proof.CopyFrom(receipt.inclusion)
    if receipt.consistency is not None:
        response.consistency.CopyFrom(receipt.consistency)
    return response


async def _one_batch(
    events: list[alerts_pb2.FeedEvent], latest: int
) -> AsyncGenerator[tuple[list[alerts_pb2.FeedEvent], int | None], None]:
    """Events already in memory, as the one batch of a page read from the store would come."""
    yield events, latest


def _note(checkpoint: StoredCheckpoint | None) -> str:
    return "" if checkpoint is None else checkpoint.note


class AlertServicer(alerts_pb2_grpc.AlertServiceServicer):
    def __init__(self, hub: HubContext) -> None:
        self._hub = hub

    async def Publish(
        self, request: alerts_pb2.PublishRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> alerts_pb2.PublishResponse:
        """Check the request on the loop, queue it for the one publish writer, and answer with
        the receipt once its batch is durably committed (:mod:`exchange.hub.publish_queue`)."""
        caller = current_caller()
        self._hub.directory.refuse_compromised_grants(request.grants, now=self._hub.clock())
        publishes = self._hub.publishes
        checked = await publishes.check(
            request.ByteSize(),
            functools.partial(
                check_publish,
                request,
                caller=caller,
                caller_keys=self._hub.directory.signing_keys(caller),
                encryption_key_ids=self._hub.directory.encryption_key_ids(),
                limits=self._hub.limits,
            ),
        )
        receipt = await publishes.publish(checked, known_size=_known_log_size(context))
        return _publish_response(receipt)

    @blocking
    def ListAlerts(
        self, request: alerts_pb2.ListAlertsRequest, context: grpc.ServicerContext
    ) -> alerts_pb2.ListAlertsResponse:
        limit = min(request.limit or 100, 1000)
        self._hub.before_read()
        with self._hub.db.read() as connection:
            summaries = alert_store.list_alerts(
                connection,
                current_caller(),
                include_own=request.include_own,
                limit=limit,
                now=self._hub.clock(),
            )
        return alerts_pb2.ListAlertsResponse(alerts=summaries)

    @blocking
    def GetAlert(
        self, request: alerts_pb2.GetAlertRequest, context: grpc.ServicerContext
    ) -> alerts_pb2.AlertView:
        if not request.alert_id:
            raise InvalidInputError("alert_id is required")
        self._hub.before_read()
        now = self._hub.clock()
        undelivered: list[int] = []
        with self._hub.db.read() as connection:
            view = alert_store.alert_view(
                connection,
                current_caller(),
                alert_id=request.alert_id,
                originator=request.originator,
                version=request.version,
                now=now,
                undelivered=undelivered,
            )
        if undelivered:
            with self._hub.db.write() as connection:
                alert_store.record_deliveries(connection, undelivered, now=now)
        return view

    @blocking
    def ListEvents(
        self, request: alerts_pb2.ListEventsRequest, context: grpc.ServicerContext
    ) -> alerts_pb2.ListEventsResponse:
        caller = current_caller()
        limit = min(request.limit or 100, MAX_EVENTS_PER_PAGE)
        self._hub.before_read()
        with self._hub.db.read() as connection:
            events = feed.events_after(connection, caller, request.after, limit)
            latest = feed.latest_sequence(connection, caller)
        checkpoint = None
        if events:
            checkpoint = heartbeat_log_state(
                self._hub.db, self._hub.checkpointer, caller, events[-1].sequence
            ).checkpoint
        return alerts_pb2.ListEventsResponse(
            events=events, latest_sequence=latest, checkpoint=_note(checkpoint)
        )

    async def Subscribe(
        self, request: alerts_pb2.SubscribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[alerts_pb2.SubscribeResponse]:
        """Catch up from ``after``, then stream live; a heartbeat follows every page of a
        catch-up and the catch-up's end (within
        ``HEARTBEAT_SPACING_SECONDS`` of the previous one) and every quiet interval, carrying the
        latest sequence read with the events just sent, a checkpoint covering it, the proofs of
        those events under it and of its consistency with the stream's previous one.

        An asynchronous generator: it holds no thread while it waits, and the notifier wakes it
        when feed events commit. A catch-up reads the store; once caught up, the events the
        publish writer just committed come from memory (:mod:`exchange.hub.recent_events`);
        reads run on the executor (:mod:`exchange.hub.blocking`)."""
        caller = current_caller()
        notifier = self._hub.notifier
        cursor = request.after
        last_heartbeat = -math.inf  # the first catch-up heartbeats at once, whatever the uptime
        unproven: list[int] = []  # log indices of the events sent since the last heartbeat
        previous_size = 0  # of the checkpoint this stream last sent
        owed = False  # events went out since the last heartbeat
        spacing = min(HEARTBEAT_SPACING_SECONDS, self._hub.heartbeat_interval)
        live = False  # caught up from the store: new events may come from memory
        while not context.done() and not notifier.closed:
            seen = notifier.version
            recent = self._hub.publishes.recent.after(caller, cursor, MAX_EVENTS_PER_PAGE)
            if live and recent is not None:
                batches: AsyncGenerator[tuple[list[alerts_pb2.FeedEvent], int | None], None]
                batches = _one_batch(*recent)
            else:
                # The page is read in batches: its first events go out while the rest is read.
                batches = iterate_blocking(functools.partial(self._page, caller, cursor))
            sent = 0
            latest = 0
            async with contextlib.aclosing(batches):
                async for events, head in batches:
                    for event in events:
                        yield alerts_pb2.SubscribeResponse(event=event)
                        cursor = event.sequence
                        unproven.append(event.log_index)
                        owed = True
                    sent += len(events)
                    if head is not None:
                        latest = head
            catching_up = sent == MAX_EVENTS_PER_PAGE
            live = not catching_up
            since = time.monotonic() - last_heartbeat
            if catching_up:
                # Mid catch-up, a heartbeat follows every page, stating the last sequence sent:
                # the stream never holds more than one page of events and their proofs.
                heartbeat, previous_size = await run_blocking(
                    functools.partial(self._heartbeat, caller, cursor, unproven, previous_size)
                )
                yield alerts_pb2.SubscribeResponse(heartbeat=heartbeat)
                unproven, owed = [], False
                last_heartbeat = time.monotonic()
                continue
            if (owed and since >= spacing) or since >= self._hub.heartbeat_interval:
                heartbeat, previous_size = await run_blocking(
                    functools.partial(self._heartbeat, caller, latest, unproven, previous_size)
                )
                yield alerts_pb2.SubscribeResponse(heartbeat=heartbeat)
                unproven, owed = [], False
                last_heartbeat, since = time.monotonic(), 0.0
            due = (spacing if owed else self._hub.heartbeat_interval) - since
            await notifier.wait_async(seen, timeout=max(due, 0.0))

    def _page(
        self, caller: str, cursor: int
    ) -> Generator[tuple[list[alerts_pb2.FeedEvent], int | None], None, None]:
        """The caller's events after ``cursor`` (one page) in batches as they are read, then its
        latest sequence (the last item, with no events), from one snapshot."""
        with self._hub.db.read() as connection:
            for events in feed.event_batches_after(connection, caller, cursor, MAX_EVENTS_PER_PAGE):
                yield events, None
            yield [], feed.latest_sequence(connection, caller)

    def _heartbeat(
        self, caller: str, latest: int, unproven: list[int], previous_size: int
    ) -> tuple[alerts_pb2.Heartbeat, int]:
        """The heartbeat, and the size of the checkpoint it carries (``previous_size`` if none)."""
        state = heartbeat_log_state(
            self._hub.db,
            self._hub.checkpointer,
            caller,
            latest,
            events=unproven,
            previous_size=previous_size,
        )
        heartbeat = alerts_pb2.Heartbeat(
            latest_sequence=latest,
            latest_log_index=state.latest_log_index,
            checkpoint=_note(state.checkpoint),
            event_proofs=state.event_proofs,
        )
        heartbeat.time.FromDatetime(self._hub.clock())
        if state.consistency is not None:
            heartbeat.consistency.CopyFrom(state.consistency)
        if state.checkpoint is None:
            return heartbeat, previous_size
        return heartbeat, state.checkpoint.size
