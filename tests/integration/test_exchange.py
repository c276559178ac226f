"""The exchange end to end over real mTLS gRPC, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import func, select, text

from exchange.statements.sealing import VISIBLE, WITHHELD, summary_item
from exchange.store.schema import metadata
from exchange.v1 import alerts_pb2, payloads_pb2, statements_pb2
from tests.integration.agency import TestAgency, note_item

Policy = statements_pb2.ReleasePolicy
SECRET = "container MSCU1234565 carries 4-piperidone under a cleaning-agent label"


@pytest.fixture
def agencies(hub: object, exchange_dir: Path) -> Iterator[dict[str, TestAgency]]:
    port = hub.port  # type: ignore[attr-defined]
    parties = {a: TestAgency(exchange_dir, a, port) for a in ("agency-a", "agency-b", "agency-c")}
    yield parties
    for party in parties.values():
        party.close()


def shipment_alert(a: TestAgency, **kwargs: object):  # type: ignore[no-untyped-def]
    items = [
        note_item("note-1", SECRET, ["agency-b"]),
        note_item("held", "informant details", ["agency-b"], release=Policy.ON_REQUEST),
    ]
    summary = payloads_pb2.Summary(kind=payloads_pb2.Summary.SHIPMENT, title="Mislabelled 4-piperidone")
    return a.seal([summary_item(summary, items), *items], **kwargs)  # type: ignore[arg-type]


def row_counts(hub: object) -> dict[str, int]:
    with hub.db.read() as connection:  # type: ignore[attr-defined]
        return {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
        }


def test_recipient_verifies_and_decrypts_and_outsider_sees_nothing(
    hub: object, agencies: dict[str, TestAgency]
) -> None:
    a, b, c = agencies["agency-a"], agencies["agency-b"], agencies["agency-c"]
    sealed = shipment_alert(a)
    receipt = a.alerts.Publish(sealed.request, timeout=10)
    assert receipt.alert_id == sealed.manifest.alert_id
    assert receipt.version == 1
    assert list(receipt.notified) == ["agency-b"]

    opened = b.open(sealed.manifest.alert_id, "agency-a")
    assert opened.summary is not None and opened.summary.title == "Mislabelled 4-piperidone"
    statuses = {item.item_id: item.status for item in opened.items}
    assert statuses == {"note-1": VISIBLE, "held": WITHHELD}
    note = next(i for i in opened.items if i.item_id == "note-1")
    assert note.payload is not None and note.payload.note.text == SECRET

    with pytest.raises(grpc.RpcError) as refused:
        c.alerts.GetAlert(alerts_pb2.GetAlertRequest(alert_id=sealed.manifest.alert_id), timeout=10)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert list(c.alerts.ListAlerts(alerts_pb2.ListAlertsRequest(), timeout=10).alerts) == []
    assert list(c.alerts.ListEvents(alerts_pb2.ListEventsRequest(), timeout=10).events) == []
    (summary_row,) = b.alerts.ListAlerts(alerts_pb2.ListAlertsRequest(), timeout=10).alerts
    assert (summary_row.items_total, summary_row.items_visible, summary_row.items_granted) == (2, 2, 1)
    b_events = b.alerts.ListEvents(alerts_pb2.ListEventsRequest(), timeout=10)
    assert [(e.sequence, e.alert_id) for e in b_events.events] == [(1, sealed.manifest.alert_id)]


def test_no_plaintext_reaches_any_column(hub: object, agencies: dict[str, TestAgency]) -> None:
    a = agencies["agency-a"]
    a.alerts.Publish(shipment_alert(a).request, timeout=10)
    needles = [SECRET.encode(), b"informant details", b"Mislabelled 4-piperidone", b"MSCU1234565"]
    with hub.db.read() as connection:  # type: ignore[attr-defined]
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for value in row:
                    blob = value if isinstance(value, bytes) else str(value).encode()
                    for needle in needles:
                        assert needle not in blob, f"plaintext in {table.name}"


def test_retry_returns_first_receipt_and_conflicting_bytes_are_refused(
    hub: object, agencies: dict[str, TestAgency]
) -> None:
    a = agencies["agency-a"]
    sealed = shipment_alert(a)
    first = a.alerts.Publish(sealed.request, timeout=10)
    counts = row_counts(hub)
    again = a.alerts.Publish(sealed.request, timeout=10)
    assert again == first
    assert row_counts(hub) == counts

    other = shipment_alert(a, alert_id=sealed.manifest.alert_id)
    with pytest.raises(grpc.RpcError) as refused:
        a.alerts.Publish(other.request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert row_counts(hub) == counts


def test_feed_sequences_are_dense_under_concurrent_publishers(
    hub: object, agencies: dict[str, TestAgency]
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    requests = [shipment_alert(a).request for _ in range(16)]
    errors: list[BaseException] = []

    def publish(chunk: list[alerts_pb2.PublishRequest]) -> None:
        try:
            for request in chunk:
                a.alerts.Publish(request, timeout=30)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=publish, args=(requests[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    events = b.alerts.ListEvents(alerts_pb2.ListEventsRequest(limit=100), timeout=10)
    assert [e.sequence for e in events.events] == list(range(1, 17))
    assert events.latest_sequence == 16
    with hub.db.read() as connection:  # type: ignore[attr-defined]
        indexes = [r[0] for r in connection.execute(text("SELECT idx FROM log_entries ORDER BY idx"))]
    assert indexes == list(range(len(indexes)))


def test_subscribe_catches_up_then_streams_live_with_heartbeats(
    hub: object, agencies: dict[str, TestAgency]
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    first = shipment_alert(a)
    a.alerts.Publish(first.request, timeout=10)
    stream = b.alerts.Subscribe(alerts_pb2.SubscribeRequest(after=0), timeout=30)
    received: list[alerts_pb2.SubscribeResponse] = []
    for message in stream:
        received.append(message)
        if message.WhichOneof("message") == "heartbeat":
            break
    assert [m.event.alert_id for m in received if m.HasField("event")] == [first.manifest.alert_id]
    assert received[-1].heartbeat.latest_sequence == 1

    second = shipment_alert(a)
    a.alerts.Publish(second.request, timeout=10)
    for message in stream:
        if message.HasField("event"):
            assert message.event.sequence == 2
            assert message.event.alert_id == second.manifest.alert_id
            break
    stream.cancel()


def test_health_service_answers(hub: object, agencies: dict[str, TestAgency]) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(agencies["agency-a"].channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service="exchange.v1.AlertService"))
    assert response.status == health_pb2.HealthCheckResponse.SERVING




def test_first_delivery_of_each_grant_is_logged_once(
    hub: object, agencies: dict[str, TestAgency]
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    sealed = shipment_alert(a)
    a.alerts.Publish(sealed.request, timeout=10)

    def delivery_entries() -> list[bytes]:
        with hub.db.read() as connection:  # type: ignore[attr-defined]
            return [
                bytes(r[0])
                for r in connection.execute(
                    text("SELECT body FROM log_entries WHERE entry_type = 'grant_delivered'")
                )
            ]

    a.open(sealed.manifest.alert_id, "agency-a")  # the originator's own grants are no delivery
    assert delivery_entries() == []
    b.open(sealed.manifest.alert_id, "agency-a")
    b.open(sealed.manifest.alert_id, "agency-a")
    delivered = delivery_entries()
    granted_to_b = sorted(
        g.SerializeToString(deterministic=True) for g in sealed.request.grants if g.recipient == "agency-b"
    )
    assert sorted(delivered) == granted_to_b  # the summary and the released note, once each
