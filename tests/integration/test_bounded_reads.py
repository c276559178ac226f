"""A feed resume and a full-log read stream in pages: the hub never reads the whole feed or log
into memory, whatever their length.

Without timing anything: the page sizes are turned down to a few rows, the hub's SQL is
recorded, and every read of feed events or leaves must ask for at most one page, every
heartbeat of a catch-up must carry at most one page of proofs — while the client library still
receives, proves and verifies everything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from exchange.hub import audit_service, servicers
from exchange.statements.sealing import summary_item
from exchange.v1 import alerts_pb2, payloads_pb2
from exchange_client import Client, Profile
from tests.integration.agency import TestAgency, note_item

PAGE = 4
PUBLISHED = 11


@pytest.fixture
def statements(hub: object) -> Iterator[list[tuple[str, Any]]]:
    """Every statement (driver SQL and parameters) the hub runs while the test runs."""
    recorded: list[tuple[str, Any]] = []
    engine = hub.db.engine  # type: ignore[attr-defined]

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        recorded.append((" ".join(statement.split()), parameters))

    event.listen(engine, "before_cursor_execute", record)
    yield recorded
    event.remove(engine, "before_cursor_execute", record)


def _publish(hub: object, exchange_dir: Path, count: int) -> None:
    a = TestAgency(exchange_dir, "agency-a", hub.port)  # type: ignore[attr-defined]
    try:
        items = [note_item("note-1", "container MSCU1234565", ["agency-b"])]
        summary = payloads_pb2.Summary(kind=payloads_pb2.Summary.SHIPMENT, title="precursor")
        for _ in range(count):
            a.alerts.Publish(a.seal([summary_item(summary, items), *items]).request, timeout=10)
    finally:
        a.close()


def _client(hub: object, exchange_dir: Path, tmp_path: Path, agency: str) -> Client:
    profile = dataclasses.replace(
        Profile.load(exchange_dir / "agencies" / agency), state_dir=tmp_path / agency
    )
    return Client(profile, hub=f"127.0.0.1:{hub.port}")  # type: ignore[attr-defined]


def _values(parameters: Any, prefix: str) -> list[Any]:
    """The values of the bound parameters whose names start with ``prefix`` (or, positional
    SQLite parameters, all of them)."""
    if isinstance(parameters, dict):
        return [value for key, value in parameters.items() if key.startswith(prefix)]
    return list(parameters)


def test_a_feed_resume_reads_and_proves_one_page_at_a_time(
    hub: object,
    exchange_dir: Path,
    tmp_path: Path,
    statements: list[tuple[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(servicers, "MAX_EVENTS_PER_PAGE", PAGE)
    _publish(hub, exchange_dir, PUBLISHED)
    b = TestAgency(exchange_dir, "agency-b", hub.port)  # type: ignore[attr-defined]
    del statements[:]
    sent: list[int] = []
    heartbeats: list[alerts_pb2.Heartbeat] = []
    try:
        stream = b.alerts.Subscribe(alerts_pb2.SubscribeRequest(after=0), timeout=30)
        for response in stream:
            if response.HasField("event"):
                sent.append(response.event.sequence)
            elif response.heartbeat.latest_sequence == PUBLISHED:
                heartbeats.append(response.heartbeat)
                break
            else:
                heartbeats.append(response.heartbeat)
        stream.cancel()
    finally:
        b.close()
    assert sent == list(range(1, PUBLISHED + 1))
    # A heartbeat after every full page, stating the last event sent, with that page's proofs.
    assert [h.latest_sequence for h in heartbeats] == [4, 8, 11]
    assert [len(h.event_proofs) for h in heartbeats] == [4, 4, 3]
    feed_reads = [(sql, p) for sql, p in statements if "FROM feed_events" in sql and "LIMIT" in sql]
    assert feed_reads, "the stream read its events"
    for _sql, parameters in feed_reads:
        limit = parameters["limit"] if isinstance(parameters, dict) else parameters[-2]
        assert limit == PAGE
    leaf_reads = [
        p for sql, p in statements if sql.startswith("SELECT log_entries.idx, log_entries.leaf ")
    ]
    assert leaf_reads and all(len(_values(p, "idx")) <= PAGE for p in leaf_reads)


def test_the_client_follows_a_paged_catch_up(
    hub: object, exchange_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mid catch-up heartbeats (latest sequence = the last event sent) are what the client
    library expects: no gap reported, every event proven."""
    monkeypatch.setattr(servicers, "MAX_EVENTS_PER_PAGE", PAGE)
    _publish(hub, exchange_dir, PUBLISHED)
    with _client(hub, exchange_dir, tmp_path, "agency-b") as b:
        received, beats = [], 0
        with b.subscribe(heartbeats=True) as feed:
            for item in feed:
                if item.kind != "HEARTBEAT":
                    received.append(item.sequence)
                else:
                    beats += 1
                    if len(received) == PUBLISHED:
                        break
        assert received == list(range(1, PUBLISHED + 1))
        assert beats >= 3
        assert b.auditor._awaiting_proof == []


def test_audit_verify_reads_the_log_a_page_at_a_time(
    hub: object,
    exchange_dir: Path,
    tmp_path: Path,
    statements: list[tuple[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audit_service, "MAX_LEAVES_PER_PAGE", PAGE)
    _publish(hub, exchange_dir, PUBLISHED)
    with _client(hub, exchange_dir, tmp_path, "agency-b") as b:
        del statements[:]
        report = b.auditor.verify()
    assert report.ok, report.failures
    assert report.size >= 2 * PUBLISHED  # an alert and a feed event each
    ranges = [
        p
        for sql, p in statements
        if sql.startswith("SELECT log_entries.idx, log_entries.leaf, log_entries.entry_type")
    ]
    assert len(ranges) >= report.size // PAGE
    for parameters in ranges:
        start, end = (
            (parameters["start"], parameters["end"])
            if isinstance(parameters, dict)
            else tuple(parameters)[:2]
        )
        assert end - start <= PAGE
