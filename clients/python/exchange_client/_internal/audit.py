"""The client's side of the audit log (DESIGN §8): it verifies the hub, never takes its word.

:class:`Auditor` does the I/O around the pure verifiers of :mod:`exchange.audit.verify`:

* It keeps the last checkpoint it verified in ``state/checkpoint.json`` and moves to a newer one
  only with a consistency proof from it (:class:`~exchange.audit.errors.LogInconsistentError`
  otherwise). The first checkpoint is trusted on first use, provided it is signed by the hub's
  checkpoint key from the profile.
* It cosigns every checkpoint it comes to trust (``cosignature/v1`` with the profile's witness
  key) and submits the cosignature, so partners can see that this agency saw the same log.
* It accepts no statement without an inclusion proof against a verified checkpoint, and, when
  the profile names required cosigners, only under a checkpoint they cosigned recently.
* It replays the whole log (``exchange audit verify``), lists one alert's entries
  (``exchange audit history``) and checks a partner's checkpoint against its own view
  (``exchange audit compare``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import grpc
from filelock import FileLock, Timeout
from google.protobuf.message import Message

from exchange.audit import leaves
from exchange.audit.errors import FeedGapError, LogInconsistentError
from exchange.audit.leaves import LeafContents, references_commitment
from exchange.audit.merkle import leaf_hash, verify_inclusion
from exchange.audit.verify import (
    CheckpointVerifier,
    LogFailure,
    VerificationReport,
    check_consistency,
    require_cosignatures,
    verify_log,
    witness_verifier,
)
from exchange.crypto.dsse import Envelope, verify_envelope
from exchange.crypto.keys import SigningKey, VerifyKey
from exchange.crypto.notes import (
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    NoteVerifier,
    SignedCheckpoint,
    append_signatures,
    cosign,
    cosignature_timestamp,
    open_checkpoint,
)
from exchange.errors import (
    ConfigurationError,
    ExchangeError,
    InvalidInputError,
    UnknownKeyError,
    VerificationError,
)
from exchange.profile import DEFAULT_MAX_COSIGNATURE_AGE_SECONDS
from exchange.statements.agency_keys import AgencyKeys
from exchange.statements.codec import (
    PAYLOAD_TYPES,
    encode,
    envelope_from_proto,
    envelope_to_proto,
    parse_canonical,
)
from exchange.v1 import alerts_pb2, alerts_pb2_grpc, audit_pb2, audit_pb2_grpc, statements_pb2
from exchange_client._internal.feed import check_sequence
from exchange_client._internal.models import JsonObject, rfc3339
from exchange_client._internal.state import PRIVATE_DIRECTORY_MODE, write_atomically
from exchange_client._internal.status import hub_errors

__all__ = [
    "LEAVES_PER_PAGE",
    "AuditedStream",
    "Auditor",
    "CheckpointStore",
    "CheckpointSummary",
    "Comparison",
    "HistoryEntry",
    "Progress",
    "VerifiedLog",
    "report_to_json",
]

LEAVES_PER_PAGE = 1000
"""Leaves asked for per ``GetLeaves`` call (the hub answers at most 1000)."""

BODIES_PER_REQUEST = 1000
"""Indices per ``GetEntryBodies`` call (the hub's limit)."""

EVENTS_PER_PAGE = 1000
"""Feed events per ``ListEvents`` call when ``verify`` reads back what the hub delivered."""

STORE_LOCK_SECONDS = 10.0
"""How long saving the checkpoint waits for another process of the same profile."""

STORE_LOCK_POLL_SECONDS = 0.001
"""How often a process waiting to save the checkpoint tries the lock again (the other process
holds it for one small write)."""

COSIGN_SPACING_SECONDS = 2.0
"""Shortest time between two cosignatures of one process while it follows a feed stream or
publishes (its first cosignature goes at once, and so do those of the audit commands)."""

Progress = Callable[[str, int, int], None]
"""Called as ``progress(phase, done, total)`` while the log is fetched (``leaves``, ``bodies``)."""

_STATEMENT_MESSAGES: dict[str, type[Message]] = {
    leaves.ALERT_PUBLISHED: statements_pb2.AlertManifest,
    leaves.AGENCY_KEYS: statements_pb2.AgencyKeys,
    leaves.RELEASE_REQUEST: statements_pb2.ReleaseRequest,
    leaves.RELEASE_DECISION: statements_pb2.ReleaseDecision,
    leaves.REVOCATION: statements_pb2.Revocation,
    leaves.RETRACTION: statements_pb2.Retraction,
    leaves.RECEIPT: statements_pb2.Receipt,
    leaves.PURGE_ACK: statements_pb2.PurgeAck,
    leaves.FEEDBACK: statements_pb2.Feedback,
}

_HISTORY_KINDS = {
    leaves.ALERT_PUBLISHED: "publication",
    leaves.FEED_EVENT: "delivery",
    leaves.RELEASE_REQUEST: "request",
    leaves.RELEASE_DECISION: "decision",
    leaves.REVOCATION: "revocation",
    leaves.RETRACTION: "retraction",
    leaves.RECEIPT: "receipt",
    leaves.PURGE_ACK: "purge",
    leaves.FEEDBACK: "feedback",
    leaves.GRANT_DELIVERED: "delivery",
    leaves.EMBARGO_LAPSED: "embargo lapse",
    leaves.ITEM_PURGED: "purge",
}


def logged_envelope(envelope: statements_pb2.Envelope) -> bytes:
    """The bytes the hub logs for a statement: its envelope, re-encoded canonically."""
    return encode(envelope_to_proto(envelope_from_proto(envelope)))


def logged_manifest(publish_request: bytes) -> bytes:
    """The logged bytes of the manifest in a sealed ``PublishRequest``."""
    request = parse_canonical(alerts_pb2.PublishRequest, publish_request, what="publish request")
    return logged_envelope(request.manifest)


def checkpoint_text(note: str) -> str:
    """The checkpoint body of a signed note: everything before the blank line, newline kept."""
    split = note.find("\n\n")
    if split < 0:
        raise InvalidInputError("not a signed note: no blank line before the signatures")
    return note[: split + 1]


# --- the persisted checkpoint -----------------------------------------------------------------------


class CheckpointStore:
    """``state/checkpoint.json``: the last checkpoint note this profile verified, as received."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "checkpoint.json"

    def load(self) -> str | None:
        """The stored note, or ``None`` before the first checkpoint was verified."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ConfigurationError(f"{self.path}: cannot read the checkpoint: {e}") from e
        try:
            note = json.loads(text)["note"]
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigurationError(
                f"{self.path}: not a checkpoint record; restore it from a backup (deleting it "
                "makes the next checkpoint trusted on first use)"
            ) from e
        if not isinstance(note, str):
            raise ConfigurationError(f"{self.path}: the note must be a string")
        return note

    def save(self, signed: SignedCheckpoint, note: str) -> None:
        """Replace the stored checkpoint atomically, unless it already holds a larger one.

        Two processes of one profile may verify different checkpoints; the file keeps the larger
        (each was proven consistent with what the profile trusted), so a process that is behind
        never moves the profile's trust back.
        """
        checkpoint = signed.checkpoint
        record = {
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root_hash": checkpoint.root_hash.hex(),
            "note": note,
        }
        try:
            self.path.parent.mkdir(mode=PRIVATE_DIRECTORY_MODE, parents=True, exist_ok=True)
            with FileLock(
                self.path.with_name("checkpoint.lock"),
                timeout=STORE_LOCK_SECONDS,
                poll_interval=STORE_LOCK_POLL_SECONDS,
            ):
                if self._stored_size() > checkpoint.size:
                    return
                write_atomically(self.path, json.dumps(record, indent=2).encode() + b"\n")
        except (OSError, Timeout) as e:
            raise ConfigurationError(f"{self.path}: cannot store the checkpoint: {e}") from e

    def _stored_size(self) -> int:
        try:
            size = json.loads(self.path.read_text(encoding="utf-8"))["size"]
        except FileNotFoundError:
            return -1
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigurationError(f"{self.path}: not a checkpoint record") from e
        return int(size)


# --- results ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CosignatureLine:
    """One cosignature on a checkpoint: who, when, and whether it verified under a known key."""

    name: str
    timestamp: int | None
    verified: bool

    def to_json(self) -> JsonObject:
        """For ``--json``."""
        moment = None if self.timestamp is None else datetime.fromtimestamp(self.timestamp, UTC)
        return {"name": self.name, "time": rfc3339(moment), "verified": self.verified}


@dataclass(frozen=True)
class CheckpointSummary:
    """A verified checkpoint as ``exchange audit checkpoint`` shows it."""

    origin: str
    size: int
    root_hash: bytes
    note: str
    """The note exactly as signed, with every cosignature line known to this client."""
    cosignatures: tuple[CosignatureLine, ...]

    def to_json(self) -> JsonObject:
        """For ``--json``."""
        return {
            "origin": self.origin,
            "size": self.size,
            "root_hash": self.root_hash.hex(),
            "cosignatures": [line.to_json() for line in self.cosignatures],
            "note": self.note,
        }


@dataclass(frozen=True)
class Comparison:
    """A partner's checkpoint proven consistent with this client's view of the log."""

    ours: Checkpoint
    theirs: Checkpoint
    cosigners: tuple[str, ...]
    """The agencies whose cosignature on the partner's note verified."""

    def to_json(self) -> JsonObject:
        """For ``--json``."""
        return {
            "consistent": True,
            "our_size": self.ours.size,
            "our_root_hash": self.ours.root_hash.hex(),
            "their_size": self.theirs.size,
            "their_root_hash": self.theirs.root_hash.hex(),
            "their_cosigners": list(self.cosigners),
        }


@dataclass(frozen=True)
class HistoryEntry:
    """One log entry about an alert, as the caller may see it.

    ``signed_by`` names the agency whose signature on the statement verified; it is empty for
    the hub's own assertions (deliveries, purges), which only the log vouches for.
    """

    index: int
    logged_at: datetime
    entry_type: str
    kind: str
    signed_by: str
    version: int = 0
    agency: str = ""
    """The agency the entry concerns: the signer, or the recipient of a delivery."""
    detail: str = ""

    @property
    def hub_assertion(self) -> bool:
        """True when no agency signed the entry: the hub's word, logged."""
        return not self.signed_by

    def to_json(self) -> JsonObject:
        """For ``--json``."""
        return {
            "index": self.index,
            "logged_at": rfc3339(self.logged_at),
            "entry_type": self.entry_type,
            "kind": self.kind,
            "signed_by": self.signed_by or None,
            "assertion": "hub" if self.hub_assertion else "agency",
            "version": self.version,
            "agency": self.agency,
            "detail": self.detail,
        }


def report_to_json(report: VerificationReport) -> JsonObject:
    """A :class:`VerificationReport` for ``exchange audit verify --json``."""

    def failure(item: LogFailure) -> JsonObject:
        return {
            "reason": item.reason,
            "message": item.message,
            "index": item.index,
            "checkpoint_size": item.checkpoint_size,
        }

    first = report.first_failure
    return {
        "ok": report.ok,
        "size": report.size,
        "root_hash": report.root_hash.hex(),
        "checkpoints_verified": report.checkpoints_verified,
        "bodies_verified": report.bodies_verified,
        "signatures_verified": report.signatures_verified,
        "references_verified": report.references_verified,
        "feed_sequence": report.feed_sequence,
        "first_failure": None if first is None else failure(first),
        "failures": [failure(item) for item in report.failures],
    }


# --- the auditor --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedLog:
    """A replay of the whole log (:meth:`Auditor.verified_log`) and what it replayed."""

    report: VerificationReport
    checkpoint_note: str
    """The checkpoint the log was verified at, as the hub signed it."""
    leaves: list[audit_pb2.Leaf]
    bodies: dict[int, audit_pb2.EntryBody]
    """The bodies this agency may read, by log index."""


@dataclass(frozen=True)
class _FetchedLog:
    """The leaves under one checkpoint and the bodies this agency may see, by index."""

    leaves: list[audit_pb2.Leaf]
    bodies: dict[int, audit_pb2.EntryBody]


class Auditor:
    """Checkpoints, proofs and cosignatures for one client; see the module documentation.

    ``partner_keys`` returns every agency's latest key statement verified against this profile's
    CAs (for witness keys); ``signing_keys`` every agency's verify keys (for statements).
    """

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        agency_id: str,
        state_dir: Path,
        checkpoint_verifier_key: str,
        witness_key: SigningKey | None,
        target: str,
        timeout: float,
        clock: Callable[[], datetime],
        partner_keys: Callable[[], Mapping[str, AgencyKeys]],
        signing_keys: Callable[[], Mapping[str, Sequence[VerifyKey]]],
        require_cosigners: Sequence[str] = (),
        max_cosignature_age_seconds: int = DEFAULT_MAX_COSIGNATURE_AGE_SECONDS,
    ) -> None:
        self._stub = audit_pb2_grpc.AuditServiceStub(channel)
        self._alerts_stub = alerts_pb2_grpc.AlertServiceStub(channel)
        self._agency_id = agency_id
        self._store = CheckpointStore(state_dir)
        self._verifier_key = checkpoint_verifier_key
        self._witness_key = witness_key
        self._target = target
        self._timeout = timeout
        self._clock = clock
        self._partner_keys = partner_keys
        self._signing_keys = signing_keys
        self._require_cosigners = tuple(require_cosigners)
        self._max_cosignature_age = max_cosignature_age_seconds
        self._verifier: CheckpointVerifier | None = None
        # Checkpoint text to the cosignature line this process made for it, to show it at once.
        self._own_cosignatures: dict[str, str] = {}
        self._awaiting_proof: list[alerts_pb2.FeedEvent] = []
        # The newest verified checkpoint not yet cosigned, and when this process last cosigned:
        # a feed stream cosigns at most every COSIGN_SPACING_SECONDS, so a busy feed is not
        # slowed by one cosignature round trip per event.
        self._uncosigned: Checkpoint | None = None
        self._last_cosigned: float | None = None

    # --- checkpoints ------------------------------------------------------------------------------

    @property
    def log_key(self) -> NoteVerifier:
        """The hub's checkpoint key, from the profile."""
        try:
            return NoteVerifier.from_string(self._verifier_key)
        except ExchangeError as e:
            raise ConfigurationError(
                f"the profile's checkpoint verifier key is unusable ({e.message}); copy it from "
                "the hub's `exchange-hub checkpoint-key`"
            ) from e

    def _checkpoints(self) -> CheckpointVerifier:
        if self._verifier is None:
            stored = self._store.load()
            try:
                self._verifier = CheckpointVerifier(self.log_key, trusted_note=stored)
            except (VerificationError, InvalidInputError) as e:
                raise ConfigurationError(
                    f"{self._store.path}: the stored checkpoint does not verify under the "
                    f"profile's checkpoint key: {e.message}"
                ) from e
        return self._verifier

    @property
    def trusted(self) -> SignedCheckpoint | None:
        """The checkpoint this client verified last (persisted across runs), if any."""
        return self._checkpoints().trusted

    def follow(self) -> SignedCheckpoint:
        """Fetch the hub's latest checkpoint and verify it against the trusted one."""
        with hub_errors(self._target):
            view = self._stub.GetCheckpoint(audit_pb2.GetCheckpointRequest(), timeout=self._timeout)
        return self.accept(view.note)

    def accept(
        self,
        note: str,
        *,
        cosign_spacing: float = 0.0,
        consistency: audit_pb2.ConsistencyProof | None = None,
    ) -> SignedCheckpoint:
        """Verify ``note`` (signed by the hub's key, consistent with the trusted checkpoint).

        ``consistency``, a proof the hub sent along (a feed stream's heartbeat), is used when it
        runs from the trusted checkpoint to ``note``'s; otherwise the proof is asked for.

        A larger checkpoint becomes the trusted one, is saved and cosigned — at once, or, with
        ``cosign_spacing`` (a feed stream), no sooner than that many seconds after this
        process's last cosignature: the newest verified checkpoint then goes out with a later
        heartbeat. Raises
        :class:`~exchange.errors.SignatureError` for a bad signature and
        :class:`~exchange.audit.errors.LogInconsistentError` for a history that does not extend
        the trusted one.
        """
        verifier = self._checkpoints()
        signed = open_checkpoint(note, self.log_key, origin=self.log_key.name)
        before = verifier.trusted
        proof: list[bytes] = []
        if before is not None:
            proof = self._proof_to_trusted(before.checkpoint, signed.checkpoint, consistency)
        accepted = verifier.accept(note, proof)
        if verifier.trusted_note == note and verifier.trusted is not None:
            self._store.save(verifier.trusted, note)
            if before is None or accepted.checkpoint.size > before.checkpoint.size:
                self._uncosigned = accepted.checkpoint
        self._cosign_when_due(cosign_spacing)
        return accepted

    def _cosign_when_due(self, spacing: float) -> None:
        """Cosign the newest verified checkpoint unless one went out less than ``spacing`` ago."""
        if self._uncosigned is None:
            return
        now = time.monotonic()
        if self._last_cosigned is not None and now - self._last_cosigned < spacing:
            return
        checkpoint, self._uncosigned = self._uncosigned, None
        self._last_cosigned = now
        self._cosign(checkpoint)

    def _proof_to_trusted(
        self, trusted: Checkpoint, new: Checkpoint, given: audit_pb2.ConsistencyProof | None
    ) -> list[bytes]:
        """The consistency proof between the trusted checkpoint and a new one: ``given``, if it
        is the proof from the one to the other, else the hub's answer when asked.

        A hub that signs a checkpoint smaller than one it signed before and cannot prove it a
        prefix (its latest is now smaller: the log was rolled back) has rewritten its history.
        """
        if given is not None and (given.from_size, given.to_size) == (trusted.size, new.size):
            return list(given.hashes)
        try:
            return self.consistency_proof(trusted.size, new.size)
        except InvalidInputError as e:
            if new.size >= trusted.size:
                raise
            raise LogInconsistentError(
                f"checkpoint of size {new.size} (root {new.root_hash.hex()}) is older than the "
                f"verified checkpoint of size {trusted.size} (root {trusted.root_hash.hex()}) "
                f"and the hub cannot prove it a prefix: the log was truncated ({e.message})",
                known_size=trusted.size,
                known_root=trusted.root_hash,
                new_size=new.size,
                new_root=new.root_hash,
            ) from e

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The hub's proof that the smaller of two tree sizes is a prefix of the larger."""
        smaller, larger = sorted((first, second))
        if smaller == 0 or smaller == larger:
            return []
        with hub_errors(self._target):
            proof = self._stub.GetConsistencyProof(
                audit_pb2.GetConsistencyProofRequest(from_size=smaller, to_size=larger),
                timeout=self._timeout,
            )
        return list(proof.hashes)

    def _cosign(self, checkpoint: Checkpoint) -> None:
        if self._witness_key is None:
            return
        text = checkpoint.to_text()
        signer = CosignatureSigner(self._agency_id, self._witness_key.native)
        line = cosign(text, signer, int(self._clock().timestamp()))
        with hub_errors(self._target):
            self._stub.SubmitCosignature(
                audit_pb2.SubmitCosignatureRequest(checkpoint=text, cosignature=line),
                timeout=self._timeout,
            )
        self._own_cosignatures[text] = line

    def _witnesses(self) -> list[CosignatureVerifier]:
        witnesses = []
        for keys in self._partner_keys().values():
            try:
                witnesses.append(witness_verifier(keys))
            except UnknownKeyError:
                continue
        return witnesses

    def summary(self) -> CheckpointSummary:
        """The latest checkpoint, verified, with the cosignatures on it (ours included)."""
        self.follow()
        note = self._checkpoints().trusted_note
        assert note is not None
        own = self._own_cosignatures.get(checkpoint_text(note))
        if own is not None:
            note = append_signatures(note, [own])
        signed = open_checkpoint(note, self.log_key, cosigners=self._witnesses())
        lines = [
            CosignatureLine(name, timestamp, True)
            for name, timestamp in sorted(signed.cosignatures.items())
        ]
        for unknown in signed.note.unknown_signatures:
            try:
                timestamp: int | None = cosignature_timestamp(unknown)
            except ExchangeError:
                timestamp = None
            lines.append(CosignatureLine(unknown.name, timestamp, False))
        checkpoint = signed.checkpoint
        return CheckpointSummary(
            checkpoint.origin, checkpoint.size, checkpoint.root_hash, note, tuple(lines)
        )

    def require_cosigned(self) -> None:
        """Check the profile's required cosigners on the trusted checkpoint; a no-op if none.

        A cosignature may have arrived since the checkpoint was fetched, so on a first failure
        the hub's latest checkpoint is followed and checked once more. Raises
        :class:`~exchange.errors.VerificationError` naming the first agency whose cosignature
        is missing or older than the profile allows.
        """
        if not self._require_cosigners:
            return
        try:
            self._check_cosigners()
        except VerificationError:
            self.follow()
            self._check_cosigners()

    def _check_cosigners(self) -> None:
        partners = self._partner_keys()
        cosigners = []
        for agency in self._require_cosigners:
            keys = partners.get(agency)
            if keys is None:
                raise VerificationError(
                    f"the profile requires cosignatures by {agency}, whose keys do not verify "
                    "against this profile's CAs",
                    reason="COSIGNER_UNKNOWN",
                )
            cosigners.append(witness_verifier(keys))
        if self._checkpoints().trusted_note is None:
            self.follow()
        note = self._checkpoints().trusted_note
        assert note is not None
        opened = open_checkpoint(note, self.log_key, cosigners=cosigners)
        require_cosignatures(
            opened,
            self._require_cosigners,
            now=int(self._clock().timestamp()),
            max_age_seconds=self._max_cosignature_age,
        )

    # --- statements ---------------------------------------------------------------------------------

    def prove_statement(
        self,
        body: bytes,
        index: int,
        *,
        proof: audit_pb2.InclusionProof | None = None,
        note: str = "",
        consistency: audit_pb2.ConsistencyProof | None = None,
        leaf: bytes = b"",
        acting: bool = False,
    ) -> LeafContents:
        """Require an inclusion proof for ``body`` (a statement or event, as logged) at ``index``.

        With a ``proof`` and the ``note`` it leads to (a publish receipt's, with the hub's
        ``consistency`` proof from the trusted checkpoint and the ``leaf`` when it sent them),
        those are checked;
        otherwise the proof is fetched against the trusted checkpoint, after following the hub
        to a newer one when the trusted one does not cover ``index`` yet. When the client is
        ``acting`` on a statement it received, the checkpoint must also carry the profile's
        required cosignatures (:meth:`require_cosigned`). Raises
        :class:`~exchange.errors.VerificationError` naming the index when the statement is not
        in the verified log.
        """
        if proof is not None and note:
            signed = self.accept(
                note, cosign_spacing=COSIGN_SPACING_SECONDS, consistency=consistency
            )
            if proof.tree_size != signed.checkpoint.size or proof.index != index:
                raise VerificationError(
                    f"the hub's proof for log index {index} is for index {proof.index} in a "
                    f"tree of {proof.tree_size}, not under its checkpoint of size "
                    f"{signed.checkpoint.size}",
                    reason="INCLUSION_PROOF_INVALID",
                )
            hashes = list(proof.hashes)
        else:
            signed = self._covering(index)
            hashes = self._inclusion_proof(index, signed.checkpoint.size)
        contents = self._check_inclusion(signed.checkpoint, index, body, hashes, leaf=leaf)
        if acting:
            self.require_cosigned()
        return contents

    def _covering(self, index: int) -> SignedCheckpoint:
        trusted = self.trusted
        if trusted is None or trusted.checkpoint.size <= index:
            trusted = self.follow()
        if trusted.checkpoint.size <= index:
            raise VerificationError(
                f"log index {index} is not yet under a signed checkpoint (the latest has "
                f"{trusted.checkpoint.size} entries); try again in a moment",
                reason="NOT_YET_CHECKPOINTED",
            )
        return trusted

    def _inclusion_proof(self, index: int, size: int) -> list[bytes]:
        with hub_errors(self._target):
            proof = self._stub.GetInclusionProof(
                audit_pb2.GetInclusionProofRequest(index=index, tree_size=size),
                timeout=self._timeout,
            )
        if (proof.index, proof.tree_size) != (index, size):
            raise VerificationError(
                f"asked for the proof of log index {index} in a tree of {size}, the hub "
                f"answered for index {proof.index} in a tree of {proof.tree_size}",
                reason="INCLUSION_PROOF_INVALID",
            )
        return list(proof.hashes)

    def _leaf(self, index: int) -> bytes:
        with hub_errors(self._target):
            page = self._stub.GetLeaves(
                audit_pb2.GetLeavesRequest(start=index, end=index + 1), timeout=self._timeout
            )
        for leaf in page.leaves:
            if leaf.index == index:
                return bytes(leaf.data)
        raise VerificationError(
            f"the hub does not serve log entry {index}, though its checkpoint covers it",
            reason="LEAF_MISSING",
        )

    def _check_inclusion(
        self,
        checkpoint: Checkpoint,
        index: int,
        body: bytes,
        proof: Sequence[bytes],
        *,
        leaf: bytes = b"",
    ) -> LeafContents:
        """Check that ``body`` is the entry at ``index`` under ``checkpoint`` (verified): the
        leaf (``leaf`` as the hub sent it along, or fetched when empty) must be proven by
        ``proof`` and commit to ``body``."""
        data = leaf or self._leaf(index)
        try:
            contents = LeafContents.decode(data)
            verify_inclusion(
                leaf_hash(data),
                index,
                checkpoint.size,
                list(proof),
                checkpoint.root_hash,
            )
        except (VerificationError, InvalidInputError) as e:
            raise VerificationError(
                f"log entry {index} is not in the log of the verified checkpoint of size "
                f"{checkpoint.size}: {e.message}",
                reason="INCLUSION_PROOF_INVALID",
            ) from e
        if hashlib.sha256(body).digest() != contents.body_sha256:
            raise VerificationError(
                f"log entry {index} commits to other bytes than the statement the hub served",
                reason="BODY_MISMATCH",
            )
        return contents

    def audited_stream(
        self, call: grpc.CallIterator[alerts_pb2.SubscribeResponse]
    ) -> grpc.CallIterator[alerts_pb2.SubscribeResponse]:
        """Wrap a ``Subscribe`` stream so that heartbeats' checkpoints are verified on arrival
        and every event is proven in the log once a verified checkpoint covers it.

        The wrapper offers what a feed subscription uses of the call (iteration and
        ``cancel``), so it stands in for the call itself.
        """
        return cast("grpc.CallIterator[alerts_pb2.SubscribeResponse]", AuditedStream(call, self))

    def await_proof(self, event: alerts_pb2.FeedEvent) -> None:
        """Keep a delivered feed event until a verified checkpoint covers it (kept here, not in
        the stream, so that a reconnection does not forget it)."""
        self._awaiting_proof.append(event)

    def prove_awaiting(
        self, checkpoint: Checkpoint, proofs: Iterable[alerts_pb2.EventProof] = ()
    ) -> None:
        """Prove every kept event that ``checkpoint`` (verified) covers in the log, and keep the
        others. An event's logged body is the event without its log index; its proof is the
        one among ``proofs`` (sent along with the checkpoint) or, failing that, asked for."""
        given = {
            proof.inclusion.index: proof
            for proof in proofs
            if proof.inclusion.tree_size == checkpoint.size
        }
        waiting = []
        for event in self._awaiting_proof:
            if event.log_index >= checkpoint.size:
                waiting.append(event)
                continue
            logged = alerts_pb2.FeedEvent()
            logged.CopyFrom(event)
            logged.ClearField("log_index")
            body = encode(logged)
            proof = given.get(event.log_index)
            if proof is None:
                self.prove_statement(body, event.log_index)
            else:
                hashes = list(proof.inclusion.hashes)
                self._check_inclusion(
                    checkpoint, event.log_index, body, hashes, leaf=bytes(proof.leaf)
                )
        self._awaiting_proof = waiting

    # --- the whole log --------------------------------------------------------------------------------

    def _fetch(self, size: int, progress: Progress | None) -> _FetchedLog:
        fetched: list[audit_pb2.Leaf] = []
        start = 0
        while start < size:
            with hub_errors(self._target):
                page = self._stub.GetLeaves(
                    audit_pb2.GetLeavesRequest(start=start, end=min(size, start + LEAVES_PER_PAGE)),
                    timeout=self._timeout,
                )
            if not page.leaves:
                break
            fetched.extend(page.leaves)
            start = page.leaves[-1].index + 1
            if progress is not None:
                progress("leaves", min(start, size), size)
        bodies: dict[int, audit_pb2.EntryBody] = {}
        indices = [leaf.index for leaf in fetched]
        for offset in range(0, len(indices), BODIES_PER_REQUEST):
            chunk = indices[offset : offset + BODIES_PER_REQUEST]
            with hub_errors(self._target):
                response = self._stub.GetEntryBodies(
                    audit_pb2.GetEntryBodiesRequest(indices=chunk), timeout=self._timeout
                )
            bodies.update({body.index: body for body in response.bodies if body.present})
            if progress is not None:
                progress("bodies", offset + len(chunk), len(indices))
        return _FetchedLog(fetched, bodies)

    def verify(self, *, progress: Progress | None = None) -> VerificationReport:
        """Replay the whole log under the latest verified checkpoint; see :func:`verify_log`.

        The leaves must hash to the root of the checkpoint this client trusted before and to
        that of the latest one.

        Besides leaves, roots and the statements this agency may see, the feed the hub delivered
        is read back: an event of ours in the log that the feed skips is a ``FEED_GAP`` failure.
        """
        return self.verified_log(progress=progress).report

    def verified_log(self, *, progress: Progress | None = None) -> VerifiedLog:
        """:meth:`verify`, keeping what was verified: the checkpoint, leaves and bodies.

        Only a log whose report is ``ok`` may be read from (``exchange report`` computes its
        figures from the bodies, and from nothing else).
        """
        previous = self._checkpoints().trusted_note
        signed = self.follow()
        note = self._checkpoints().trusted_note
        assert note is not None
        notes = [note] if previous in (None, note) else [previous, note]
        log = self._fetch(signed.checkpoint.size, progress)
        signing_keys = {agency: list(keys) for agency, keys in self._signing_keys().items()}
        report = verify_log(
            log.leaves,
            notes,
            log_verifier=self.log_key,
            bodies=log.bodies,
            signing_keys=signing_keys,
            reader=self._agency_id,
            consistency_proof=self.consistency_proof,
        )
        if report.ok:
            gap = self._feed_gap(log, report.feed_sequence)
            if gap is not None:
                report = replace(report, failures=(gap,))
        return VerifiedLog(report, note, log.leaves, log.bodies)

    def _feed_gap(self, log: _FetchedLog, logged_sequence: int) -> LogFailure | None:
        """A failure if the hub's feed does not deliver every event of ours that is logged."""
        indices: dict[int, int] = {}
        for leaf in log.leaves:
            body = log.bodies.get(leaf.index)
            if leaf.entry_type == leaves.FEED_EVENT and body is not None:
                event = parse_canonical(alerts_pb2.FeedEvent, bytes(body.body), what="feed event")
                indices[event.sequence] = leaf.index
        received = 0
        try:
            while True:
                with hub_errors(self._target):
                    page = self._alerts_stub.ListEvents(
                        alerts_pb2.ListEventsRequest(after=received, limit=EVENTS_PER_PAGE),
                        timeout=self._timeout,
                    )
                fresh = [event for event in page.events if event.sequence > received]
                if not fresh:
                    break
                for event in fresh:
                    check_sequence(received, event.sequence)
                    received = event.sequence
            if logged_sequence > received:
                raise FeedGapError(
                    f"feed event {received + 1} is in the log but the hub's feed delivers "
                    f"events only up to {received}",
                    missing_sequence=received + 1,
                )
        except FeedGapError as e:
            return LogFailure("FEED_GAP", e.message, index=indices.get(e.missing_sequence))
        return None

    def history(self, alert_id: str) -> list[HistoryEntry]:
        """Every entry about ``alert_id`` this agency may see, oldest first.

        Each body is checked against its leaf; a statement's signature is verified under its
        signer's keys (``signed_by``), and entries no agency signed are marked as the hub's.
        Entries are recognised by their content (a statement or event naming the alert) or, for
        those that name it only through the log (a decision names the request), by the leaf's
        salted references to one of the alert's versions.
        """
        signed = self.follow()
        log = self._fetch(signed.checkpoint.size, None)
        signing_keys = self._signing_keys()
        contents: dict[int, LeafContents] = {}
        for leaf in log.leaves:
            body = log.bodies.get(leaf.index)
            if body is None:
                continue
            decoded = LeafContents.decode(bytes(leaf.data))
            if hashlib.sha256(bytes(body.body)).digest() != decoded.body_sha256:
                raise VerificationError(
                    f"log entry {leaf.index}: the body the hub serves does not hash to its leaf",
                    reason="BODY_MISMATCH",
                )
            contents[leaf.index] = decoded
        parsed = {
            index: _parse_entry(contents[index].entry_type, bytes(log.bodies[index].body))
            for index in contents
        }
        versions = {
            (str(getattr(message, "originator", "")), str(getattr(message, "version", "")))
            for message in (p.message for p in parsed.values())
            if message is not None and getattr(message, "alert_id", None) == alert_id
        }
        entries = []
        for index, entry in parsed.items():
            leaf_contents = contents[index]
            salt = bytes(log.bodies[index].salt)
            message = entry.message
            about = message is not None and getattr(message, "alert_id", None) == alert_id
            logged_version = 0
            if not about and leaf_contents.entry_type != leaves.FEED_EVENT:
                for originator, version in versions:
                    if (
                        references_commitment(salt, [originator, alert_id, version])
                        == leaf_contents.references_commitment
                    ):
                        about, logged_version = True, int(version)
                        break
            if about:
                history_entry = _history_entry(
                    index, leaf_contents, entry, signing_keys, self._agency_id
                )
                if not history_entry.version:
                    history_entry = replace(history_entry, version=logged_version)
                entries.append(history_entry)
        return sorted(entries, key=lambda e: e.index)

    def compare(self, partner_note: str) -> Comparison:
        """Prove a partner's checkpoint (obtained out of band) consistent with our own view.

        Our view is first brought up to the hub's latest checkpoint. Raises
        :class:`~exchange.audit.errors.LogInconsistentError` naming both sizes and roots if the
        two cannot both be true (a fork: the hub showed the partner another history), and
        :class:`~exchange.errors.VerificationError` if the hub will not prove the partner's
        checkpoint at all (it is ahead of what the hub shows us).
        """
        theirs = open_checkpoint(
            partner_note,
            self.log_key,
            cosigners=self._witnesses(),
            origin=self.log_key.name,
        )
        ours = self.follow()
        if theirs.checkpoint.size > ours.checkpoint.size:
            raise VerificationError(
                f"the partner's checkpoint has {theirs.checkpoint.size} entries, the hub shows "
                f"us only {ours.checkpoint.size}: it withholds from us a log the partner saw",
                reason="CHECKPOINT_WITHHELD",
            )
        proof = self.consistency_proof(theirs.checkpoint.size, ours.checkpoint.size)
        check_consistency(ours.checkpoint, theirs.checkpoint, proof)
        return Comparison(ours.checkpoint, theirs.checkpoint, tuple(sorted(theirs.cosignatures)))


