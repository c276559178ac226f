"""The client's auditor against a scripted log: trust on first use, consistency, inclusion,
cosignatures, comparison and replay.

The hub is a small in-memory AuditService on a loopback port 0 (no TLS: the transport is not
what is under test) whose log the tests rewrite at will; every proof it serves comes from the
pure Merkle functions, so a rewritten log serves proofs of the rewritten tree, as a lying hub
would.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from exchange.audit import leaves, merkle
from exchange.audit.errors import LogInconsistentError
from exchange.crypto.keys import SigningKey
from exchange.crypto.notes import (
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    NoteSigner,
    cosign,
    sign_note,
    verify_cosignature,
)
from exchange.errors import ConfigurationError, ExchangeError, SignatureError, VerificationError
from exchange.v1 import alerts_pb2, alerts_pb2_grpc, audit_pb2, audit_pb2_grpc
from exchange_client._internal.audit import Auditor, CheckpointStore, checkpoint_text
from exchange_client._internal.audit import auditor as auditor_module
from exchange_client._internal.calls import done
from exchange_client._internal.state import journal_of
from exchange_client._internal.transport import Transport

ORIGIN = "hub.example/log"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HUB_KEY = NoteSigner(ORIGIN, SigningKey.generate().native)
WITNESS_KEYS = {agency: SigningKey.generate() for agency in ("agency-a", "agency-b")}


def entry(number: int) -> tuple[bytes, bytes]:
    """The body and canonical leaf of the ``number``-th statement of the scripted log."""
    body = f"statement {number}".encode()
    return body, leaves.make_leaf(leaves.RETRACTION, NOW, body, b"s" * 16, [])


class ScriptedLog(audit_pb2_grpc.AuditServiceServicer, alerts_pb2_grpc.AlertServiceServicer):
    """A log the test appends to, rewrites and signs as it likes."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.leaves: list[bytes] = []
        self.note = ""
        self.cosignature_lines: list[str] = []
        self.page_limit: int | None = None  # the most leaves one GetLeaves answers
        self.leaf_requests: list[tuple[int, int]] = []
        self.bodies_refused = False

    def append(self, count: int) -> None:
        for _ in range(count):
            body, leaf = entry(len(self.leaves))
            self.bodies.append(body)
            self.leaves.append(leaf)

    def append_event(self, event: alerts_pb2.FeedEvent) -> alerts_pb2.FeedEvent:
        """Log a feed event as the hub does (without its log index); return it as delivered."""
        body = event.SerializeToString(deterministic=True)
        self.bodies.append(body)
        self.leaves.append(leaves.make_leaf(leaves.FEED_EVENT, NOW, body, b"s" * 16, []))
        delivered = alerts_pb2.FeedEvent()
        delivered.CopyFrom(event)
        delivered.log_index = len(self.leaves) - 1
        return delivered

    def hashes(self) -> list[bytes]:
        return [merkle.leaf_hash(leaf) for leaf in self.leaves]

    def sign(self, signer: NoteSigner = HUB_KEY) -> str:
        root = merkle.root(self.hashes())
        self.note = sign_note(Checkpoint(ORIGIN, len(self.leaves), root).to_text(), [signer])
        self.cosignature_lines = []
        return self.note

    def served_note(self) -> str:
        return self.note + "".join(line + "\n" for line in self.cosignature_lines)

    def GetCheckpoint(self, request: Any, context: Any) -> audit_pb2.CheckpointView:
        return audit_pb2.CheckpointView(note=self.served_note())

    def GetConsistencyProof(self, request: Any, context: Any) -> audit_pb2.ConsistencyProof:
        if request.to_size > len(self.leaves):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "beyond the latest checkpoint")
        hashes = merkle.consistency_proof(request.from_size, request.to_size, self.hashes())
        return audit_pb2.ConsistencyProof(
            from_size=request.from_size, to_size=request.to_size, hashes=hashes
        )

    def GetInclusionProof(self, request: Any, context: Any) -> audit_pb2.InclusionProof:
        hashes = merkle.inclusion_proof(request.index, request.tree_size, self.hashes())
        return audit_pb2.InclusionProof(
            index=request.index, tree_size=request.tree_size, hashes=hashes
        )

    def GetLeaves(self, request: Any, context: Any) -> audit_pb2.GetLeavesResponse:
        self.leaf_requests.append((request.start, request.end))
        end = min(request.end, len(self.leaves))
        if self.page_limit is not None:
            end = min(end, request.start + self.page_limit)
        return audit_pb2.GetLeavesResponse(
            leaves=[
                audit_pb2.Leaf(index=i, data=self.leaves[i], entry_type=leaves.RETRACTION)
                for i in range(request.start, end)
            ]
        )

    def GetEntryBodies(self, request: Any, context: Any) -> audit_pb2.GetEntryBodiesResponse:
        if self.bodies_refused:
            context.abort(grpc.StatusCode.UNAVAILABLE, "bodies are not served today")
        return audit_pb2.GetEntryBodiesResponse(
            bodies=[audit_pb2.EntryBody(index=i, present=False) for i in request.indices]
        )

    def SubmitCosignature(self, request: Any, context: Any) -> audit_pb2.SubmitCosignatureResponse:
        self.cosignature_lines.append(request.cosignature)
        return audit_pb2.SubmitCosignatureResponse()

    def ListEvents(self, request: Any, context: Any) -> alerts_pb2.ListEventsResponse:
        return alerts_pb2.ListEventsResponse()


