"""Two hub replicas on one PostgreSQL database: a publish through one wakes the streams held by
the other at once (``LISTEN/NOTIFY``), not at the other's next heartbeat."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from exchange.statements.sealing import summary_item
from exchange.store.db import Database
from exchange.store.feed import FEED_CHANNEL, take_sequences
from exchange.v1 import alerts_pb2, payloads_pb2
from tests.conftest import _postgres_database
from tests.integration.agency import TestAgency, note_item

HEARTBEAT_SECONDS = 3600.0
"""Longer than the test may run: only a wake-up from the other replica can deliver the event."""

WAKE_UP_WAIT_SECONDS = 120.0
"""How long to wait for the event: far beyond a wake-up's milliseconds, however loaded the
machine, and far short of the heartbeat."""


@pytest.fixture
def database_url() -> Iterator[str]:  # PostgreSQL only: replicas share a server, not a file
    yield from _postgres_database()


@pytest.mark.postgres
def test_a_publish_through_one_replica_reaches_a_stream_held_by_the_other(
    hub_factory: Callable[..., object], exchange_dir: Path
) -> None:
    first = hub_factory(heartbeat_interval_seconds=HEARTBEAT_SECONDS)
    second = hub_factory(heartbeat_interval_seconds=HEARTBEAT_SECONDS)
    publisher = TestAgency(exchange_dir, "agency-a", first.port)  # type: ignore[attr-defined]
    subscriber = TestAgency(exchange_dir, "agency-b", second.port)  # type: ignore[attr-defined]
    stream = subscriber.alerts.Subscribe(alerts_pb2.SubscribeRequest(after=0), timeout=300)
    responses = iter(stream)
    assert next(responses).HasField("heartbeat")  # caught up: the stream now waits
    received: list[alerts_pb2.FeedEvent] = []
    arrived = threading.Event()

    def follow() -> None:
        for response in responses:
            if response.HasField("event"):
                received.append(response.event)
                arrived.set()
                return

    threading.Thread(target=follow, daemon=True).start()
    items = [note_item("note-1", "container MSCU1234565", ["agency-b"])]
    summary = payloads_pb2.Summary(kind=payloads_pb2.Summary.SHIPMENT, title="precursor")
    sealed = publisher.seal([summary_item(summary, items), *items])
    publisher.alerts.Publish(sealed.request, timeout=30)
    # Without the other replica's notification the event would wait for the hour's heartbeat.
    assert arrived.wait(WAKE_UP_WAIT_SECONDS), "the other replica's stream was not woken"
    assert [e.alert_id for e in received] == [sealed.manifest.alert_id]
    stream.cancel()
    publisher.close()
    subscriber.close()


@pytest.mark.postgres
def test_the_writers_feed_head_bump_queues_its_named_notification_for_a_new_head_and_an_old_one(
    database_url: str,
) -> None:
    """The publish writer's notification rides on its first feed head's bump; a head not
    there yet (no row to bump) gets it on its own. Either way one notification, named."""
    db = Database.from_url(database_url)
    db.migrate()
    conninfo = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(
        conninfo.render_as_string(hide_password=False), autocommit=True
    ) as listener:
        listener.execute(f"LISTEN {FEED_CHANNEL}")
        firsts = []
        for _ in range(2):  # the head created, then bumped
            with db.write() as connection:
                firsts.append(take_sequences(connection, {"agency-b": 2}, wake="writer-1"))
            notified = listener.notifies(timeout=WAKE_UP_WAIT_SECONDS, stop_after=1)
            assert [n.payload for n in notified] == ["writer-1"]
        with db.write() as connection:  # not asked to wake: nothing queued
            take_sequences(connection, {"agency-b": 1})
        assert list(listener.notifies(timeout=0.5)) == []
    assert firsts == [{"agency-b": 1}, {"agency-b": 3}]
    db.dispose()