# --- subscriptions ---------------------------------------------------------------------------------------


class AuditedStream(Iterator[alerts_pb2.SubscribeResponse]):
    """A ``Subscribe`` stream whose checkpoints and events are verified as they pass.

    A heartbeat's checkpoint is accepted (consistency proof, saved, cosigned) before the
    heartbeat is handed on; events wait until a verified checkpoint covers them, then each must
    be proven in the log (a feed event's logged body is the event without its log index).
    """

    def __init__(
        self, call: grpc.CallIterator[alerts_pb2.SubscribeResponse], auditor: Auditor
    ) -> None:
        self._call = call
        self._responses = iter(call)
        self._auditor = auditor

    def __iter__(self) -> AuditedStream:
        return self

    def __next__(self) -> alerts_pb2.SubscribeResponse:
        response = next(self._responses)
        kind = response.WhichOneof("message")
        if kind == "event":
            self._auditor.await_proof(response.event)
        elif kind == "heartbeat" and response.heartbeat.checkpoint:
            heartbeat = response.heartbeat
            signed = self._auditor.accept(
                heartbeat.checkpoint,
                cosign_spacing=COSIGN_SPACING_SECONDS,
                consistency=heartbeat.consistency if heartbeat.HasField("consistency") else None,
            )
            self._auditor.prove_awaiting(signed.checkpoint, heartbeat.event_proofs)
        return response

    def cancel(self) -> None:
        """Cancel the underlying call."""
        self._call.cancel()  # type: ignore[no-untyped-call]


