"""Client-side verification of the audit log: pure, no I/O, no clock.

The client library and ``exchange audit`` do the fetching; everything they fetch is checked here
against the hub's checkpoint key and the agencies' own keys, never against the hub's word:

* :class:`CheckpointVerifier` holds the last checkpoint the client verified and accepts a newer
  (or older) one only with a consistency proof between the two, else
  :class:`~exchange.audit.errors.LogInconsistentError`; statements and events are accepted only
  with an inclusion proof against that checkpoint.
* :func:`check_consistency` compares any two signed checkpoints (``exchange audit compare``: one
  obtained from a partner out of band).
* :func:`verify_log` replays a whole log (``exchange audit verify``): every leaf, every checkpoint
  root, every body the reader may see with its references and signatures, and names the first
  entry that fails in a :class:`VerificationReport`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from itertools import islice
from typing import Protocol

from google.protobuf.message import Message

from exchange.audit import leaves
from exchange.audit.errors import FeedGapError, LogInconsistentError
from exchange.audit.leaves import LeafContents, references_commitment
from exchange.audit.merkle import (
    EMPTY_ROOT,
    ProofError,
    aligned_subtrees,
    hash_from_aligned_subtrees,
    leaf_hash,
    node_hash,
    root_from,
    verify_consistency,
    verify_inclusion,
)
from exchange.crypto.dsse import Envelope, pae, verify_envelope
from exchange.crypto.keys import VerifyKey
from exchange.crypto.notes import (
    Checkpoint,
    CosignatureVerifier,
    NoteVerifier,
    SignedCheckpoint,
    open_checkpoint,
)
from exchange.crypto.signature_batch import SignatureCheck
from exchange.errors import (
    CommitmentError,
    InvalidInputError,
    SignatureError,
    UnknownKeyError,
    VerificationError,
)
from exchange.statements.agency_keys import AgencyKeys
from exchange.statements.codec import PAYLOAD_TYPES, envelope_from_proto, parse_canonical
from exchange.statements.key_compromise import COMPROMISED, Compromise, untrusted_reason
from exchange.v1 import alerts_pb2, match_pb2, statements_pb2

__all__ = [
    "CheckpointVerifier",
    "EntryBodyRecord",
    "LeafRecord",
    "LogFailure",
    "VerificationReport",
    "check_consistency",
    "check_feed_sequence",
    "require_cosignatures",
    "verify_log",
    "witness_verifier",
]


def witness_verifier(keys: AgencyKeys) -> CosignatureVerifier:
    """The ``cosignature/v1`` verifier of an agency's certified witness key.

    The key name in cosignature lines is the agency id, so a cosignature names its agency.
    """
    if keys.witness_key is None:
        raise UnknownKeyError(f"agency {keys.agency_id!r} has no certified witness key")
    return CosignatureVerifier(keys.agency_id, keys.witness_key.raw)


# --- checkpoints ------------------------------------------------------------------------------------


def check_consistency(known: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """Check that two checkpoints of one log describe one history, in either order of size.

    ``proof`` is the consistency proof from the smaller tree to the larger (empty for equal
    sizes). Raises :class:`LogInconsistentError` naming both sizes and roots when they cannot
    both be true: a rewritten history, or a fork (two views of the log).
    """

    def inconsistent(why: str) -> LogInconsistentError:
        return LogInconsistentError(
            f"checkpoint of size {new.size} (root {new.root_hash.hex()}) is not consistent with "
            f"the verified checkpoint of size {known.size} (root {known.root_hash.hex()}): {why}",
            known_size=known.size,
            known_root=known.root_hash,
            new_size=new.size,
            new_root=new.root_hash,
        )

    if known.origin != new.origin:
        raise inconsistent(f"they are of different logs ({known.origin!r}, {new.origin!r})")
    smaller, larger = (known, new) if known.size <= new.size else (new, known)
    if smaller.size == 0:
        if smaller.root_hash != EMPTY_ROOT:
            raise inconsistent("an empty tree with a root other than SHA-256 of nothing")
        return
    if smaller.size == larger.size and smaller.root_hash != larger.root_hash:
        raise inconsistent("two different roots for the same size: the log has forked")
    try:
        verify_consistency(
            smaller.size, larger.size, smaller.root_hash, larger.root_hash, list(proof)
        )
    except ProofError as e:
        raise inconsistent(e.message) from e


def require_cosignatures(
    signed: SignedCheckpoint, required: Iterable[str], *, now: int, max_age_seconds: int
) -> None:
    """Check that each agency in ``required`` cosigned ``signed`` within ``max_age_seconds``.

    For a client set to act only on checkpoints its named partners have witnessed: open the note
    with their witness keys (:func:`witness_verifier`) as cosigners first, so only cosignatures
    that verified count. ``now`` is Unix seconds. Raises :class:`~exchange.errors.VerificationError`
    naming the first agency whose cosignature is missing or stale.
    """
    cosigned = signed.cosignatures
    for agency in required:
        timestamp = cosigned.get(agency)
        if timestamp is None:
            raise VerificationError(
                f"checkpoint of size {signed.checkpoint.size} has no cosignature by {agency}",
                reason="COSIGNATURE_MISSING",
            )
        if now - timestamp > max_age_seconds:
            raise VerificationError(
                f"{agency} last cosigned checkpoint of size {signed.checkpoint.size} "
                f"{now - timestamp} s ago, more than {max_age_seconds} s",
                reason="COSIGNATURE_STALE",
            )


OPENED_NOTES_KEPT = 8
"""Checkpoint notes a :class:`CheckpointVerifier` keeps opened (threads publishing side by side
each open their receipt's note, then accept it)."""


class CheckpointVerifier:
    """The last checkpoint this client verified, and the only way to move past it.

    A state machine in the manner of TUF's trusted metadata set: :meth:`accept` opens a note with
    the hub's checkpoint key, checks it against the trusted checkpoint with a consistency proof,
    and only then makes it the trusted one. The first checkpoint is trusted on first use unless
    one is given (the client persists :attr:`trusted_note` and passes it back next time).
    """

    def __init__(
        self,
        log_verifier: NoteVerifier,
        *,
        origin: str | None = None,
        trusted_note: str | None = None,
        cosigners: Iterable[CosignatureVerifier] = (),
    ) -> None:
        """Verify with ``log_verifier``; ``origin`` defaults to the key's name."""
        self._log_verifier = log_verifier
        self._origin = origin if origin is not None else log_verifier.name
        self._cosigners = tuple(cosigners)
        self._trusted: SignedCheckpoint | None = None
        self._trusted_note: str | None = None
        # The last few notes opened, by their exact text: a client opens a receipt's note to
        # ask for the right proof, then accepts it; the second open is the same verification
        # of the same bytes under the same keys.
        self._opened: OrderedDict[str, SignedCheckpoint] = OrderedDict()
        self._opened_lock = threading.Lock()
        if trusted_note is not None:
            self._trusted = self.open(trusted_note)
            self._trusted_note = trusted_note

    @property
    def trusted(self) -> SignedCheckpoint | None:
        """The largest checkpoint verified so far, or ``None`` before the first."""
        return self._trusted

    @property
    def trusted_note(self) -> str | None:
        """The note of :attr:`trusted`, exactly as received, for the client to persist."""
        return self._trusted_note

    def open(self, note: str) -> SignedCheckpoint:
        """``note`` opened with this verifier's keys and origin (see
        :func:`~exchange.crypto.notes.open_checkpoint`), without trusting it.

        The last :data:`OPENED_NOTES_KEPT` notes that opened are kept by their exact text, so a
        note opened before :meth:`accept` is not verified twice; a note differing in any
        character (another cosignature, say) is opened afresh.
        """
        with self._opened_lock:
            signed = self._opened.get(note)
            if signed is not None:
                self._opened.move_to_end(note)
                return signed
        signed = open_checkpoint(
            note, self._log_verifier, cosigners=self._cosigners, origin=self._origin
        )
        with self._opened_lock:
            self._opened[note] = signed
            while len(self._opened) > OPENED_NOTES_KEPT:
                self._opened.popitem(last=False)
        return signed

    def accept(self, note: str, consistency_proof: Sequence[bytes] = ()) -> SignedCheckpoint:
        """Verify ``note`` and the proof linking it to the trusted checkpoint; return it opened.

        A larger checkpoint becomes the trusted one; a smaller or equal one is checked (the proof
        then runs from its size to the trusted size) and leaves the trusted one in place, except
        that an equal one replaces it so that newer cosignatures are kept. A bad signature raises
        :class:`~exchange.errors.SignatureError`; an inconsistent history
        :class:`~exchange.audit.errors.LogInconsistentError`.
        """
        signed = self.open(note)
        if self._trusted is not None:
            check_consistency(self._trusted.checkpoint, signed.checkpoint, consistency_proof)
            if signed.checkpoint.size < self._trusted.checkpoint.size:
                return signed
        self._trusted = signed
        self._trusted_note = note
        return signed

    def verify_inclusion(self, leaf: bytes, index: int, proof: Sequence[bytes]) -> LeafContents:
        """Check that ``leaf`` (canonical leaf bytes) is leaf ``index`` of the trusted checkpoint.

        The proof must be at the trusted checkpoint's size. Returns the decoded leaf; raises
        :class:`~exchange.audit.merkle.ProofError` if it is not included.
        """
        trusted = self._require_trusted()
        contents = LeafContents.decode(leaf)
        verify_inclusion(leaf_hash(leaf), index, trusted.size, list(proof), trusted.root_hash)
        return contents

    def verify_statement(
        self, body: bytes, leaf: bytes, index: int, proof: Sequence[bytes]
    ) -> LeafContents:
        """Check that ``body`` (a statement or event, as logged) is committed to by leaf ``index``
        of the trusted checkpoint; return the decoded leaf.

        Raises :class:`~exchange.errors.CommitmentError` if the leaf commits to other bytes, and
        :class:`~exchange.audit.merkle.ProofError` if the leaf is not in the tree.
        """
        contents = self.verify_inclusion(leaf, index, proof)
        if hashlib.sha256(body).digest() != contents.body_sha256:
            raise CommitmentError(f"leaf {index} commits to other bytes than this statement")
        return contents

    def _require_trusted(self) -> Checkpoint:
        if self._trusted is None:
            raise VerificationError(
                "no verified checkpoint yet: accept one first", reason="NO_TRUSTED_CHECKPOINT"
            )
        return self._trusted.checkpoint


# --- the whole log ----------------------------------------------------------------------------------


class LeafRecord(Protocol):
    """A leaf as served (``exchange.v1.Leaf`` fits): its index and canonical bytes."""

    @property
    def index(self) -> int:
        """The leaf's position in the log."""
        ...

    @property
    def data(self) -> bytes:
        """The canonical leaf bytes."""
        ...


class EntryBodyRecord(Protocol):
    """A body as served to an entitled agency (``exchange.v1.EntryBody`` fits)."""

    @property
    def body(self) -> bytes:
        """The statement or event bytes, as logged."""
        ...

    @property
    def salt(self) -> bytes:
        """The salt of the leaf's references commitment."""
        ...


@dataclass(frozen=True)
class LogFailure:
    """What failed: a stable reason, a message, and the entry (or checkpoint) at fault."""

    reason: str
    message: str
    index: int | None = None
    """The first failing leaf index, when the failure is a leaf's."""
    checkpoint_size: int | None = None
    """The size of the checkpoint involved, when there is one."""


@dataclass(frozen=True)
class VerificationReport:
    """The outcome of :func:`verify_log`: what was checked, and the first failure if any."""

    size: int
    """The number of leaves replayed."""
    root_hash: bytes
    """The root recomputed from them."""
    checkpoints_verified: int
    bodies_verified: int
    signatures_verified: int
    references_verified: int
    feed_sequence: int = 0
    """The reader's feed events found in the log are numbered 1 to this without a gap."""
    failures: tuple[LogFailure, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Whether everything verified."""
        return not self.failures

    @property
    def first_failure(self) -> LogFailure | None:
        """The failure with the smallest index (checkpoint signature failures come first)."""
        return self.failures[0] if self.failures else None

    def raise_for_failure(self) -> None:
        """Raise a :class:`~exchange.errors.VerificationError` naming the first failure, if any."""
        first = self.first_failure
        if first is None:
            return
        where = f"entry {first.index}: " if first.index is not None else ""
        raise VerificationError(f"{where}{first.message}", reason=first.reason)


@dataclass
class _Replay:
    """The leaves hashed once, in order: their number, the roots at the sizes asked for (and at
    the end) and the leaves that did not decode; the whole tree is built only to narrow down a
    root that does not match."""

    log_leaves: Sequence[LeafRecord]
    size: int
    roots: dict[int, bytes]
    malformed: set[int]

    def tree(self) -> _InMemoryTree:
        """Every subtree of the replayed leaves, for the binary search of :func:`_first_bad_leaf`."""
        return _InMemoryTree(
            [leaf_hash(bytes(record.data)) for record in islice(self.log_leaves, self.size)]
        )


def _replay(log_leaves: Sequence[LeafRecord], sizes: set[int], tally: _Tally) -> _Replay:
    """Hash every leaf into the tree's right edge (RFC 9162's frontier: the roots of the complete
    subtrees the leaves so far fill, largest first), taking the root at each of ``sizes``.

    Each leaf is hashed once and merged with the complete subtrees it completes, so the pass
    costs one leaf hash and, on average, one node hash per leaf, and keeps ``log2(n)`` hashes.
    A leaf out of order ends the replay (``LEAF_MISSING``); one that does not decode is named
    (``LEAF_MALFORMED``) and the replay goes on, since its hash is all the tree needs.
    """
    sha256 = hashlib.sha256
    frontier: list[bytes] = []
    roots = {0: EMPTY_ROOT}
    malformed: set[int] = set()
    size = 0
    for position, record in enumerate(log_leaves):
        if record.index != position:
            tally.failures.append(
                LogFailure(
                    "LEAF_MISSING",
                    f"leaf {position} is missing: the log goes on with leaf {record.index}",
                    index=position,
                )
            )
            break
        data = bytes(record.data)
        node = sha256(b"\x00" + data).digest()
        completed = position
        while completed & 1:
            node = sha256(b"\x01" + frontier.pop() + node).digest()
            completed >>= 1
        frontier.append(node)
        size = position + 1
        if not leaves.is_canonical(data):
            malformed.add(position)
            try:
                LeafContents.decode(data)
            except InvalidInputError as e:
                tally.failures.append(LogFailure("LEAF_MALFORMED", e.message, index=position))
        if size in sizes:
            roots[size] = hash_from_aligned_subtrees(frontier)
    if size not in roots:
        roots[size] = hash_from_aligned_subtrees(frontier)
    return _Replay(log_leaves, size, roots, malformed)


class _PrecheckedKey(VerifyKey):
    """A verify key whose checks were made in a batch: :meth:`verify` answers from it."""

    __slots__ = ("_answers",)

    def __init__(self, key: VerifyKey, answers: Mapping[SignatureCheck, bool]) -> None:
        super().__init__(key.native)
        self._answers = answers

    def verify(self, message: bytes, signature: bytes) -> None:
        """As :meth:`VerifyKey.verify`, with the batch's answer when it made this check."""
        answer = self._answers.get(SignatureCheck(self.raw, message, signature))
        if answer is None:
            super().verify(message, signature)
        elif not answer:
            raise SignatureError(f"Ed25519 signature does not verify under key {self.key_id}")


def _prechecked_keys(
    log_leaves: Sequence[LeafRecord],
    replay: _Replay,
    bodies: Mapping[int, EntryBodyRecord],
    signing_keys: Mapping[str, Iterable[VerifyKey]],
    check_signatures: Callable[[Sequence[SignatureCheck]], Sequence[bool]],
) -> dict[str, list[VerifyKey]]:
    """``signing_keys`` answering from one batch of every check the bodies' statements call for:
    each signature of a signed entry under each known key with its key id."""
    by_id: dict[str, list[VerifyKey]] = {}
    for keys in signing_keys.values():
        for key in keys:
            by_id.setdefault(key.key_id, []).append(key)
    wanted: dict[SignatureCheck, None] = {}  # ordered, each check once
    for index, record in bodies.items():
        if not 0 <= index < replay.size or index in replay.malformed:
            continue
        leaf = LeafContents.decode(bytes(log_leaves[index].data))
        kind = _SIGNED_ENTRIES.get(leaf.entry_type)
        if kind is None:
            continue
        try:
            envelope = envelope_from_proto(
                parse_canonical(statements_pb2.Envelope, bytes(record.body), what="statement")
            )
        except (VerificationError, InvalidInputError):
            continue  # reported when the body is checked
        message = pae(envelope.payload_type, envelope.payload)
        for signature in envelope.signatures:
            for key in by_id.get(signature.keyid, ()):
                wanted[SignatureCheck(key.raw, message, signature.sig)] = None
    checks = list(wanted)
    answers = dict(zip(checks, check_signatures(checks), strict=True))
    return {
        agency: [_PrecheckedKey(key, answers) for key in keys]
        for agency, keys in signing_keys.items()
    }


class _InMemoryTree:
    """Every complete aligned subtree hash of a list of leaf hashes: a SubtreeSource in memory."""

    def __init__(self, leaf_hashes: list[bytes]) -> None:
        self.levels: list[list[bytes]] = [leaf_hashes]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append(
                [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            )

    def subtree_hash(self, start: int, end: int) -> bytes:
        pieces = []
        for s, e in aligned_subtrees(start, end):
            level = (e - s).bit_length() - 1
            pieces.append(self.levels[level][s >> level])
        return hash_from_aligned_subtrees(pieces)


@dataclass(frozen=True)
class _StatementKind:
    """How a signed entry type is checked: its payload type and message, and who must sign it."""

    payload_type: str
    message: type[Message]
    signer_field: str | None


_SIGNED_ENTRIES = {
    leaves.ALERT_PUBLISHED: _StatementKind(
        PAYLOAD_TYPES["alert_manifest"], statements_pb2.AlertManifest, "originator"
    ),
    leaves.AGENCY_KEYS: _StatementKind(
        PAYLOAD_TYPES["agency_keys"], statements_pb2.AgencyKeys, "agency_id"
    ),
    leaves.RELEASE_REQUEST: _StatementKind(
        PAYLOAD_TYPES["release_request"], statements_pb2.ReleaseRequest, "requester"
    ),
    leaves.RELEASE_DECISION: _StatementKind(
        PAYLOAD_TYPES["release_decision"], statements_pb2.ReleaseDecision, "originator"
    ),
    leaves.REVOCATION: _StatementKind(
        PAYLOAD_TYPES["revocation"], statements_pb2.Revocation, "originator"
    ),
    leaves.RETRACTION: _StatementKind(
        PAYLOAD_TYPES["retraction"], statements_pb2.Retraction, "originator"
    ),
    leaves.RECEIPT: _StatementKind(PAYLOAD_TYPES["receipt"], statements_pb2.Receipt, "recipient"),
    leaves.PURGE_ACK: _StatementKind(
        PAYLOAD_TYPES["purge_ack"], statements_pb2.PurgeAck, "recipient"
    ),
    leaves.FEEDBACK: _StatementKind(
        PAYLOAD_TYPES["feedback"], statements_pb2.Feedback, "recipient"
    ),
    leaves.MATCH_POLICY: _StatementKind(
        PAYLOAD_TYPES["match_policy"], match_pb2.MatchPolicy, "holder"
    ),
}


@dataclass
class _Tally:
    failures: list[LogFailure] = field(default_factory=list)
    bodies: int = 0
    signatures: int = 0
    references: int = 0
    feed_events: dict[int, int] = field(default_factory=dict)
    """The reader's feed sequence numbers seen in bodies, to the index of their leaf."""
    key_statements: dict[tuple[str, int], dict[bytes, int]] = field(default_factory=dict)
    """(agency, key number) -> statement hash -> the first leaf that logged it."""


def verify_log(
    log_leaves: Sequence[LeafRecord],
    checkpoint_notes: Sequence[str],
    *,
    log_verifier: NoteVerifier,
    origin: str | None = None,
    bodies: Mapping[int, EntryBodyRecord] | None = None,
    signing_keys: Mapping[str, Iterable[VerifyKey]] | None = None,
    reader: str | None = None,
    consistency_proof: Callable[[int, int], Sequence[bytes]] | None = None,
    compromised: Mapping[str, Compromise] | None = None,
    check_signatures: Callable[[Sequence[SignatureCheck]], Sequence[bool]] | None = None,
) -> VerificationReport:
    """Replay the log and report the first entry that fails.

    ``log_leaves`` is the whole log in index order; ``checkpoint_notes`` every signed checkpoint
    to hold it to (each must verify under ``log_verifier``, and its root must be the root of that
    many leaves). ``bodies`` are those the reader is entitled to, by index: each must hash to its
    leaf's commitment, its references (for the entry types whose references follow from the body;
    feed events need ``reader``, the agency whose feed they are in) must match the salted
    commitment, and a signed statement must verify under ``signing_keys`` (agency id to its
    verify keys) of the agency it names.

    When a checkpoint's root does not match, the first bad leaf lies between the last checkpoint
    that matched and that one. ``consistency_proof(m, n)`` (the hub's ``GetConsistencyProof``)
    narrows it to one leaf: a proof from ``m`` leaves to the checkpoint can only verify if the
    first ``m`` leaves are the ones the hub signed, so a binary search over ``m`` finds the first
    leaf that is not. The hub cannot make a bad prefix pass; withholding proofs only leaves the
    failure at the coarser range.

    ``compromised`` (key id to :class:`~exchange.statements.key_compromise.Compromise`, from the
    agencies' key sequences) flags a statement signed only by keys compromised by the later of
    its own date and its leaf's log time as ``KEY_COMPROMISED``; earlier ones stay trusted.

    ``check_signatures`` (the client library's spreads them over processes) makes the Ed25519 checks of the bodies' signatures in one batch up front; the rules above
    then run as they would without it, taking each check's answer from the batch (a check the
    batch did not foresee is made on the spot). The same signature is checked once.
    """
    tally = _Tally()
    checkpoints = _open_checkpoints(checkpoint_notes, log_verifier, origin, tally)
    replay = _replay(log_leaves, {c.size for c in checkpoints}, tally)
    size = replay.size
    _check_roots(replay, checkpoints, consistency_proof, tally)
    if check_signatures is not None and bodies and signing_keys:
        signing_keys = _prechecked_keys(log_leaves, replay, bodies, signing_keys, check_signatures)
    for index, body in sorted((bodies or {}).items()):
        if 0 <= index < size and index not in replay.malformed:
            leaf = LeafContents.decode(bytes(log_leaves[index].data))
            _check_body(index, leaf, body, signing_keys or {}, reader, tally, compromised or {})
    feed_sequence = _check_feed(tally, reader)
    _check_key_forks(tally)
    tally.failures.sort(key=lambda f: -1 if f.index is None else f.index)
    return VerificationReport(
        size=size,
        root_hash=replay.roots[size],
        checkpoints_verified=len(checkpoints),
        bodies_verified=tally.bodies,
        signatures_verified=tally.signatures,
        references_verified=tally.references,
        feed_sequence=feed_sequence,
        failures=tuple(tally.failures),
    )


def _check_feed(tally: _Tally, reader: str | None) -> int:
    """The reader's last feed sequence in the log; a failure if its sequences skip a number."""
    expected = 1
    for sequence in sorted(tally.feed_events):
        if sequence != expected:
            tally.failures.append(
                LogFailure(
                    "FEED_GAP",
                    f"{reader}'s feed event {expected} is not in the log, "
                    f"though event {sequence} is",
                    index=tally.feed_events[sequence],
                )
            )
            break
        expected += 1
    return expected - 1


def check_feed_sequence(received: int, latest: int) -> None:
    """Raise :class:`~exchange.audit.errors.FeedGapError` if ``latest`` (a heartbeat's latest
    sequence, or :attr:`VerificationReport.feed_sequence` from the log) is past ``received``,
    the last feed event this agency was delivered: the hub withheld one."""
    if latest > received:
        raise FeedGapError(
            f"feed event {received + 1} is missing: the hub states or logged event {latest} "
            f"but delivered events only up to {received}",
            missing_sequence=received + 1,
        )


def _open_checkpoints(
    notes: Sequence[str], log_verifier: NoteVerifier, origin: str | None, tally: _Tally
) -> list[Checkpoint]:
    opened: list[Checkpoint] = []
    for note in notes:
        try:
            opened.append(
                open_checkpoint(note, log_verifier, origin=origin or log_verifier.name).checkpoint
            )
        except (VerificationError, InvalidInputError) as e:
            tally.failures.append(
                LogFailure(
                    e.reason, f"checkpoint: {e.message}", checkpoint_size=_claimed_size(note)
                )
            )
    opened.sort(key=lambda c: c.size)
    return opened


def _claimed_size(note: str) -> int | None:
    """The size line of a note that did not verify, for the report (not trusted for anything)."""
    lines = note.split("\n")
    return int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else None


def _check_roots(
    replay: _Replay,
    checkpoints: list[Checkpoint],
    consistency_proof: Callable[[int, int], Sequence[bytes]] | None,
    tally: _Tally,
) -> None:
    size = replay.size
    proven = 0  # the first `proven` leaves match a signed root
    for checkpoint in checkpoints:
        if checkpoint.size > size:
            tally.failures.append(
                LogFailure(
                    "LOG_TRUNCATED",
                    f"the log has {size} leaves but a checkpoint signs {checkpoint.size}: "
                    f"leaf {size} onwards is missing",
                    index=size,
                    checkpoint_size=checkpoint.size,
                )
            )
            return
        if replay.roots[checkpoint.size] == checkpoint.root_hash:
            proven = max(proven, checkpoint.size)
            continue
        bad = _first_bad_leaf(replay.tree(), proven, checkpoint, consistency_proof)
        tally.failures.append(
            LogFailure(
                "ROOT_MISMATCH",
                f"the leaves do not hash to the root signed at size {checkpoint.size}; "
                + (
                    f"leaf {bad} is the first that differs from the signed log"
                    if bad is not None
                    else f"the first difference is among leaves {proven} to {checkpoint.size - 1}"
                ),
                index=bad if bad is not None else proven,
                checkpoint_size=checkpoint.size,
            )
        )
        return


def _first_bad_leaf(
    tree: _InMemoryTree,
    proven: int,
    checkpoint: Checkpoint,
    consistency_proof: Callable[[int, int], Sequence[bytes]] | None,
) -> int | None:
    """Binary-search the smallest prefix that no consistency proof ties to the checkpoint."""
    if consistency_proof is None:
        return None

    def prefix_is_signed(m: int) -> bool:
        try:
            verify_consistency(
                m,
                checkpoint.size,
                root_from(tree, m),
                checkpoint.root_hash,
                list(consistency_proof(m, checkpoint.size)),
            )
        except VerificationError:
            return False
        return True

    low, high = proven, checkpoint.size  # prefix `low` matches a signed root, `high` does not
    while high - low > 1:
        middle = (low + high) // 2
        if prefix_is_signed(middle):
            low = middle
        else:
            high = middle
    return high - 1


def _check_body(
    index: int,
    leaf: LeafContents,
    record: EntryBodyRecord,
    signing_keys: Mapping[str, Iterable[VerifyKey]],
    reader: str | None,
    tally: _Tally,
    compromised: Mapping[str, Compromise],
) -> None:
    body = bytes(record.body)
    if hashlib.sha256(body).digest() != leaf.body_sha256:
        tally.failures.append(
            LogFailure("BODY_MISMATCH", "the body does not hash to the leaf's commitment", index)
        )
        return
    tally.bodies += 1
    try:
        references = _references(index, leaf.entry_type, body, signing_keys, reader, tally)
        if compromised:
            _check_compromise(index, leaf, body, signing_keys, compromised, tally)
    except (VerificationError, InvalidInputError) as e:
        tally.failures.append(LogFailure(e.reason, e.message, index))
        return
    if references is None:
        return
    if references_commitment(bytes(record.salt), references) != leaf.references_commitment:
        tally.failures.append(
            LogFailure(
                "REFERENCES_MISMATCH",
                f"the leaf's references do not commit to {references}",
                index,
            )
        )
        return
    tally.references += 1


def _references(
    index: int,
    entry_type: str,
    body: bytes,
    signing_keys: Mapping[str, Iterable[VerifyKey]],
    reader: str | None,
    tally: _Tally,
) -> list[str] | None:
    """Verify a signed body's signature; return the references its leaf should commit to."""
    if entry_type == leaves.FEED_EVENT:
        event = parse_canonical(alerts_pb2.FeedEvent, body, what=f"feed event {index}")
        if reader is None:
            return None
        tally.feed_events.setdefault(event.sequence, index)
        return [reader, str(event.sequence), event.originator, event.alert_id]
    kind = _SIGNED_ENTRIES.get(entry_type)
    if kind is None:
        return None
    envelope = envelope_from_proto(
        parse_canonical(statements_pb2.Envelope, body, what=f"statement {index}")
    )
    signer = _verify_signature(envelope, kind.payload_type, signing_keys)
    tally.signatures += 1
    message = parse_canonical(kind.message, envelope.payload, what=f"{entry_type} {index}")
    named = getattr(message, kind.signer_field) if kind.signer_field else signer
    if named != signer:
        raise VerificationError(
            f"the {entry_type} statement names {named!r} but is signed by {signer!r}",
            reason="SIGNER_MISMATCH",
        )
    if entry_type == leaves.AGENCY_KEYS:
        number = int(getattr(message, "key_number"))  # noqa: B009
        statement_hash = hashlib.sha256(envelope.payload).digest()
        logged = tally.key_statements.setdefault((named, number), {})
        logged.setdefault(statement_hash, index)
        return [named, str(number)]
    alert_fields = ("originator", "alert_id", "version")
    if not all(name in message.DESCRIPTOR.fields_by_name for name in alert_fields):
        return None  # a statement that does not name its alert (a decision names the request)
    return [str(getattr(message, name)) for name in alert_fields]


def _check_compromise(
    index: int,
    leaf: LeafContents,
    body: bytes,
    signing_keys: Mapping[str, Iterable[VerifyKey]],
    compromised: Mapping[str, Compromise],
    tally: _Tally,
) -> None:
    """Flag a signed statement whose signers were all compromised by the time it was made.

    Key statements are left to the sequence rules (a CA signature and the keys they replace).
    """
    kind = _SIGNED_ENTRIES.get(leaf.entry_type)
    if kind is None or leaf.entry_type == leaves.AGENCY_KEYS:
        return
    envelope = envelope_from_proto(
        parse_canonical(statements_pb2.Envelope, body, what=f"statement {index}")
    )
    message = parse_canonical(kind.message, envelope.payload, what=f"{leaf.entry_type} {index}")
    signed_at = None
    if "created_at" in message.DESCRIPTOR.fields_by_name and message.HasField("created_at"):
        signed_at = getattr(message, "created_at").ToDatetime(tzinfo=UTC)  # noqa: B009
    keys = {key.key_id: key for agency_keys in signing_keys.values() for key in agency_keys}
    why = untrusted_reason(
        envelope, keys, compromised, signed_at=signed_at, logged_at=leaf.logged_at
    )
    if why:
        tally.failures.append(
            LogFailure(COMPROMISED, f"the {leaf.entry_type} statement is untrusted: {why}", index)
        )


def _check_key_forks(tally: _Tally) -> None:
    """Two different key statements logged under one agency and number: the hub showed
    partners different keys (DESIGN §4.1)."""
    for (agency, number), logged in sorted(tally.key_statements.items()):
        if len(logged) > 1:
            indices = sorted(logged.values())
            tally.failures.append(
                LogFailure(
                    "KEY_SEQUENCE_FORK",
                    f"{agency!r} has {len(logged)} different key statements number {number} "
                    f"in the log (entries {', '.join(map(str, indices))})",
                    indices[1],
                )
            )


def _verify_signature(
    envelope: Envelope, payload_type: str, signing_keys: Mapping[str, Iterable[VerifyKey]]
) -> str:
    """The agency whose key signed ``envelope``; raises if none of the known keys did."""
    for agency, keys in signing_keys.items():
        try:
            verify_envelope(
                envelope,
                expected_type=payload_type,
                keys={key.key_id: key for key in keys},
            )
        except UnknownKeyError:
            continue
        return agency
    raise UnknownKeyError("the statement is signed by no key of a known agency")
