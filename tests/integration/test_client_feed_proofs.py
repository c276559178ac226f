"""The client library proves feed events with the proofs their heartbeat carries and a receipt's
checkpoint with the consistency proof the hub sends along, and refuses either when it does not
hold (the responses are a real hub's, then altered)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exchange.errors import VerificationError
from exchange.statements.codec import encode
from exchange.statements.sealing import summary_item
from exchange.v1 import alerts_pb2, payloads_pb2
from exchange_client import Client, Draft, Profile
from exchange_client._internal.audit import AuditedStream, logged_manifest
from tests.integration.agency import TestAgency, note_item

DRAFT = {
    "kind": "SHIPMENT",
    "title": "Ephedrine declared as starch",
    "items": [
        {
            "id": "note",
            "policy": {"audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "AMBER"},
            "note": {"text": "Air waybill 020-12345675", "language": "en"},
        }
    ],
}


@pytest.fixture
def clients(hub: object, exchange_dir: Path, tmp_path: Path) -> Iterator[Callable[[str], Client]]:
    opened: list[Client] = []

    def client_for(agency: str) -> Client:
        profile = dataclasses.replace(
            Profile.load(exchange_dir / "agencies" / agency), state_dir=tmp_path / agency
        )
        client = Client(profile, hub=f"127.0.0.1:{hub.port}")  # type: ignore[attr-defined]
        opened.append(client)
        return client

    yield client_for
    for client in opened:
        client.close()


def first_heartbeat_after_events(client: Client, events: int) -> list[alerts_pb2.SubscribeResponse]:
    """The raw responses of a fresh stream up to the heartbeat after ``events`` events."""
    stream = client._transport.alerts.Subscribe(alerts_pb2.SubscribeRequest(after=0), timeout=20)
    responses, seen = [], 0
    for response in stream:
        responses.append(response)
        seen += response.HasField("event")
        if response.HasField("heartbeat") and seen >= events:
            break
    stream.cancel()
    return responses


def test_the_subscriber_proves_events_with_the_heartbeats_proofs(
    clients: Callable[[str], Client],
) -> None:
    a, b = clients("agency-a"), clients("agency-b")
    published = [a.publish(Draft.from_dict(DRAFT)).alert_id for _ in range(3)]
    received = []
    with b.subscribe(heartbeats=True) as feed:
        for event in feed:
            if event.kind != "HEARTBEAT":
                received.append(event.alert_id)
            elif len(received) == 3:
                break
    assert received == published
    assert b.auditor._awaiting_proof == []  # every event proven at the heartbeat
    trusted = b.auditor.trusted
    assert trusted is not None and trusted.checkpoint.size >= 3


@pytest.mark.parametrize(
    ("alteration", "reason"),
    [
        ("leaf", "INCLUSION_PROOF_INVALID"),
        ("hashes", "INCLUSION_PROOF_INVALID"),
        ("consistency", "LOG_INCONSISTENT"),
    ],
)
def test_a_heartbeat_whose_proofs_do_not_hold_is_refused(
    clients: Callable[[str], Client], alteration: str, reason: str
) -> None:
    a, b = clients("agency-a"), clients("agency-b")
    a.publish(Draft.from_dict(DRAFT))
    b.auditor.follow()  # b trusts a checkpoint that the next heartbeat must extend
    a.publish(Draft.from_dict(DRAFT))
    responses = first_heartbeat_after_events(b, 2)
    heartbeat = responses[-1].heartbeat
    proof = heartbeat.event_proofs[-1]
    if alteration == "leaf":
        proof.leaf = bytes(proof.leaf[:-1]) + bytes([proof.leaf[-1] ^ 1])
    elif alteration == "hashes":
        proof.inclusion.hashes[0] = bytes(32)
    else:
        heartbeat.consistency.from_size = b.auditor.trusted.checkpoint.size  # type: ignore[union-attr]
        heartbeat.consistency.to_size = heartbeat.event_proofs[-1].inclusion.tree_size
        heartbeat.consistency.hashes[:] = [bytes(32)] * max(1, len(heartbeat.consistency.hashes))
    stream = AuditedStream(iter(responses), b.auditor)  # type: ignore[arg-type]
    with pytest.raises(VerificationError) as refused:
        for _ in stream:
            pass
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    ("alteration", "reason"),
    [("", ""), ("consistency", "LOG_INCONSISTENT"), ("leaf", "INCLUSION_PROOF_INVALID")],
)
def test_a_receipt_is_proven_with_the_proofs_and_the_leaf_it_carries(
    hub: object,
    exchange_dir: Path,
    clients: Callable[[str], Client],
    alteration: str,
    reason: str,
) -> None:
    a = clients("agency-a")
    a.publish(Draft.from_dict(DRAFT))
    trusted = a.auditor.trusted
    assert trusted is not None
    raw = TestAgency(exchange_dir, "agency-a", hub.port)  # type: ignore[attr-defined]
    items = [note_item("note-1", "container MSCU1234565", ["agency-b"])]
    summary = payloads_pb2.Summary(kind=payloads_pb2.Summary.SHIPMENT, title="precursor")
    sealed = raw.seal([summary_item(summary, items), *items])
    receipt = raw.alerts.Publish(
        sealed.request,
        timeout=10,
        metadata=[("exchange-known-log-size", str(trusted.checkpoint.size))],
    )
    raw.close()
    assert receipt.consistency.from_size == trusted.checkpoint.size and receipt.leaf
    if alteration == "consistency":
        receipt.consistency.hashes[:] = [bytes(32)] * len(receipt.consistency.hashes)
    elif alteration == "leaf":
        receipt.leaf = bytes(receipt.leaf[:-1]) + bytes([receipt.leaf[-1] ^ 1])

    def prove() -> None:
        a.auditor.prove_statement(
            logged_manifest(encode(sealed.request)),
            receipt.log_index,
            proof=receipt.inclusion_proof,
            note=receipt.checkpoint,
            consistency=receipt.consistency,
            leaf=bytes(receipt.leaf),
        )

    if not alteration:
        prove()
        assert a.auditor.trusted.checkpoint.size == receipt.inclusion_proof.tree_size  # type: ignore[union-attr]
        return
    with pytest.raises(VerificationError) as refused:  # not fetched again: the hub's word is used
        prove()
    assert refused.value.reason == reason