# --- history entries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ParsedEntry:
    entry_type: str
    envelope: Envelope | None = None
    message: Message | None = None


def _parse_entry(entry_type: str, body: bytes) -> _ParsedEntry:
    """The statement or event inside a body, unverified (the signature is checked later)."""
    if entry_type == leaves.FEED_EVENT:
        return _ParsedEntry(
            entry_type, message=parse_canonical(alerts_pb2.FeedEvent, body, what="feed event")
        )
    if entry_type == leaves.GRANT_DELIVERED:
        return _ParsedEntry(
            entry_type, message=parse_canonical(statements_pb2.Grant, body, what="grant")
        )
    message_type = _STATEMENT_MESSAGES.get(entry_type)
    if message_type is None:
        return _ParsedEntry(entry_type)
    envelope = envelope_from_proto(
        parse_canonical(statements_pb2.Envelope, body, what=f"{entry_type} statement")
    )
    message = parse_canonical(message_type, envelope.payload, what=f"{entry_type} statement")
    return _ParsedEntry(entry_type, envelope=envelope, message=message)


def _signer(
    entry_type: str, envelope: Envelope, signing_keys: Mapping[str, Sequence[VerifyKey]]
) -> str:
    payload_type = PAYLOAD_TYPES[
        "alert_manifest" if entry_type == leaves.ALERT_PUBLISHED else entry_type
    ]
    for agency, keys in signing_keys.items():
        try:
            verify_envelope(
                envelope, expected_type=payload_type, keys={key.key_id: key for key in keys}
            )
        except UnknownKeyError:
            continue
        return agency
    raise UnknownKeyError(f"the {entry_type} statement is signed by no key of a known agency")


