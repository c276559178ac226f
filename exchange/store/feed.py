"""Per-agency ordered feeds.  Each event is also an audit-log leaf.

A sequence number is assigned in the same transaction as the log append, after the log lock is
taken, so sequences are dense per agency and a subscriber switching from catch-up to live can
never skip an event committed out of order.

On PostgreSQL each append also queues a notification on :data:`FEED_CHANNEL`, delivered when the
transaction commits, so that every hub replica listening on it wakes its streams
(:func:`listen_for_feed_events`, run by :class:`exchange.hub.background.ReplicaListener`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.engine import URL

from exchange.audit import leaves
from exchange.statements.codec import encode
from exchange.store.bulk import BulkInsert
from exchange.store.compiled import CompiledStatement
from exchange.store.errors import StorageError
from exchange.store.log import append_entry
from exchange.store.schema import feed_events, feed_heads
from exchange.v1 import alerts_pb2

Kind = alerts_pb2.FeedEvent.Kind

FEED_CHANNEL = "exchange_feed"
"""The PostgreSQL notification channel on which committed feed events wake hub replicas."""

# Built once: statements executed with parameters reuse their compiled form and cache key.
_BUMP_SEQUENCE = (
    update(feed_heads)
    .where(feed_heads.c.agency_id == bindparam("agency"))
    .values(last_sequence=feed_heads.c.last_sequence + 1)
    .returning(feed_heads.c.last_sequence)
)
_BUMP_SEQUENCE_BY = CompiledStatement(
    update(feed_heads)
    .where(feed_heads.c.agency_id == bindparam("agency"))
    .values(last_sequence=feed_heads.c.last_sequence + bindparam("count"))
    .returning(feed_heads.c.last_sequence)
)
# On PostgreSQL the publish writer's first head bump also queues the feed channel's
# notification, sparing it a statement of its own.
_BUMP_SEQUENCE_BY_AND_WAKE = CompiledStatement(
    update(feed_heads)
    .where(feed_heads.c.agency_id == bindparam("agency"))
    .values(last_sequence=feed_heads.c.last_sequence + bindparam("count"))
    .returning(
        feed_heads.c.last_sequence,
        func.pg_notify(bindparam("channel"), bindparam("sender")),
    )
)
_INSERT_HEAD = insert(feed_heads)
_INSERT_EVENT = insert(feed_events)
_INSERT_EVENTS = BulkInsert(
    feed_events,
    [
        "agency_id",
        "sequence",
        "kind",
        "originator",
        "alert_id",
        "version",
        "item_id",
        "request_id",
        "actor",
        "created_at",
        "log_index",
    ],
)
_WAKE_REPLICAS = select(func.pg_notify(FEED_CHANNEL, bindparam("sender")))
_LATEST_SEQUENCE = select(feed_heads.c.last_sequence).where(
    feed_heads.c.agency_id == bindparam("agency")
)
_EVENTS_AFTER = (
    select(
        feed_events.c.sequence,
        feed_events.c.kind,
        feed_events.c.originator,
        feed_events.c.alert_id,
        feed_events.c.version,
        feed_events.c.item_id,
        feed_events.c.request_id,
        feed_events.c.actor,
        feed_events.c.created_at,
        feed_events.c.log_index,
    )
    .where(
        feed_events.c.agency_id == bindparam("agency"),
        feed_events.c.sequence > bindparam("after"),
    )
    .order_by(feed_events.c.sequence)
    .limit(bindparam("limit"))
)


@dataclass(frozen=True)
class NewEvent:
    """An event to append to one agency's feed."""

    agency_id: str
    kind: int
    originator: str
    alert_id: str = ""
    version: int = 0
    item_id: str = ""
    request_id: str = ""
    actor: str = ""


def append_event(connection: Connection, event: NewEvent, *, now: datetime) -> alerts_pb2.FeedEvent:
    """Append ``event`` to its agency's feed and to the log; returns it with sequence and index."""
    sequence = _next_sequence(connection, event.agency_id)
    message = event_message(event, sequence, now=now)
    index = append_entry(
        connection,
        entry_type=leaves.FEED_EVENT,
        body=encode(message),
        references=event_references(event, sequence),
        entitled=[event.agency_id],
        now=now,
    )
    message.log_index = index
    if connection.dialect.name == "postgresql":
        # sent at commit; one per transaction and sender reaches them
        connection.execute(_WAKE_REPLICAS, {"sender": ""})
    connection.execute(_INSERT_EVENT, event_row(message, event.agency_id, now=now))
    return message


def event_message(event: NewEvent, sequence: int, *, now: datetime) -> alerts_pb2.FeedEvent:
    """The feed event as it is logged (its body, encoded before ``log_index`` is set)."""
    message = alerts_pb2.FeedEvent(
        sequence=sequence,
        kind=event.kind,  # type: ignore[arg-type]
        originator=event.originator,
        alert_id=event.alert_id,
        version=event.version,
        item_id=event.item_id,
        request_id=event.request_id,
        actor=event.actor,
    )
    message.created_at.FromDatetime(now)
    return message


def event_references(event: NewEvent, sequence: int) -> list[str]:
    """The references its log leaf commits to."""
    return [event.agency_id, str(sequence), event.originator, event.alert_id]


def event_row(
    message: alerts_pb2.FeedEvent, agency_id: str, *, now: datetime
) -> dict[str, object]:
    """The ``feed_events`` row of a logged event (``log_index`` set)."""
    return {
        "agency_id": agency_id,
        "sequence": message.sequence,
        "kind": Kind.Name(message.kind),
        "originator": message.originator,
        "alert_id": message.alert_id,
        "version": message.version,
        "item_id": message.item_id,
        "request_id": message.request_id,
        "actor": message.actor,
        "created_at": now,
        "log_index": message.log_index,
    }