@pytest.fixture
def log() -> ScriptedLog:
    scripted = ScriptedLog()
    scripted.append(5)
    scripted.sign()
    return scripted


@pytest.fixture
def channel(log: ScriptedLog) -> Iterator[grpc.Channel]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    audit_pb2_grpc.add_AuditServiceServicer_to_server(log, server)
    alerts_pb2_grpc.add_AlertServiceServicer_to_server(log, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as connection:
        yield connection
    server.stop(grace=None)


def witness_keys(agency: str) -> SimpleNamespace:
    """Stands in for an agency's verified key statement: its id and certified witness key."""
    return SimpleNamespace(agency_id=agency, witness_key=WITNESS_KEYS[agency].public_key)


def make_auditor(
    channel: grpc.Channel,
    state: Path,
    *,
    agency: str = "agency-a",
    clock: list[datetime] | None = None,
    **options: Any,
) -> Auditor:
    moments = clock if clock is not None else [NOW]
    return Auditor(
        Transport(channel, target="scripted hub", timeout=5),
        agency_id=agency,
        state_dir=state,
        checkpoint_verifier_key=HUB_KEY.verifier().to_string(),
        witness_key=WITNESS_KEYS[agency],
        clock=lambda: moments[-1],
        partner_keys=lambda: done({a: witness_keys(a) for a in WITNESS_KEYS}),  # type: ignore[misc,arg-type]
        signing_keys=lambda: done({}),
        **options,
    )


def size_of(note: str) -> int:
    return Checkpoint.from_text(checkpoint_text(note)).size


# --- checkpoints ---------------------------------------------------------------------------------


def test_first_contact_trusts_a_signed_checkpoint_saves_and_cosigns_it(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path
) -> None:
    auditor = make_auditor(channel, tmp_path)
    signed = auditor.follow()
    assert signed.checkpoint.size == 5
    stored = CheckpointStore(tmp_path).load()
    assert stored is not None and size_of(stored) == 5
    journal_of(tmp_path).close()  # a clean close folds the journal into the snapshot
    assert json.loads((tmp_path / "checkpoint.json").read_text())["size"] == 5
    [line] = log.cosignature_lines
    witness = CosignatureVerifier("agency-a", WITNESS_KEYS["agency-a"].public_key.raw)
    assert verify_cosignature(checkpoint_text(log.note), line, witness) == int(NOW.timestamp())


def test_a_grown_log_is_followed_with_a_consistency_proof(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path
) -> None:
    make_auditor(channel, tmp_path).follow()
    log.append(3)
    log.sign()
    assert make_auditor(channel, tmp_path).follow().checkpoint.size == 8
    assert len(log.cosignature_lines) == 1  # the new checkpoint, cosigned once


def test_a_process_that_is_behind_never_moves_the_stored_checkpoint_back(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path
) -> None:
    behind = make_auditor(channel, tmp_path)
    behind.follow()
    known = log.served_note()
    log.append(3)
    log.sign()
    make_auditor(channel, tmp_path).follow()  # another process of the same profile
    behind.accept(known)  # the checkpoint it already trusted, again (a heartbeat, say)
    stored = CheckpointStore(tmp_path).load()
    assert stored is not None and size_of(stored) == 8


@pytest.mark.parametrize(
    "rewrite",
    ["a changed leaf", "a truncated log", "the same size with another root"],
)
def test_a_rewritten_history_is_refused_and_the_trusted_checkpoint_kept(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path, rewrite: str
) -> None:
    make_auditor(channel, tmp_path).follow()
    trusted = CheckpointStore(tmp_path).load()
    if rewrite == "a changed leaf":
        log.leaves[2] = entry(99)[1]
        log.append(2)
    elif rewrite == "a truncated log":
        del log.leaves[3:]
    else:
        log.leaves[4] = entry(99)[1]
    log.sign()
    with pytest.raises(LogInconsistentError) as refused:
        make_auditor(channel, tmp_path).follow()
    assert refused.value.known_size == 5
    assert CheckpointStore(tmp_path).load() == trusted


def test_a_checkpoint_not_signed_by_the_hub_key_is_refused(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path
) -> None:
    log.sign(NoteSigner(ORIGIN, SigningKey.generate().native))
    with pytest.raises(SignatureError):
        make_auditor(channel, tmp_path).follow()
    assert CheckpointStore(tmp_path).load() is None


def test_an_unreadable_stored_checkpoint_is_a_configuration_error(
    channel: grpc.Channel, tmp_path: Path
) -> None:
    (tmp_path / "checkpoint.json").write_text("{not json")
    with pytest.raises(ConfigurationError):
        make_auditor(channel, tmp_path).follow()


# --- statements ------------------------------------------------------------------------------------


def test_a_statement_is_accepted_only_with_an_inclusion_proof(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path
) -> None:
    auditor = make_auditor(channel, tmp_path)
    contents = auditor.prove_statement(log.bodies[3], 3)
    assert contents.body_sha256 == hashlib.sha256(log.bodies[3]).digest()
    with pytest.raises(VerificationError) as other_bytes:
        auditor.prove_statement(b"not what was logged", 3)
    assert other_bytes.value.reason == "BODY_MISMATCH"
    log.append(1)  # appended, but under no checkpoint yet
    with pytest.raises(VerificationError) as unsigned:
        auditor.prove_statement(log.bodies[5], 5)
    assert unsigned.value.reason == "NOT_YET_CHECKPOINTED"


def test_a_leaf_the_checkpoint_does_not_hold_is_refused(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path
) -> None:
    auditor = make_auditor(channel, tmp_path)
    auditor.follow()
    log.leaves[1] = entry(42)[1]  # served leaf and proof no longer match the signed root
    with pytest.raises(VerificationError) as refused:
        auditor.prove_statement(entry(42)[0], 1)
    assert refused.value.reason == "INCLUSION_PROOF_INVALID"
    assert "log entry 1" in refused.value.message


def test_a_receipts_own_proof_and_checkpoint_are_checked(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path
) -> None:
    auditor = make_auditor(channel, tmp_path)
    proof = audit_pb2.InclusionProof(
        index=2, tree_size=5, hashes=merkle.inclusion_proof(2, 5, log.hashes())
    )
    auditor.prove_statement(log.bodies[2], 2, proof=proof, note=log.note)
    wrong = audit_pb2.InclusionProof(index=2, tree_size=4, hashes=proof.hashes)
    with pytest.raises(VerificationError) as refused:
        auditor.prove_statement(log.bodies[2], 2, proof=wrong, note=log.note)
    assert refused.value.reason == "INCLUSION_PROOF_INVALID"


# --- required cosigners ------------------------------------------------------------------------------


def test_required_cosigners_must_have_cosigned_recently(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path
) -> None:
    clock = [NOW]
    auditor = make_auditor(
        channel,
        tmp_path / "a",
        clock=clock,
        require_cosigners=["agency-b"],
        max_cosignature_age_seconds=600,
    )
    auditor.prove_statement(log.bodies[0], 0)  # not acting: no requirement
    with pytest.raises(VerificationError) as missing:
        auditor.prove_statement(log.bodies[0], 0, acting=True)
    assert missing.value.reason == "COSIGNATURE_MISSING" and "agency-b" in missing.value.message
    make_auditor(channel, tmp_path / "b", agency="agency-b").follow()  # agency-b cosigns
    auditor.prove_statement(log.bodies[0], 0, acting=True)
    clock.append(NOW + timedelta(seconds=601))
    with pytest.raises(VerificationError) as stale:
        auditor.prove_statement(log.bodies[0], 0, acting=True)
    assert stale.value.reason == "COSIGNATURE_STALE"


def test_a_cosigner_whose_keys_are_unknown_is_refused(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path
) -> None:
    auditor = make_auditor(channel, tmp_path, require_cosigners=["agency-z"])
    with pytest.raises(VerificationError) as unknown:
        auditor.require_cosigned()
    assert unknown.value.reason == "COSIGNER_UNKNOWN"


# --- comparison, summary, replay -------------------------------------------------------------------


def test_compare_proves_a_partners_older_checkpoint_and_names_a_fork(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path
) -> None:
    partners_note = log.served_note()
    log.append(4)
    log.sign()
    auditor = make_auditor(channel, tmp_path, agency="agency-b")
    comparison = auditor.compare(partners_note)
    assert (comparison.theirs.size, comparison.ours.size) == (5, 9)
    assert comparison.to_json()["consistent"] is True

    log.leaves[0] = entry(77)[1]
    forked_note = log.sign()
    with pytest.raises(LogInconsistentError):
        make_auditor(channel, tmp_path / "fresh", agency="agency-b").compare(partners_note)
    ahead = forked_note  # a partner shown more than the hub shows us
    log.leaves[:] = log.leaves[:3]
    log.sign()
    with pytest.raises(VerificationError) as withheld:
        make_auditor(channel, tmp_path / "other", agency="agency-b").compare(ahead)
    assert withheld.value.reason == "CHECKPOINT_WITHHELD"


def test_the_summary_lists_verified_cosignatures_and_our_own(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path
) -> None:
    make_auditor(channel, tmp_path / "b", agency="agency-b").follow()
    stranger = CosignatureSigner("agency-x", SigningKey.generate().native)
    log.cosignature_lines.append(cosign(checkpoint_text(log.note), stranger, 7))
    summary = make_auditor(channel, tmp_path / "a").summary()
    verified = {line.name for line in summary.cosignatures if line.verified}
    assert verified == {"agency-a", "agency-b"}
    assert [line.name for line in summary.cosignatures if not line.verified] == ["agency-x"]
    assert summary.note.startswith(log.note)  # exactly as signed, cosignature lines after
    assert "\u2014 agency-a " in summary.note


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 4 leaves, windows of 8 and body requests of 3, so a short log spans windows."""
    monkeypatch.setattr(auditor_module, "LEAVES_PER_PAGE", 4)
    monkeypatch.setattr(auditor_module, "FETCH_WINDOW", 8)
    monkeypatch.setattr(auditor_module, "BODIES_PER_REQUEST", 3)


@pytest.mark.parametrize("page_limit", [None, 3, 1])
def test_verify_reads_the_log_in_windows_or_as_the_hub_pages_it(
    log: ScriptedLog,
    channel: grpc.Channel,
    tmp_path: Path,
    small_windows: None,
    page_limit: int | None,
) -> None:
    log.append(20)
    log.sign()
    log.page_limit = page_limit
    auditor = make_auditor(channel, tmp_path)
    report = auditor.verify()
    assert report.ok and report.size == 25
    starts = [start for start, _ in log.leaf_requests]
    if page_limit is None:  # side by side, window after window
        assert sorted(log.leaf_requests) == [
            (0, 4),
            (4, 8),
            (8, 12),
            (12, 16),
            (16, 20),
            (20, 24),
            (24, 25),
        ]
    else:  # the first short page hands over to paging on from the last leaf served
        assert sorted(starts[:2]) == [0, 4] and starts[2:] == list(range(0, 25, page_limit))

    tampered_hashes = log.hashes()
    log.leaves[17] = entry(500)[1]
    log.hashes = lambda: tampered_hashes  # type: ignore[method-assign]
    report = auditor.verify()
    assert report.first_failure is not None
    assert (report.first_failure.reason, report.first_failure.index) == ("ROOT_MISMATCH", 17)


def test_a_refused_call_among_those_sent_side_by_side_fails_the_verification(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path, small_windows: None
) -> None:
    log.append(20)
    log.sign()
    log.bodies_refused = True
    with pytest.raises(ExchangeError) as refused:
        make_auditor(channel, tmp_path).verify()
    assert "not served today" in refused.value.message


def test_verify_names_the_first_changed_leaf(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path
) -> None:
    log.append(20)
    log.sign()
    auditor = make_auditor(channel, tmp_path)
    progress: list[tuple[str, int, int]] = []
    report = auditor.verify(progress=lambda *step: progress.append(step))
    assert report.ok and report.size == 25
    assert progress[-1] == ("bodies", 25, 25) and ("leaves", 25, 25) in progress

    tampered_hashes = log.hashes()  # the proofs keep coming from the signed tree
    log.leaves[13] = entry(500)[1]
    log.hashes = lambda: tampered_hashes  # type: ignore[method-assign]
    report = auditor.verify()
    assert report.first_failure is not None
    assert (report.first_failure.reason, report.first_failure.index) == ("ROOT_MISMATCH", 13)


# --- the feed stream --------------------------------------------------------------------------------


class ScriptedCall:
    """One ``Subscribe`` call's answers, with ``cancel`` as a gRPC call has it."""

    def __init__(self, responses: list[alerts_pb2.SubscribeResponse]) -> None:
        self.responses = responses
        self.cancelled = False

    def __iter__(self) -> Iterator[alerts_pb2.SubscribeResponse]:
        return iter(self.responses)

    def cancel(self) -> bool:
        self.cancelled = True
        return True


def feed_event(sequence: int, alert_id: str = "0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10") -> Any:
    return alerts_pb2.FeedEvent(
        sequence=sequence,
        kind=alerts_pb2.FeedEvent.ALERT_PUBLISHED,
        originator="agency-a",
        alert_id=alert_id,
        version=1,
    )


def test_the_stream_verifies_heartbeat_checkpoints_and_proves_events_they_cover(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path
) -> None:
    auditor = make_auditor(channel, tmp_path, agency="agency-b")
    auditor.follow()
    delivered = log.append_event(feed_event(1))
    note = log.sign()
    call = ScriptedCall(
        [
            alerts_pb2.SubscribeResponse(event=delivered),
            alerts_pb2.SubscribeResponse(heartbeat=alerts_pb2.Heartbeat(checkpoint=note)),
        ]
    )
    stream = auditor.audited_stream(call)  # type: ignore[arg-type]
    assert [response.WhichOneof("message") for response in stream] == ["event", "heartbeat"]
    trusted = auditor.trusted
    assert trusted is not None and trusted.checkpoint.size == 6
    stream.cancel()
    assert call.cancelled


def test_an_event_that_differs_from_its_logged_leaf_is_refused_after_a_reconnection(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path
) -> None:
    auditor = make_auditor(channel, tmp_path, agency="agency-b")
    delivered = log.append_event(feed_event(1))
    delivered.alert_id = "7a1c2b9e-0000-4000-8000-000000000000"  # not what was logged
    note = log.sign()
    first_call = ScriptedCall([alerts_pb2.SubscribeResponse(event=delivered)])
    assert len(list(auditor.audited_stream(first_call))) == 1  # type: ignore[arg-type]
    heartbeat = alerts_pb2.Heartbeat(checkpoint=note)
    second_call = ScriptedCall([alerts_pb2.SubscribeResponse(heartbeat=heartbeat)])
    with pytest.raises(VerificationError) as refused:
        next(auditor.audited_stream(second_call))  # type: ignore[arg-type]
    assert refused.value.reason == "BODY_MISMATCH" and "log entry 5" in refused.value.message


def test_a_heartbeat_checkpoint_of_a_rewritten_log_is_refused(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path
) -> None:
    auditor = make_auditor(channel, tmp_path, agency="agency-b")
    auditor.follow()
    log.leaves[0] = entry(9)[1]
    log.append(1)
    note = log.sign()
    stream = auditor.audited_stream(
        ScriptedCall(  # type: ignore[arg-type]
            [alerts_pb2.SubscribeResponse(heartbeat=alerts_pb2.Heartbeat(checkpoint=note))]
        )
    )
    with pytest.raises(LogInconsistentError):
        next(stream)


def test_a_feed_stream_cosigns_at_most_once_per_spacing_and_other_calls_at_once(
    log: ScriptedLog, channel: grpc.Channel, tmp_path: Path
) -> None:
    auditor = make_auditor(channel, tmp_path)
    auditor.accept(log.note, cosign_spacing=60)
    assert len(log.cosignature_lines) == 1  # the first verified checkpoint goes out at once
    log.append(2)
    second = log.sign()
    auditor.accept(second, cosign_spacing=60)
    assert log.cosignature_lines == []  # verified and saved, its cosignature held back
    assert size_of(CheckpointStore(tmp_path).load() or "") == size_of(second)
    log.append(1)
    third = log.sign()
    auditor.accept(third)
    [line] = log.cosignature_lines
    witness = CosignatureVerifier("agency-a", WITNESS_KEYS["agency-a"].public_key.raw)
    verify_cosignature(checkpoint_text(third), line, witness)  # the newest, not the held one
