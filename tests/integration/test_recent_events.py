"""A live subscription takes the events the publish writer just committed from memory: the same
events the database holds, in order, with none lost when another write path (a release decision)
takes a sequence in between; on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from exchange.hub import servicers
from exchange.v1 import alerts_pb2
from tests.integration.agency import TestAgency
from tests.integration.release_steps import approve, send_request, signed_request
from tests.integration.test_exchange import shipment_alert
from tests.integration.test_release import held_alert

Kind = alerts_pb2.FeedEvent


@pytest.fixture
def hub(hub_factory: Callable[..., object]) -> object:
    """A hub whose streams send no heartbeat during a test: a stream woken by its heartbeat's
    time rather than by a commit reads the database (memory cannot tell that nothing else was
    committed), which would blur what the first test counts."""
    return hub_factory(heartbeat_interval_seconds=600.0)


@pytest.fixture
def agencies(hub: object, exchange_dir: Path) -> Iterator[dict[str, TestAgency]]:
    port = hub.port  # type: ignore[attr-defined]
    parties = {a: TestAgency(exchange_dir, a, port) for a in ("agency-a", "agency-b", "agency-c")}
    yield parties
    for party in parties.values():
        party.close()


@pytest.fixture
def page_reads(hub: object) -> Iterator[list[Any]]:
    """The parameters of every read of a page of feed events (``sequence > :after``)."""
    reads: list[Any] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        text = " ".join(statement.split())
        if "FROM feed_events" in text and "feed_events.sequence >" in text:
            reads.append(parameters)

    engine = hub.db.engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", record)
    yield reads
    event.remove(engine, "before_cursor_execute", record)


def _next_events(stream: Any, count: int) -> list[alerts_pb2.FeedEvent]:
    found: list[alerts_pb2.FeedEvent] = []
    for message in stream:
        if message.HasField("event"):
            found.append(message.event)
            if len(found) == count:
                return found
    raise AssertionError(f"the stream ended after {len(found)} of {count} events")


def _stored(agency: Any, after: int = 0) -> list[alerts_pb2.FeedEvent]:
    request = alerts_pb2.ListEventsRequest(after=after, limit=100)
    return list(agency.alerts.ListEvents(request, timeout=10).events)


def test_live_events_come_from_memory_and_equal_the_stored_ones(
    agencies: dict[str, Any], page_reads: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(servicers, "HEARTBEAT_SPACING_SECONDS", 600.0)  # see the hub fixture
    a, b = agencies["agency-a"], agencies["agency-b"]
    a.alerts.Publish(shipment_alert(a).request, timeout=10)
    stream = b.alerts.Subscribe(alerts_pb2.SubscribeRequest(after=0), timeout=30)
    try:
        assert [e.sequence for e in _next_events(stream, 1)] == [1]
        del page_reads[:]
        published = []
        for _ in range(5):
            sealed = shipment_alert(a)
            a.alerts.Publish(sealed.request, timeout=10)
            published.append(sealed.manifest.alert_id)
        live = _next_events(stream, 5)
        assert page_reads == [], "live events were read back from the database"
    finally:
        stream.cancel()
    assert [e.alert_id for e in live] == published
    assert live == _stored(b, after=1)  # every field as stored, created_at and log index too
    assert page_reads, "ListEvents reads its page with the statement watched for above"


def test_an_event_from_another_write_path_between_batches_is_not_missed(
    hub: object, agencies: dict[str, Any]
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    manifest = held_alert(a)  # agency-b's sequence 1, from the writer
    stream = b.alerts.Subscribe(alerts_pb2.SubscribeRequest(after=0), timeout=30)
    try:
        assert [Kind.Kind.Name(e.kind) for e in _next_events(stream, 1)] == ["ALERT_PUBLISHED"]
        request = signed_request(b, manifest, "bank")
        send_request(b, request)
        approve(a, manifest, request)  # sequences 2 and 3, from the release path
        a.alerts.Publish(shipment_alert(a).request, timeout=10)  # 4 and 5, the writer's
        a.alerts.Publish(shipment_alert(a).request, timeout=10)
        live = _next_events(stream, 4)
    finally:
        stream.cancel()
    recent = hub.publishes.recent  # type: ignore[attr-defined]
    assert recent.after("agency-b", 1, 10) is None  # what it holds starts after the gap
    assert [e.sequence for e in recent.after("agency-b", 3, 10)[0]] == [4, 5]
    # A stream that resumes before the gap is not answered from memory.
    stream = b.alerts.Subscribe(alerts_pb2.SubscribeRequest(after=1), timeout=30)
    try:
        resumed = _next_events(stream, 4)
    finally:
        stream.cancel()
    stored = _stored(b, after=1)
    assert [Kind.Kind.Name(e.kind) for e in stored] == [
        "RELEASE_DECIDED",
        "ITEM_RELEASED",
        "ALERT_PUBLISHED",
        "ALERT_PUBLISHED",
    ]
    assert [e.sequence for e in stored] == [2, 3, 4, 5]
    assert live == stored
    assert resumed == stored


def test_streams_cancelled_mid_catch_up_close_without_an_error(
    agencies: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream the client cancels is closed by the hub's event loop in a context of its own:
    the guard's cleanup must not fail there (it logged a ``ValueError`` per cancelled stream)."""
    monkeypatch.setattr(servicers, "MAX_EVENTS_PER_PAGE", 2)  # a catch-up of several pages
    a, b = agencies["agency-a"], agencies["agency-b"]
    for _ in range(8):
        a.alerts.Publish(shipment_alert(a).request, timeout=10)
    caplog.set_level(logging.WARNING)
    for taken in range(1, 7):
        stream = b.alerts.Subscribe(alerts_pb2.SubscribeRequest(after=0), timeout=30)
        for count, _ in enumerate(stream, start=1):
            if count >= taken:
                break
        stream.cancel()
    time.sleep(1.0)  # for the hub's loop to finalize the cancelled streams
    b.alerts.ListEvents(alerts_pb2.ListEventsRequest(), timeout=10)  # the hub still answers
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage()[:300] for r in errors]