def _history_entry(
    index: int,
    contents: LeafContents,
    entry: _ParsedEntry,
    signing_keys: Mapping[str, Sequence[VerifyKey]],
    reader: str,
) -> HistoryEntry:
    message = entry.message
    kind = _HISTORY_KINDS.get(contents.entry_type, contents.entry_type)
    version = int(getattr(message, "version", 0) or 0)
    item_id = str(getattr(message, "item_id", "") or "")
    if entry.envelope is not None:
        signer = _signer(contents.entry_type, entry.envelope, signing_keys)
        details = [f"item {item_id}"] if item_id else []
        if isinstance(message, statements_pb2.ReleaseDecision | statements_pb2.Retraction):
            details.append(message.reason)
        return HistoryEntry(
            index=index,
            logged_at=contents.logged_at,
            entry_type=contents.entry_type,
            kind=kind,
            signed_by=signer,
            version=version,
            agency=signer,
            detail="; ".join(d for d in details if d),
        )
    if isinstance(message, alerts_pb2.FeedEvent):
        event_kind = alerts_pb2.FeedEvent.Kind.Name(message.kind)
        detail = f"{event_kind} (feed event {message.sequence} of {reader})"
        if item_id:
            detail += f", item {item_id}"
        return HistoryEntry(
            index=index,
            logged_at=contents.logged_at,
            entry_type=contents.entry_type,
            kind=kind,
            signed_by="",
            version=version,
            agency=reader,
            detail=detail,
        )
    if isinstance(message, statements_pb2.Grant):
        return HistoryEntry(
            index=index,
            logged_at=contents.logged_at,
            entry_type=contents.entry_type,
            kind=kind,
            signed_by="",
            agency=message.recipient,
            detail=f"key of item {message.item_id} delivered to {message.recipient}",
        )
    return HistoryEntry(
        index=index,
        logged_at=contents.logged_at,
        entry_type=contents.entry_type,
        kind=kind,
        signed_by="",
    )
