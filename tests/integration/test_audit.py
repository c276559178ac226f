"""The audit log over real mTLS gRPC, on SQLite and PostgreSQL: proofs, cosignatures, tampering.

Every proof the hub serves is checked with the pure verifiers of :mod:`exchange.audit.verify`,
exactly as a client would. The tampering tests change the database behind the hub's back and show
that the verifiers catch each change with a named reason and the first bad index.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from sqlalchemy import delete, select, update

from exchange.audit import merkle
from exchange.audit.errors import FeedGapError, LogInconsistentError
from exchange.audit.leaves import LeafContents, make_leaf
from exchange.audit.verify import (
    CheckpointVerifier,
    VerificationReport,
    check_consistency,
    check_feed_sequence,
    verify_log,
    witness_verifier,
)
from exchange.crypto.keys import SigningKey
from exchange.crypto.notes import (
    Checkpoint,
    CosignatureSigner,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    cosign,
    open_checkpoint,
)
from exchange.errors import SignatureError
from exchange.statements.agency_keys import AgencyKeys
from exchange.statements.codec import encode
from exchange.statements.sealing import summary_item
from exchange.store.schema import (
    checkpoints,
    feed_events,
    feed_heads,
    log_entries,
    log_subtrees,
    log_tree_head,
)
from exchange.v1 import alerts_pb2, audit_pb2, audit_pb2_grpc, payloads_pb2, statements_pb2
from tests.integration.agency import TestAgency, note_item
from tests.integration.release_steps import deny, send_request, signed_request

ON_REQUEST = statements_pb2.ReleasePolicy.ON_REQUEST


class AuditingAgency:
    """An agency with the audit stub and the client-side verifiers."""

    def __init__(self, exchange_dir: Path, agency_id: str, port: int) -> None:
        self.agency = TestAgency(exchange_dir, agency_id, port)
        self.audit = audit_pb2_grpc.AuditServiceStub(self.agency.channel)
        self.log_key = NoteVerifier.from_string(self.agency.profile.checkpoint_verifier_key)
        self.verifier = CheckpointVerifier(self.log_key)

    @property
    def agency_id(self) -> str:
        return self.agency.agency_id

    def publish(self, audience: Sequence[str] = ("agency-b",)) -> alerts_pb2.PublishResponse:
        items = [note_item("note-1", "container MSCU1234565", list(audience))]
        summary = payloads_pb2.Summary(kind=payloads_pb2.Summary.SHIPMENT, title="precursor")
        sealed = self.agency.seal([summary_item(summary, items), *items])
        response: alerts_pb2.PublishResponse = self.agency.alerts.Publish(
            sealed.request, timeout=10
        )
        return response

    def checkpoint(self) -> audit_pb2.CheckpointView:
        view: audit_pb2.CheckpointView = self.audit.GetCheckpoint(
            audit_pb2.GetCheckpointRequest(), timeout=10
        )
        return view

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        if first == 0 or first == second:
            return []
        proof = self.audit.GetConsistencyProof(
            audit_pb2.GetConsistencyProofRequest(from_size=first, to_size=second), timeout=10
        )
        return list(proof.hashes)

    def follow(self) -> Checkpoint:
        """Fetch the latest checkpoint and accept it with a consistency proof from the last one."""
        view = self.checkpoint()
        trusted = self.verifier.trusted
        known = trusted.checkpoint.size if trusted else 0
        low, high = sorted((known, view.size))
        return self.verifier.accept(view.note, self.consistency_proof(low, high)).checkpoint

    def all_leaves(self, size: int) -> list[audit_pb2.Leaf]:
        leaves: list[audit_pb2.Leaf] = []
        start = 0
        while start < size:
            page = self.audit.GetLeaves(
                audit_pb2.GetLeavesRequest(start=start, end=size), timeout=10
            )
            if not page.leaves:
                break
            leaves.extend(page.leaves)
            start = page.leaves[-1].index + 1
        return leaves

    def bodies(self, indices: Sequence[int]) -> dict[int, audit_pb2.EntryBody]:
        response = self.audit.GetEntryBodies(
            audit_pb2.GetEntryBodiesRequest(indices=list(indices)), timeout=10
        )
        return {body.index: body for body in response.bodies if body.present}

    def verify_whole_log(self, notes: Sequence[str]) -> VerificationReport:
        size = max(Checkpoint.from_text(note[: note.index("\n\n") + 1]).size for note in notes)
        leaves = self.all_leaves(size)
        keys = {a: [k.verify_key] for a, k in self.agency.partner_keys().items()}
        return verify_log(
            leaves,
            notes,
            log_verifier=self.log_key,
            bodies=self.bodies([leaf.index for leaf in leaves]),
            signing_keys=keys,
            reader=self.agency_id,
            consistency_proof=lambda m, n: self.consistency_proof(m, n),
        )

    def close(self) -> None:
        self.agency.close()


@pytest.fixture
def parties(hub: object, exchange_dir: Path) -> Iterator[dict[str, AuditingAgency]]:
    port = hub.port  # type: ignore[attr-defined]
    agencies = {
        a: AuditingAgency(exchange_dir, a, port) for a in ("agency-a", "agency-b", "agency-c")
    }
    yield agencies
    for agency in agencies.values():
        agency.close()


def published_log(hub: object, a: AuditingAgency, count: int) -> list[str]:
    """Publish ``count`` alerts, each followed by a checkpoint; return every checkpoint note."""
    notes = []
    for _ in range(count):
        a.publish()
        hub.checkpoint_now()  # type: ignore[attr-defined]
        notes.append(a.checkpoint().note)
    return notes


# --- proofs from the hub verify -------------------------------------------------------------------


def test_a_publish_receipt_carries_a_proof_under_a_signed_checkpoint(
    parties: dict[str, AuditingAgency],
) -> None:
    a = parties["agency-a"]
    receipt = a.publish()
    assert receipt.checkpoint and receipt.inclusion_proof.tree_size > receipt.log_index
    a.verifier.accept(receipt.checkpoint)
    leaf = a.all_leaves(receipt.inclusion_proof.tree_size)[receipt.log_index]
    assert receipt.leaf == leaf.data  # the entry comes with its proof
    body = a.bodies([receipt.log_index])[receipt.log_index].body
    contents = a.verifier.verify_statement(
        body, receipt.leaf, receipt.log_index, receipt.inclusion_proof.hashes
    )
    assert contents.entry_type == "alert_published"


@pytest.mark.parametrize("told", ["3", "", "three", "99999"])
def test_a_receipt_proves_its_checkpoint_from_the_size_the_publisher_trusts(
    parties: dict[str, AuditingAgency], told: str
) -> None:
    a = parties["agency-a"]
    for _ in range(3):
        a.publish()
    known = a.follow()
    items = [note_item("note-1", "container MSCU1234565", ["agency-b"])]
    summary = payloads_pb2.Summary(kind=payloads_pb2.Summary.SHIPMENT, title="precursor")
    sealed = a.agency.seal([summary_item(summary, items), *items])
    told = str(known.size) if told == "3" else told
    receipt = a.agency.alerts.Publish(
        sealed.request, timeout=10, metadata=[("exchange-known-log-size", told)]
    )
    if told != str(known.size):  # nothing asked, or nothing usable: no proof, nothing refused
        assert not receipt.HasField("consistency")
        return
    consistency = receipt.consistency
    assert (consistency.from_size, consistency.to_size) == (
        known.size,
        receipt.inclusion_proof.tree_size,
    )
    grown = a.verifier.accept(receipt.checkpoint, list(consistency.hashes)).checkpoint
    assert grown.size > known.size


def test_checkpoints_follow_each_other_with_consistency_proofs(
    hub: object, parties: dict[str, AuditingAgency]
) -> None:
    a = parties["agency-a"]
    sizes = []
    for _ in range(3):
        a.publish()
        hub.checkpoint_now()  # type: ignore[attr-defined]
        sizes.append(a.follow().size)
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    older = a.consistency_proof(sizes[0], sizes[2])
    a.verifier.accept(a.checkpoint().note)  # same size: no proof needed
    with pytest.raises(LogInconsistentError):
        a.verifier.accept(a.checkpoint().note, [b"\x00" * 32])
    assert older


def test_inclusion_proof_by_index_and_by_leaf_hash(
    hub: object, parties: dict[str, AuditingAgency]
) -> None:
    a = parties["agency-a"]
    receipt = a.publish()
    hub.checkpoint_now()  # type: ignore[attr-defined]
    checkpoint = a.follow()
    leaf = a.all_leaves(checkpoint.size)[receipt.log_index]
    by_index = a.audit.GetInclusionProof(
        audit_pb2.GetInclusionProofRequest(index=receipt.log_index), timeout=10
    )
    by_hash = a.audit.GetInclusionProof(
        audit_pb2.GetInclusionProofRequest(leaf_hash=merkle.leaf_hash(leaf.data)), timeout=10
    )
    assert by_index == by_hash
    a.verifier.verify_inclusion(leaf.data, by_index.index, by_index.hashes)
    with pytest.raises(grpc.RpcError) as beyond:
        a.audit.GetInclusionProof(
            audit_pb2.GetInclusionProofRequest(index=0, tree_size=checkpoint.size + 1), timeout=10
        )
    assert beyond.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as unknown:
        a.audit.GetInclusionProof(
            audit_pb2.GetInclusionProofRequest(leaf_hash=b"\x07" * 32), timeout=10
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_bodies_go_only_to_entitled_agencies(
    hub: object, parties: dict[str, AuditingAgency]
) -> None:
    a, b, c = parties["agency-a"], parties["agency-b"], parties["agency-c"]
    receipt = a.publish()
    hub.checkpoint_now()  # type: ignore[attr-defined]
    size = a.follow().size
    indices = list(range(size))
    assert receipt.log_index in a.bodies(indices)
    assert receipt.log_index in b.bodies(indices)  # the recipient
    assert c.bodies(indices) == {}  # anyone may read leaves and proofs, not bodies
    assert len(c.all_leaves(size)) == size
    feed_events = set(b.bodies(indices)) - set(a.bodies(indices))
    assert feed_events, "agency-b's feed event is its own"


def test_the_whole_log_verifies(hub: object, parties: dict[str, AuditingAgency]) -> None:
    a, b = parties["agency-a"], parties["agency-b"]
    notes = published_log(hub, a, 4)
    report = b.verify_whole_log(notes)
    assert report.ok, report.failures
    assert report.size == Checkpoint.from_text(notes[-1][: notes[-1].index("\n\n") + 1]).size
    assert report.signatures_verified == 4  # the four manifests agency-b may see
    assert report.references_verified == 8  # and their feed events
    report.raise_for_failure()


def test_heartbeats_carry_the_latest_feed_leaf_and_checkpoint(
    hub: object, parties: dict[str, AuditingAgency]
) -> None:
    a, b = parties["agency-a"], parties["agency-b"]
    a.publish()
    hub.checkpoint_now()  # type: ignore[attr-defined]
    stream = b.agency.alerts.Subscribe(alerts_pb2.SubscribeRequest(after=0), timeout=10)
    event = heartbeat = None
    for message in stream:
        if message.HasField("event"):
            event = message.event
        else:
            heartbeat = message.heartbeat
            break
    stream.cancel()
    assert event is not None and heartbeat is not None
    assert heartbeat.latest_sequence == event.sequence
    assert heartbeat.latest_log_index == event.log_index
    checkpoint = b.verifier.accept(heartbeat.checkpoint).checkpoint
    assert checkpoint.size > event.log_index
    proof = b.audit.GetInclusionProof(
        audit_pb2.GetInclusionProofRequest(index=event.log_index, tree_size=checkpoint.size),
        timeout=10,
    )
    leaf = b.all_leaves(checkpoint.size)[event.log_index]
    b.verifier.verify_inclusion(leaf.data, event.log_index, proof.hashes)



def heartbeats_with_events(
    stream: Iterator[alerts_pb2.SubscribeResponse], events_wanted: int
) -> list[tuple[list[alerts_pb2.FeedEvent], alerts_pb2.Heartbeat]]:
    """Read the stream until ``events_wanted`` events have come; each heartbeat with the events
    sent just before it."""
    batches, events, seen = [], [], 0
    for message in stream:
        if message.HasField("event"):
            events.append(message.event)
            seen += 1
        else:
            batches.append((events, message.heartbeat))
            events = []
            if seen >= events_wanted:
                break
    return batches


def test_heartbeats_prove_the_events_before_them_and_extend_the_previous_checkpoint(
    parties: dict[str, AuditingAgency],
) -> None:
    a, b = parties["agency-a"], parties["agency-b"]
    a.publish()
    stream = b.agency.alerts.Subscribe(alerts_pb2.SubscribeRequest(after=0), timeout=20)
    batches = heartbeats_with_events(stream, 1)
    a.publish()
    a.publish()
    batches += heartbeats_with_events(stream, 2)
    stream.cancel()
    previous_size = 0
    proven = []
    for events, heartbeat in batches:
        consistency = heartbeat.consistency
        checkpoint = b.verifier.accept(heartbeat.checkpoint, list(consistency.hashes)).checkpoint
        if previous_size == checkpoint.size:  # a quiet heartbeat under the same checkpoint
            assert not heartbeat.HasField("consistency")
        elif previous_size:  # the proof runs from the stream's previous checkpoint to this one
            assert (consistency.from_size, consistency.to_size) == (previous_size, checkpoint.size)
        previous_size = checkpoint.size
        by_index = {proof.inclusion.index: proof for proof in heartbeat.event_proofs}
        assert set(by_index) == {event.log_index for event in events}
        for event in events:
            proof = by_index[event.log_index]
            assert proof.inclusion.tree_size == checkpoint.size
            contents = b.verifier.verify_inclusion(
                proof.leaf, event.log_index, proof.inclusion.hashes
            )
            logged = alerts_pb2.FeedEvent()
            logged.CopyFrom(event)
            logged.ClearField("log_index")
            assert contents.body_sha256 == hashlib.sha256(encode(logged)).digest()
            proven.append(event.sequence)
    assert proven == [1, 2, 3]


# --- cosignatures ---------------------------------------------------------------------------------


def own_witness(agency: AuditingAgency) -> tuple[CosignatureSigner, AgencyKeys]:
    profile = agency.agency.profile
    keys = agency.agency.partner_keys()[agency.agency_id]
    return CosignatureSigner(agency.agency_id, profile.witness_key.native), keys


def test_a_cosignature_verified_with_the_certified_witness_key_is_served_with_the_checkpoint(
    parties: dict[str, AuditingAgency],
) -> None:
    a, b = parties["agency-a"], parties["agency-b"]
    a.publish()
    view = b.checkpoint()
    text_body = view.note[: view.note.index("\n\n") + 1]
    signer, keys = own_witness(b)
    line = cosign(text_body, signer, int(time.time()))
    b.audit.SubmitCosignature(
        audit_pb2.SubmitCosignatureRequest(checkpoint=text_body, cosignature=line), timeout=10
    )
    served = a.checkpoint().note
    assert line in served
    opened = open_checkpoint(served, a.log_key, cosigners=[witness_verifier(keys)])
    assert set(opened.cosignatures) == {"agency-b"}


@pytest.mark.parametrize("forgery", ["another agency's key", "other text", "unknown checkpoint"])
def test_forged_cosignatures_are_refused(parties: dict[str, AuditingAgency], forgery: str) -> None:
    a, b, c = parties["agency-a"], parties["agency-b"], parties["agency-c"]
    a.publish()
    view = b.checkpoint()
    body = view.note[: view.note.index("\n\n") + 1]
    submitted = body
    if forgery == "another agency's key":
        signer = CosignatureSigner("agency-b", c.agency.profile.witness_key.native)
        line = cosign(body, signer, int(time.time()))
    else:
        signer, _ = own_witness(b)
        other = Checkpoint.from_text(body)
        forged = Checkpoint(other.origin, other.size + 5, b"\x01" * 32).to_text()
        line = cosign(forged if forgery == "other text" else body, signer, int(time.time()))
        if forgery == "unknown checkpoint":
            submitted = forged
            line = cosign(forged, signer, int(time.time()))
    with pytest.raises(grpc.RpcError) as refused:
        b.audit.SubmitCosignature(
            audit_pb2.SubmitCosignatureRequest(checkpoint=submitted, cosignature=line), timeout=10
        )
    expected = (
        grpc.StatusCode.NOT_FOUND
        if forgery == "unknown checkpoint"
        else grpc.StatusCode.INVALID_ARGUMENT
    )
    assert refused.value.code() == expected
    assert line not in a.checkpoint().note


# --- tampering behind the hub's back --------------------------------------------------------------


def tamper(hub: object, *statements: object) -> None:
    with hub.db.write() as connection:  # type: ignore[attr-defined]
        for statement in statements:
            connection.execute(statement)  # type: ignore[call-overload]


def stored_leaf(hub: object, index: int) -> bytes:
    with hub.db.read() as connection:  # type: ignore[attr-defined]
        return bytes(
            connection.execute(
                select(log_entries.c.leaf).where(log_entries.c.idx == index)
            ).scalar_one()
        )


def test_a_changed_leaf_is_named(hub: object, parties: dict[str, AuditingAgency]) -> None:
    a, b = parties["agency-a"], parties["agency-b"]
    notes = published_log(hub, a, 5)
    original = LeafContents.decode(stored_leaf(hub, 4))
    forged = make_leaf(original.entry_type, original.logged_at, b"another body", b"s" * 16, [])
    tamper(
        hub,
        update(log_entries)
        .where(log_entries.c.idx == 4)
        .values(leaf=forged, leaf_hash=merkle.leaf_hash(forged)),
    )
    report = b.verify_whole_log(notes)
    assert report.first_failure is not None
    assert (report.first_failure.reason, report.first_failure.index) == ("ROOT_MISMATCH", 4)


def test_a_deleted_leaf_is_named(hub: object, parties: dict[str, AuditingAgency]) -> None:
    a, b = parties["agency-a"], parties["agency-b"]
    notes = published_log(hub, a, 4)
    tamper(hub, delete(log_entries).where(log_entries.c.idx == 5))
    report = b.verify_whole_log(notes)
    assert report.first_failure is not None
    assert (report.first_failure.reason, report.first_failure.index) == ("LEAF_MISSING", 5)


def test_a_deleted_and_renumbered_leaf_is_named(
    hub: object, parties: dict[str, AuditingAgency]
) -> None:
    a, b = parties["agency-a"], parties["agency-b"]
    notes = published_log(hub, a, 4)
    with hub.db.read() as connection:  # type: ignore[attr-defined]
        size = connection.execute(select(log_tree_head.c.hashed_size)).scalar_one()
    statements: list[object] = [delete(log_entries).where(log_entries.c.idx == 2)]
    for index in range(3, size):
        statements.append(
            update(log_entries).where(log_entries.c.idx == index).values(idx=index - 1)
        )
    tamper(hub, *statements)
    report = b.verify_whole_log(notes[:-1])  # the hub can serve only size - 1 leaves now
    assert report.first_failure is not None
    assert report.first_failure.index == 2


def test_two_swapped_leaves_are_named(hub: object, parties: dict[str, AuditingAgency]) -> None:
    a, b = parties["agency-a"], parties["agency-b"]
    notes = published_log(hub, a, 4)
    first, second = stored_leaf(hub, 3), stored_leaf(hub, 7)
    tamper(
        hub,
        update(log_entries).where(log_entries.c.idx == 3).values(leaf=second),
        update(log_entries).where(log_entries.c.idx == 7).values(leaf=first),
    )
    report = b.verify_whole_log(notes)
    assert report.first_failure is not None
    assert (report.first_failure.reason, report.first_failure.index) == ("ROOT_MISMATCH", 3)


def test_a_truncated_log_is_named(hub: object, parties: dict[str, AuditingAgency]) -> None:
    a, b = parties["agency-a"], parties["agency-b"]
    notes = published_log(hub, a, 4)
    tamper(hub, delete(log_entries).where(log_entries.c.idx >= 6))
    report = b.verify_whole_log(notes)
    assert report.first_failure is not None
    assert (report.first_failure.reason, report.first_failure.index) == ("LOG_TRUNCATED", 6)


def test_a_checkpoint_with_a_forged_signature_is_refused(
    hub: object, parties: dict[str, AuditingAgency]
) -> None:
    a, b = parties["agency-a"], parties["agency-b"]
    published_log(hub, a, 2)
    latest = b.checkpoint()
    body = latest.note[: latest.note.index("\n\n") + 1]
    rogue = NoteSigner(b.log_key.name, SigningKey.generate().native)
    genuine = NoteSignature.from_line(latest.note[latest.note.index("\n\n") + 2 :].split("\n")[0])
    # The genuine name and key id, another key's signature: only the signature can tell.
    rogue_signature = NoteSignature.from_line(rogue.signature_line(body)).signature
    forged_line = NoteSignature(genuine.name, genuine.key_id, rogue_signature).to_line()
    forged_note = body + "\n" + forged_line + "\n"
    tamper(
        hub, update(checkpoints).where(checkpoints.c.size == latest.size).values(note=forged_note)
    )
    served = b.checkpoint().note
    assert served == forged_note
    with pytest.raises(SignatureError):
        b.verifier.accept(served)
    report = b.verify_whole_log([served])
    assert report.first_failure is not None
    assert report.first_failure.reason == "SIGNATURE_INVALID"
    assert report.first_failure.checkpoint_size == latest.size


def test_a_fork_is_caught_by_comparing_checkpoints(
    hub: object, parties: dict[str, AuditingAgency]
) -> None:
    """The hub shows agency-a one history, then rewrites it and shows agency-b another."""
    a, b = parties["agency-a"], parties["agency-b"]
    published_log(hub, a, 3)
    seen_by_a = a.follow()
    # Rewrite leaf 1, rebuild the tree from scratch and sign the new history with the hub's key.
    original = LeafContents.decode(stored_leaf(hub, 1))
    forged = make_leaf(original.entry_type, original.logged_at, b"rewritten", b"s" * 16, [])
    tamper(
        hub,
        update(log_entries)
        .where(log_entries.c.idx == 1)
        .values(leaf=forged, leaf_hash=merkle.leaf_hash(forged)),
        delete(log_subtrees),
        update(log_tree_head).values(hashed_size=0),
        delete(checkpoints),
    )
    a.publish()
    hub.checkpoint_now()  # type: ignore[attr-defined]
    seen_by_b = b.follow()  # agency-b trusts the forked history on first use
    assert seen_by_b.size > seen_by_a.size
    proof = b.consistency_proof(seen_by_a.size, seen_by_b.size)
    with pytest.raises(LogInconsistentError) as fork:
        check_consistency(seen_by_b, seen_by_a, proof)
    assert (fork.value.known_size, fork.value.new_size) == (seen_by_b.size, seen_by_a.size)
    assert fork.value.new_root == seen_by_a.root_hash
    with pytest.raises(LogInconsistentError):
        a.follow()  # and agency-a, following the hub, refuses the rewritten log


def test_release_statements_verify_under_their_signers_keys(
    hub: object, parties: dict[str, AuditingAgency]
) -> None:
    a, b = parties["agency-a"], parties["agency-b"]
    items = [
        note_item("bank", "IBAN DE89 3704 0044 0532 0130 00", ["agency-b"], release=ON_REQUEST)
    ]
    summary = payloads_pb2.Summary(kind=payloads_pb2.Summary.SHIPMENT, title="Bank records")
    sealed = a.agency.seal([summary_item(summary, items), *items])
    a.agency.alerts.Publish(sealed.request, timeout=10)
    request = signed_request(b.agency, sealed.manifest, "bank")
    send_request(b.agency, request)
    deny(a.agency, request)
    note = hub.checkpoint_now().note  # type: ignore[attr-defined]
    for reader in (a, b):
        report = reader.verify_whole_log([note])
        assert report.ok, report.failures
        assert report.signatures_verified == 3  # the manifest, the request, the decision


def test_a_fresh_hub_signs_the_empty_log_and_bounds_every_request(
    hub: object, parties: dict[str, AuditingAgency]
) -> None:
    a = parties["agency-a"]
    empty = a.follow()
    assert (empty.size, empty.root_hash) == (0, merkle.EMPTY_ROOT)
    a.publish()
    hub.checkpoint_now()  # type: ignore[attr-defined]
    size = a.follow().size  # from the empty tree, no proof is needed
    page = a.audit.GetLeaves(audit_pb2.GetLeavesRequest(start=0, end=size + 100), timeout=10)
    assert [leaf.index for leaf in page.leaves] == list(range(size))  # only under the checkpoint
    for bad in (
        lambda: a.audit.GetConsistencyProof(
            audit_pb2.GetConsistencyProofRequest(from_size=0, to_size=size), timeout=10
        ),
        lambda: a.audit.GetConsistencyProof(
            audit_pb2.GetConsistencyProofRequest(from_size=size + 1), timeout=10
        ),
        lambda: a.audit.GetEntryBodies(
            audit_pb2.GetEntryBodiesRequest(indices=list(range(1001))), timeout=10
        ),
        lambda: a.audit.GetInclusionProof(audit_pb2.GetInclusionProofRequest(), timeout=10),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            bad()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_an_event_withheld_from_agency_b_shows_in_the_log(
    hub: object, parties: dict[str, AuditingAgency]
) -> None:
    """The hub drops agency-b's second event from its feed and lies in the heartbeat too; the
    log still holds the event's leaf, and agency-b's replay of the log finds it."""
    a, b = parties["agency-a"], parties["agency-b"]
    notes = published_log(hub, a, 3)
    tamper(
        hub,
        delete(feed_events).where(
            feed_events.c.agency_id == "agency-b", feed_events.c.sequence > 1
        ),
        update(feed_heads).where(feed_heads.c.agency_id == "agency-b").values(last_sequence=1),
    )
    delivered = b.agency.alerts.ListEvents(alerts_pb2.ListEventsRequest(), timeout=10)
    assert [e.sequence for e in delivered.events] == [1] and delivered.latest_sequence == 1
    check_feed_sequence(1, delivered.latest_sequence)  # the hub's own word is consistent
    report = b.verify_whole_log(notes)
    assert report.ok and report.feed_sequence == 3
    with pytest.raises(FeedGapError) as withheld:
        check_feed_sequence(1, report.feed_sequence)
    assert withheld.value.missing_sequence == 2


def test_a_heartbeat_after_an_event_no_publish_checkpointed_comes_with_a_covering_checkpoint(
    parties: dict[str, AuditingAgency],
) -> None:
    a, b = parties["agency-a"], parties["agency-b"]
    items = [
        note_item("bank", "IBAN DE89 3704 0044 0532 0130 00", ["agency-b"], release=ON_REQUEST)
    ]
    summary = payloads_pb2.Summary(kind=payloads_pb2.Summary.SHIPMENT, title="Bank records")
    sealed = a.agency.seal([summary_item(summary, items), *items])
    a.agency.alerts.Publish(sealed.request, timeout=10)
    # The request's leaf and agency-a's feed event are appended without any checkpoint.
    send_request(b.agency, signed_request(b.agency, sealed.manifest, "bank"))
    stream = a.agency.alerts.Subscribe(alerts_pb2.SubscribeRequest(after=0), timeout=10)
    events = []
    for message in stream:
        if message.HasField("event"):
            events.append(message.event)
        else:
            heartbeat = message.heartbeat
            break
    stream.cancel()
    assert events and heartbeat.latest_log_index == events[-1].log_index
    checkpoint = a.verifier.accept(heartbeat.checkpoint).checkpoint
    assert checkpoint.size > heartbeat.latest_log_index