def take_sequences(
    connection: Connection, counts: Mapping[str, int], *, wake: str | None = None
) -> dict[str, int]:
    """Reserve ``counts[agency]`` consecutive sequences of each agency's feed, under the log
    lock; returns the first of each. One statement per agency, whatever the count.

    ``wake``, when the caller stores events for these sequences in this transaction: on
    PostgreSQL the feed channel's notification is queued too, with ``wake`` as its payload, in
    the first head's bump (or on its own when that head is new), and the caller's
    :func:`insert_events` is told so (``woken=True``).
    """
    first: dict[str, int] = {}
    waking = wake is not None and connection.dialect.name == "postgresql" and bool(counts)
    for agency, count in counts.items():
        if waking:
            bumped = _BUMP_SEQUENCE_BY_AND_WAKE.scalar(
                connection,
                {"agency": agency, "count": count, "channel": FEED_CHANNEL, "sender": wake},
            )
            if bumped is None:  # a new head: no row updated, so nothing was queued either
                connection.execute(_WAKE_REPLICAS, {"sender": wake})
            waking = False
        else:
            bumped = _BUMP_SEQUENCE_BY.scalar(connection, {"agency": agency, "count": count})
        if bumped is None:
            connection.execute(_INSERT_HEAD, {"agency_id": agency, "last_sequence": count})
            bumped = count
        first[agency] = int(bumped) - count + 1
    return first


def insert_events(
    connection: Connection,
    events: Sequence[tuple[str, alerts_pb2.FeedEvent]],
    *,
    now: datetime,
    sender: str = "",
    woken: bool = False,
) -> None:
    """Store logged feed events (each an agency and its message, ``log_index`` set; the rows
    :func:`event_row` describes) with one multi-row insert, and wake the other replicas at
    commit on PostgreSQL (one notification per transaction, its payload ``sender``: the
    publish writer names itself, so that its own hub's listener can skip it), unless
    ``woken``: :func:`take_sequences` queued that notification already."""
    if not events:
        return
    if connection.dialect.name == "postgresql" and not woken:
        connection.execute(_WAKE_REPLICAS, {"sender": sender})
    name = Kind.Name
    _INSERT_EVENTS.execute(
        connection,
        [
            (
                agency_id,
                message.sequence,
                name(message.kind),
                message.originator,
                message.alert_id,
                message.version,
                message.item_id,
                message.request_id,
                message.actor,
                now,
                message.log_index,
            )
            for agency_id, message in events
        ],
    )


def _next_sequence(connection: Connection, agency_id: str) -> int:
    bumped = connection.execute(_BUMP_SEQUENCE, {"agency": agency_id}).scalar_one_or_none()
    if bumped is not None:
        return int(bumped)
    connection.execute(_INSERT_HEAD, {"agency_id": agency_id, "last_sequence": 1})
    return 1


def latest_sequence(connection: Connection, agency_id: str) -> int:
    """The agency's last assigned sequence (0 for an empty feed)."""
    value = connection.execute(_LATEST_SEQUENCE, {"agency": agency_id}).scalar_one_or_none()
    return int(value or 0)


def events_after(
    connection: Connection, agency_id: str, after: int, limit: int
) -> list[alerts_pb2.FeedEvent]:
    """The agency's events with sequence > ``after``, ascending, at most ``limit``."""
    return [
        event
        for batch in event_batches_after(connection, agency_id, after, limit)
        for event in batch
    ]


EVENTS_PER_BATCH = 50
"""Rows :func:`event_batches_after` reads and builds before handing them on."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_batches_after(
    connection: Connection, agency_id: str, after: int, limit: int, *, batch: int = EVENTS_PER_BATCH
) -> Iterator[list[alerts_pb2.FeedEvent]]:
    """:func:`events_after`'s events, in lists of at most ``batch``, each built as its rows are
    read: one statement (one snapshot, at most ``limit`` rows), whose first events a caller can
    send on while the rest are still being read."""
    rows = connection.execute(_EVENTS_AFTER, {"agency": agency_id, "after": after, "limit": limit})
    kind_number = Kind.Value
    event = alerts_pb2.FeedEvent
    for partition in rows.partitions(batch):
        events = []
        for (
            sequence,
            kind,
            originator,
            alert_id,
            version,
            item_id,
            request_id,
            actor,
            at,
            index,
        ) in partition:
            message = event(
                sequence=sequence,
                kind=kind_number(kind),
                originator=originator,
                alert_id=alert_id,
                version=version,
                item_id=item_id,
                request_id=request_id,
                actor=actor,
                log_index=index,
            )
            # Timestamp.FromDatetime's arithmetic, without its pure-Python calendar round trip.
            since = at - _EPOCH
            created = message.created_at
            created.seconds = since.days * 86_400 + since.seconds
            created.nanos = since.microseconds * 1_000
            events.append(message)
        yield events


def listen_for_feed_events(
    url: URL,
    *,
    listening: Callable[[], None],
    on_event: Callable[[str], None],
    stopping: threading.Event,
    poll_seconds: float,
) -> None:
    """Hold one PostgreSQL connection that ``LISTEN``s on :data:`FEED_CHANNEL` and call
    ``on_event`` with the payload of every notification (its sender, or ''), until ``stopping`` is set (looked at every
    ``poll_seconds``). ``listening`` is called once the channel is listened to.

    Raises :class:`~exchange.errors.StorageError` when the connection fails.
    """
    import psycopg

    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f"LISTEN {FEED_CHANNEL}")
            listening()
            while not stopping.is_set():
                for notification in connection.notifies(timeout=poll_seconds):
                    on_event(notification.payload)
    except psycopg.Error as e:
        raise StorageError(f"listening on {FEED_CHANNEL} failed: {e}") from e
