"""The pure verifiers: checkpoints linked by consistency proofs, and whole-log replay.

Logs here are built in memory with the Merkle core and signed with a fixed test key, so each
tampering case (a changed, missing, swapped or truncated leaf, a forged checkpoint, a fork) can be
made exactly and checked for its named reason and first bad index.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.audit import merkle
from exchange.audit.errors import FeedGapError, LogInconsistentError
from exchange.audit.leaves import FEED_EVENT, RETRACTION, LeafContents, is_canonical, make_leaf
from exchange.audit.verify import (
    OPENED_NOTES_KEPT,
    CheckpointVerifier,
    check_consistency,
    check_feed_sequence,
    require_cosignatures,
    verify_log,
)
from exchange.crypto.dsse import Envelope, sign_envelope
from exchange.crypto.keys import SigningKey
from exchange.crypto.notes import (
    Checkpoint,
    CosignatureSigner,
    NoteSigner,
    NoteVerifier,
    append_signatures,
    cosign,
    open_checkpoint,
    sign_note,
)
from exchange.crypto.signature_batch import verify_one_by_one
from exchange.errors import CommitmentError, MalformedError, SignatureError, VerificationError
from exchange.statements.codec import PAYLOAD_TYPES, encode, envelope_to_proto
from exchange.v1 import alerts_pb2, statements_pb2

ORIGIN = "exchange.test/log"
SIGNER = NoteSigner(ORIGIN, bytes(range(32)))
LOG_KEY = SIGNER.verifier()
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Leaf:
    index: int
    data: bytes


def event_body(i: int, tag: str = "") -> bytes:
    """Feed event ``i + 1`` of agency-b, as the hub logs it."""
    event = alerts_pb2.FeedEvent(sequence=i + 1, originator="agency-a", alert_id=f"alert-{i}{tag}")
    return encode(event)


def leaf_data(count: int, tag: str = "") -> list[bytes]:
    return [
        make_leaf(
            FEED_EVENT,
            NOW,
            event_body(i, tag),
            b"s" * 16,
            ["agency-b", str(i + 1), "agency-a", f"alert-{i}{tag}"],
        )
        for i in range(count)
    ]


def signed(data: list[bytes], size: int | None = None, signer: NoteSigner = SIGNER) -> str:
    size = len(data) if size is None else size
    root = merkle.root([merkle.leaf_hash(d) for d in data[:size]])
    return sign_note(Checkpoint(ORIGIN, size, root).to_text(), [signer])


def proof_source(data: list[bytes]):  # type: ignore[no-untyped-def]
    hashes = [merkle.leaf_hash(d) for d in data]
    return lambda m, n: merkle.consistency_proof(m, n, hashes)


# --- checkpoints ------------------------------------------------------------------------------------


def test_a_verifier_moves_forward_only_with_consistency_proofs() -> None:
    data = leaf_data(20)
    hashes = [merkle.leaf_hash(d) for d in data]
    verifier = CheckpointVerifier(LOG_KEY)
    verifier.accept(signed(data, 5))
    verifier.accept(signed(data, 13), merkle.consistency_proof(5, 13, hashes))
    assert verifier.trusted is not None and verifier.trusted.checkpoint.size == 13
    verifier.accept(signed(data, 7), merkle.consistency_proof(7, 13, hashes))  # an older one
    assert verifier.trusted.checkpoint.size == 13
    assert verifier.trusted_note == signed(data, 13)
    restored = CheckpointVerifier(LOG_KEY, trusted_note=verifier.trusted_note)
    restored.accept(signed(data, 20), merkle.consistency_proof(13, 20, hashes))


def test_a_rewritten_history_is_log_inconsistent_naming_sizes_and_roots() -> None:
    honest, forked = leaf_data(12), leaf_data(12)
    forked[3] = leaf_data(4, tag="rewritten")[3]
    verifier = CheckpointVerifier(LOG_KEY, trusted_note=signed(honest, 8))
    forked_hashes = [merkle.leaf_hash(d) for d in forked]
    with pytest.raises(LogInconsistentError) as caught:
        verifier.accept(signed(forked, 12), merkle.consistency_proof(8, 12, forked_hashes))
    error = caught.value
    assert (error.known_size, error.new_size) == (8, 12)
    assert error.new_root == merkle.root(forked_hashes)
    assert error.reason == "LOG_INCONSISTENT"
    assert verifier.trusted is not None and verifier.trusted.checkpoint.size == 8


def test_two_roots_for_one_size_are_a_fork() -> None:
    a = Checkpoint.from_text(signed(leaf_data(6)).split("\n\n")[0] + "\n")
    b = Checkpoint.from_text(signed(leaf_data(6, tag="x")).split("\n\n")[0] + "\n")
    with pytest.raises(LogInconsistentError, match="forked"):
        check_consistency(a, b, [])


def test_a_forged_checkpoint_signature_is_refused() -> None:
    rogue = NoteSigner(ORIGIN, bytes(range(1, 33)))
    verifier = CheckpointVerifier(LOG_KEY)
    with pytest.raises(SignatureError):
        verifier.accept(signed(leaf_data(3), signer=rogue))
    assert verifier.trusted is None


def _tampered(note: str) -> str:
    """``note`` with one character of its signature changed."""
    body, signature = note.rsplit(" ", 1)
    middle = len(signature) // 2
    swapped = "A" if signature[middle] != "A" else "B"
    return f"{body} {signature[:middle]}{swapped}{signature[middle + 1 :]}"


def test_a_note_opened_before_accept_is_reused_only_for_the_same_text() -> None:
    data = leaf_data(6)
    note = signed(data)
    verifier = CheckpointVerifier(LOG_KEY)
    opened = verifier.open(note)
    assert verifier.trusted is None  # opening is not trusting
    assert verifier.accept(note) is opened  # verified once, not twice
    # A note differing in one character of its signature is verified afresh, and refused,
    # however recently the genuine one was opened; a refused note is not kept either.
    for _ in range(2):
        with pytest.raises(SignatureError):
            verifier.open(_tampered(note))
        with pytest.raises(SignatureError):
            verifier.accept(_tampered(note))
    # The same checkpoint with a cosignature added is another text: opened afresh, with the
    # cosignature seen.
    witness = CosignatureSigner("agency-b", bytes(range(2, 34)))
    cosigned = append_signatures(note, [cosign(note.split("\n\n")[0] + "\n", witness, 1_000)])
    watching = CheckpointVerifier(LOG_KEY, cosigners=[witness.verifier()])
    assert watching.open(note).cosignatures == {}
    assert watching.open(cosigned).cosignatures == {"agency-b": 1_000}
    assert watching.accept(cosigned).cosignatures == {"agency-b": 1_000}


def test_only_the_last_few_opened_notes_are_kept() -> None:
    data = leaf_data(OPENED_NOTES_KEPT + 2)
    verifier = CheckpointVerifier(LOG_KEY)
    first = verifier.open(signed(data, 1))
    for size in range(2, OPENED_NOTES_KEPT + 2):
        verifier.open(signed(data, size))
    again = verifier.open(signed(data, 1))
    assert again == first and again is not first  # opened afresh once pushed out


def test_statements_need_an_inclusion_proof_against_the_trusted_checkpoint() -> None:
    data = leaf_data(9)
    hashes = [merkle.leaf_hash(d) for d in data]
    verifier = CheckpointVerifier(LOG_KEY)
    with pytest.raises(VerificationError):
        verifier.verify_inclusion(data[2], 2, [])
    verifier.accept(signed(data))
    proof = merkle.inclusion_proof(2, 9, hashes)
    contents = verifier.verify_statement(event_body(2), data[2], 2, proof)
    assert contents.body_sha256 == hashlib.sha256(event_body(2)).digest()
    with pytest.raises(CommitmentError):
        verifier.verify_statement(event_body(3), data[2], 2, proof)
    with pytest.raises(merkle.ProofError):
        verifier.verify_inclusion(data[2], 3, merkle.inclusion_proof(3, 9, hashes))


def test_leaves_decode_strictly() -> None:
    leaf = leaf_data(1)[0]
    assert LeafContents.decode(leaf).encode() == leaf
    for bad in (
        leaf[:-1],
        leaf + b"\x00",
        b"",
        leaf.replace(b"exchange/leaf/v1", b"exchange/leaf/v2"),
    ):
        with pytest.raises(MalformedError):
            LeafContents.decode(bad)


def test_feed_gap_error_names_the_missing_sequence() -> None:
    error = FeedGapError("event 4 is missing", missing_sequence=4)
    assert isinstance(error, VerificationError) and error.missing_sequence == 4
    assert error.reason == "FEED_GAP"


# --- the whole log ----------------------------------------------------------------------------------


def replay(data: list[bytes], notes: list[str], *, proofs_from: list[bytes] | None = None):  # type: ignore[no-untyped-def]
    return verify_log(
        [Leaf(i, d) for i, d in enumerate(data)],
        notes,
        log_verifier=LOG_KEY,
        consistency_proof=proof_source(proofs_from) if proofs_from is not None else None,
    )


def test_an_untouched_log_verifies() -> None:
    data = leaf_data(37)
    report = replay(data, [signed(data, 10), signed(data, 37)])
    assert report.ok and report.size == 37 and report.checkpoints_verified == 2
    assert report.root_hash == merkle.root([merkle.leaf_hash(d) for d in data])
    report.raise_for_failure()


@pytest.mark.parametrize("bad", [0, 10, 11, 25, 36])
def test_a_changed_leaf_is_named_with_the_hubs_consistency_proofs(bad: int) -> None:
    signed_log = leaf_data(37)
    served = list(signed_log)
    served[bad] = leaf_data(bad + 1, tag="changed")[bad]
    report = replay(
        served, [signed(signed_log, 10), signed(signed_log, 37)], proofs_from=signed_log
    )
    failure = report.first_failure
    assert failure is not None and (failure.reason, failure.index) == ("ROOT_MISMATCH", bad)
    with pytest.raises(VerificationError, match=f"entry {bad}"):
        report.raise_for_failure()


def test_without_proofs_a_changed_leaf_is_bounded_by_the_last_good_checkpoint() -> None:
    signed_log = leaf_data(37)
    served = list(signed_log)
    served[25] = leaf_data(26, tag="changed")[25]
    report = replay(served, [signed(signed_log, 10), signed(signed_log, 37)])
    failure = report.first_failure
    assert failure is not None and failure.index == 10 and failure.checkpoint_size == 37


def test_swapped_missing_and_truncated_leaves_are_named() -> None:
    data = leaf_data(20)
    notes = [signed(data)]
    swapped = list(data)
    swapped[4], swapped[9] = swapped[9], swapped[4]
    failure = replay(swapped, notes, proofs_from=data).first_failure
    assert failure is not None and (failure.reason, failure.index) == ("ROOT_MISMATCH", 4)

    missing = [Leaf(i, d) for i, d in enumerate(data) if i != 7]
    report = verify_log(missing, notes, log_verifier=LOG_KEY)
    assert report.first_failure is not None
    assert (report.first_failure.reason, report.first_failure.index) == ("LEAF_MISSING", 7)

    failure = replay(data[:15], notes).first_failure
    assert failure is not None and (failure.reason, failure.index) == ("LOG_TRUNCATED", 15)


def test_a_forged_checkpoint_in_the_log_is_reported_first() -> None:
    data = leaf_data(5)
    rogue = NoteSigner(ORIGIN, bytes(range(1, 33)))
    genuine = signed(data)
    forged = (
        genuine.split("\n\n")[0] + "\n\n" + rogue.signature_line(genuine.split("\n\n")[0] + "\n")
    )
    forged = forged.replace(rogue.name + " ", LOG_KEY.name + " ", 1) + "\n"
    report = replay(data, [forged])
    assert report.first_failure is not None and report.first_failure.index is None
    assert report.first_failure.checkpoint_size == 5


def test_bodies_are_checked_against_their_leaves() -> None:
    data = leaf_data(3)

    @dataclass(frozen=True)
    class Body:
        body: bytes
        salt: bytes

    report = verify_log(
        [Leaf(i, d) for i, d in enumerate(data)],
        [signed(data)],
        log_verifier=LOG_KEY,
        bodies={
            0: Body(event_body(0), b"s" * 16),
            1: Body(event_body(1), b"t" * 16),
            2: Body(b"tampered", b"s" * 16),
        },
        reader="agency-b",
    )
    assert report.references_verified == 1 and report.bodies_verified == 2
    assert [(f.reason, f.index) for f in report.failures] == [
        ("REFERENCES_MISMATCH", 1),
        ("BODY_MISMATCH", 2),
    ]


def test_a_verifier_key_of_another_type_is_refused() -> None:
    with pytest.raises(MalformedError):
        NoteVerifier.from_string(
            "exchange.test/log+00000000+BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        )


def test_required_cosignatures_must_be_present_and_fresh() -> None:
    witness = CosignatureSigner("agency-b", bytes(range(2, 34)))
    note = signed(leaf_data(4))
    body = note.split("\n\n")[0] + "\n"
    cosigned = append_signatures(note, [cosign(body, witness, 1_000)])
    opened = open_checkpoint(cosigned, LOG_KEY, cosigners=[witness.verifier()])
    require_cosignatures(opened, ["agency-b"], now=1_100, max_age_seconds=300)
    with pytest.raises(VerificationError, match="agency-b") as stale:
        require_cosignatures(opened, ["agency-b"], now=2_000, max_age_seconds=300)
    assert stale.value.reason == "COSIGNATURE_STALE"
    with pytest.raises(VerificationError, match="agency-c") as missing:
        require_cosignatures(opened, ["agency-b", "agency-c"], now=1_100, max_age_seconds=300)
    assert missing.value.reason == "COSIGNATURE_MISSING"


def test_a_gap_in_the_readers_feed_events_in_the_log_is_named() -> None:
    data = leaf_data(4)

    @dataclass(frozen=True)
    class Body:
        body: bytes
        salt: bytes

    everything = {i: Body(event_body(i), b"s" * 16) for i in range(4)}
    report = verify_log(
        [Leaf(i, d) for i, d in enumerate(data)],
        [signed(data)],
        log_verifier=LOG_KEY,
        bodies=everything,
        reader="agency-b",
    )
    assert report.ok and report.feed_sequence == 4
    without_second = {i: b for i, b in everything.items() if i != 1}
    report = verify_log(
        [Leaf(i, d) for i, d in enumerate(data)],
        [signed(data)],
        log_verifier=LOG_KEY,
        bodies=without_second,
        reader="agency-b",
    )
    assert report.feed_sequence == 1
    assert report.first_failure is not None
    assert (report.first_failure.reason, report.first_failure.index) == ("FEED_GAP", 2)
    check_feed_sequence(4, 4)
    with pytest.raises(FeedGapError) as gap:
        check_feed_sequence(2, 4)
    assert gap.value.missing_sequence == 3


# --- the leaf layout checked in place, and signatures checked in a batch -------------------------


@pytest.mark.parametrize(
    "name, leaf",
    [
        ("canonical", leaf_data(1)[0]),
        ("one byte short", leaf_data(1)[0][:-1]),
        ("one byte more", leaf_data(1)[0] + b"\x00"),
        ("empty", b""),
        ("another label", leaf_data(1)[0].replace(b"exchange/leaf/v1", b"exchange/leaf/v2")),
        ("entry type not UTF-8", leaf_data(1)[0].replace(b"feed_event", b"feed_even\xff")),
        ("time of 7 bytes", leaf_data(1)[0].replace(b"\x00\x00\x00\x08", b"\x00\x00\x00\x07", 1)),
        ("empty entry type", make_leaf("", NOW, b"x", b"s" * 16, [])),
    ],
)
def test_the_leaf_layout_checked_in_place_decides_as_the_part_by_part_decoding(
    name: str, leaf: bytes
) -> None:
    try:
        expected: LeafContents | str = LeafContents._decode_parts(leaf)
    except MalformedError as e:
        expected = e.message
    try:
        decoded: LeafContents | str = LeafContents.decode(leaf)
    except MalformedError as e:
        decoded = e.message
    assert decoded == expected, name
    assert is_canonical(leaf) == isinstance(expected, LeafContents), name


def test_a_malformed_leaf_is_named_and_the_rest_of_the_log_still_replayed() -> None:
    data = leaf_data(12)
    served = list(data)
    served[6] = b"not a leaf"
    report = replay(served, [signed(data)], proofs_from=data)
    assert [(f.reason, f.index) for f in report.failures] == [
        ("LEAF_MALFORMED", 6),
        ("ROOT_MISMATCH", 6),
    ]
    assert report.size == 12


def test_roots_are_taken_at_every_checkpoint_size_as_the_leaves_are_hashed() -> None:
    data = leaf_data(100)
    sizes = [1, 2, 3, 63, 64, 65, 99, 100]
    report = replay(data, [signed(data, size) for size in sizes])
    assert report.ok and report.checkpoints_verified == len(sizes)
    assert report.root_hash == merkle.root([merkle.leaf_hash(d) for d in data])
    assert replay([], []).root_hash == merkle.EMPTY_ROOT


AGENCY_A_KEY = SigningKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64))))
RETRACTION_TYPE = PAYLOAD_TYPES["retraction"]


def retraction_log(count: int, *, bad_signature: int | None = None):  # type: ignore[no-untyped-def]
    """``count`` retractions signed by agency-a, logged with their bodies; the one at
    ``bad_signature`` carries another statement's signature (its leaf commits to it as served)."""
    entries, bodies = [], {}

    @dataclass(frozen=True)
    class Body:
        body: bytes
        salt: bytes

    other = sign_envelope(RETRACTION_TYPE, b"another statement", AGENCY_A_KEY).signatures
    for i in range(count):
        statement = statements_pb2.Retraction(
            originator="agency-a", alert_id=f"alert-{i}", version=1
        )
        envelope = sign_envelope(RETRACTION_TYPE, encode(statement), AGENCY_A_KEY)
        if i == bad_signature:
            envelope = Envelope(envelope.payload, envelope.payload_type, other)
        body = encode(envelope_to_proto(envelope))
        salt = bytes([i % 256]) * 16
        entries.append(make_leaf(RETRACTION, NOW, body, salt, ["agency-a", f"alert-{i}", "1"]))
        bodies[i] = Body(body, salt)
    return entries, bodies


def test_signatures_checked_in_a_batch_give_the_report_checked_one_by_one() -> None:
    data, bodies = retraction_log(40, bad_signature=17)
    batches: list[int] = []

    def batch(checks):  # type: ignore[no-untyped-def]
        batches.append(len(checks))
        return verify_one_by_one(checks)

    def verify(**options):  # type: ignore[no-untyped-def]
        return verify_log(
            [Leaf(i, d) for i, d in enumerate(data)],
            [signed(data)],
            log_verifier=LOG_KEY,
            bodies=bodies,
            signing_keys={"agency-a": [AGENCY_A_KEY.public_key]},
            **options,
        )

    one_by_one, batched = verify(), verify(check_signatures=batch)
    assert batched == one_by_one
    assert [(f.reason, f.index) for f in batched.failures] == [("SIGNATURE_INVALID", 17)]
    assert batched.signatures_verified == 39 and batches == [40]  # each check once, one batch
