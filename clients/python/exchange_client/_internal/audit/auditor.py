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

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TypeVar, cast

import grpc

from exchange.audit import leaves
from exchange.audit.errors import FeedGapError, LogInconsistentError
from exchange.audit.leaves import LeafContents
from exchange.audit.verify import (
    CheckpointVerifier,
    LogFailure,
    VerificationReport,
    check_consistency,
    require_cosignatures,
    verify_log,
    witness_verifier,
)
from exchange.bulk import gc_paused
from exchange.config.profile import DEFAULT_MAX_COSIGNATURE_AGE_SECONDS
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
from exchange.statements.agency_keys import AgencyKeys
from exchange.statements.codec import (
    parse_canonical,
)
from exchange.statements.key_compromise import Compromise
from exchange.v1 import alerts_pb2, audit_pb2
from exchange_client._internal.audit.checkpoint_store import CheckpointStore
from exchange_client._internal.audit.history import history_entries
from exchange_client._internal.audit.proofs import check_inclusion, checkpoint_text, logged_event
from exchange_client._internal.audit.results import (
    CheckpointSummary,
    Comparison,
    CosignatureLine,
    HistoryEntry,
)
from exchange_client._internal.audit.signature_workers import verify_in_processes
from exchange_client._internal.audit.stream import COSIGN_SPACING_SECONDS, AuditedStream
from exchange_client._internal.calls import (
    Rpc,
    SharedLock,
    Steps,
    acquire,
    call,
    run_blocking,
    together,
)
from exchange_client._internal.feed import check_sequence
from exchange_client._internal.transport import AsyncTransport, Transport

T = TypeVar("T")


def _needs_proof(
    trusted: Checkpoint, new: SignedCheckpoint, given: audit_pb2.ConsistencyProof | None
) -> bool:
    """Whether linking ``new`` to ``trusted`` asks the hub for a proof (see
    :meth:`Auditor._proof_to_trusted`)."""
    size = new.checkpoint.size
    if given is not None and (given.from_size, given.to_size) == (trusted.size, size):
        return False
    return min(trusted.size, size) != 0 and trusted.size != size


class _ProofNeeded(Exception):
    """Raised out of :func:`verify_log` for a consistency proof not fetched yet."""

    def __init__(self, first: int, second: int) -> None:
        super().__init__(first, second)
        self.sizes = (first, second)


LEAVES_PER_PAGE = 10_000
"""Leaves asked for per ``GetLeaves`` call (a hub may answer fewer: the client pages on from the
last leaf it got)."""

BODIES_PER_REQUEST = 1000
"""Indices per ``GetEntryBodies`` call (the hub's limit)."""

BODIES_CHECKED_IN_PROCESSES = 5_000
"""From this many readable bodies on, ``verify`` checks their signatures in worker processes
(one per CPU, :func:`~exchange_client._internal.audit.signature_workers.verify_in_processes`): below it, starting
the processes costs more than it saves."""

FETCH_WINDOW = LEAVES_PER_PAGE
"""Leaves fetched side by side with their bodies (one page of leaves, and the body requests
for the same indices), before the next window is asked for."""

EVENTS_PER_PAGE = 1000
"""Feed events per ``ListEvents`` call when ``verify`` reads back what the hub delivered."""

Progress = Callable[[str, int, int], None]
"""Called as ``progress(phase, done, total)`` while the log is fetched (``leaves``, ``bodies``)."""


@dataclass(frozen=True)
class _FetchedLog:
    """The leaves under one checkpoint and the bodies this agency may see, by index."""

    leaves: list[audit_pb2.Leaf]
    bodies: dict[int, audit_pb2.EntryBody]


@dataclass(frozen=True)
class VerifiedLog:
    """A replay of the whole log (:meth:`Auditor.verified_log`) and what it replayed."""

    report: VerificationReport
    checkpoint_note: str
    """The checkpoint the log was verified at, as the hub signed it."""
    leaves: list[audit_pb2.Leaf]
    bodies: dict[int, audit_pb2.EntryBody]
    """The bodies this agency may read, by log index."""


class Auditor:
    """Checkpoints, proofs and cosignatures for one client; see the module documentation.

    ``partner_keys`` returns every agency's latest key statement verified against this profile's
    CAs (for witness keys); ``signing_keys`` every agency's verify keys (for statements).

    Safe to share between threads: the trusted checkpoint, the events awaiting proof and the
    cosignature spacing change only under one lock, which is never held across a call to the
    hub. A checkpoint is proven against the trusted one as it was read before the call; if
    another thread moved the trusted checkpoint meanwhile, the proof is asked for again against
    the new one, so a stale proof never decides and the trusted checkpoint only moves forward.
    """

    def __init__(
        self,
        transport: Transport | AsyncTransport,
        *,
        agency_id: str,
        state_dir: Path,
        checkpoint_verifier_key: str,
        witness_key: SigningKey | None,
        clock: Callable[[], datetime],
        partner_keys: Callable[[], Steps[Mapping[str, AgencyKeys]]],
        signing_keys: Callable[[], Steps[Mapping[str, Sequence[VerifyKey]]]],
        require_cosigners: Sequence[str] = (),
        max_cosignature_age_seconds: int = DEFAULT_MAX_COSIGNATURE_AGE_SECONDS,
        compromised_keys: Callable[[], Steps[Mapping[str, Compromise]]] | None = None,
    ) -> None:
        self._transport = transport
        self._compromised_keys = compromised_keys
        self._agency_id = agency_id
        self._store = CheckpointStore(state_dir)
        self._verifier_key = checkpoint_verifier_key
        self._log_key: NoteVerifier | None = None
        self._witness_key = witness_key
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
        self._lock = threading.RLock()
        # Held while a consistency proof is asked for (see accept_steps).
        self._proof_lock = SharedLock()

    # --- checkpoints ------------------------------------------------------------------------------

    @property
    def log_key(self) -> NoteVerifier:
        """The hub's checkpoint key, from the profile (parsed once; a publish needs it twice)."""
        if self._log_key is not None:
            return self._log_key
        try:
            self._log_key = NoteVerifier.from_string(self._verifier_key)
            return self._log_key
        except ExchangeError as e:
            raise ConfigurationError(
                f"the profile's checkpoint verifier key is unusable ({e.message}); copy it from "
                "the hub's `exchange-hub checkpoint-key`"
            ) from e

    def _checkpoints(self) -> CheckpointVerifier:
        with self._lock:
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

    def _run(self, steps: Steps[T]) -> T:
        return run_blocking(steps, self._transport)

    def follow(self) -> SignedCheckpoint:
        """Fetch the hub's latest checkpoint and verify it against the trusted one."""
        return self._run(self.follow_steps())

    def follow_steps(self) -> Steps[SignedCheckpoint]:
        """:meth:`follow` as steps (see :mod:`~exchange_client._internal.calls`)."""
        view = yield from call("audit", "GetCheckpoint", audit_pb2.GetCheckpointRequest())
        return (yield from self.accept_steps(view.note))

    def accept(
        self,
        note: str,
        *,
        cosign_spacing: float = 0.0,
        consistency: audit_pb2.ConsistencyProof | None = None,
    ) -> SignedCheckpoint:
        """:meth:`accept_steps`, run over the blocking transport."""
        return self._run(
            self.accept_steps(note, cosign_spacing=cosign_spacing, consistency=consistency)
        )

    def accept_steps(
        self,
        note: str,
        *,
        cosign_spacing: float = 0.0,
        consistency: audit_pb2.ConsistencyProof | None = None,
    ) -> Steps[SignedCheckpoint]:
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
        signed = verifier.open(note)  # opened once: accept() below reuses it
        fetching = False  # holding the proof lock
        try:
            while True:
                with self._lock:
                    before = verifier.trusted
                # The proof is asked for without the lock (other threads go on meanwhile) ...
                proof: list[bytes] = []
                if before is not None:
                    if not fetching and _needs_proof(before.checkpoint, signed, consistency):
                        # ... one thread or task at a time: a proof asked for while another
                        # thread's answer moves the trusted checkpoint on would be asked
                        # for again; after the wait this one may need none.
                        yield from acquire(self._proof_lock)
                        fetching = True
                        continue
                    proof = yield from self._proof_to_trusted(
                        before.checkpoint, signed.checkpoint, consistency
                    )
                with self._lock:
                    # ... and decides only if it still runs from the trusted checkpoint: when
                    # another thread has moved that on, it is asked for again from the new one.
                    if verifier.trusted is not before:
                        continue
                    accepted = verifier.accept(note, proof)
                    grown = before is None or accepted.checkpoint.size > before.checkpoint.size
                    keep = verifier.trusted_note == note and verifier.trusted is not None
                    if keep and grown:
                        self._uncosigned = accepted.checkpoint
                break
        finally:
            if fetching:
                self._proof_lock.release()
        if keep:
            # Saved outside the lock: the store keeps the larger of two saves (so it only moves
            # forward), and threads and tasks saving side by side share the journal's flush.
            # It is durable before this returns, before anything is proven under it.
            yield from self._store.save_steps(accepted, note, grown=grown)
        yield from self._cosign_when_due(cosign_spacing)
        return accepted

    def _cosign_when_due(self, spacing: float) -> Steps[None]:
        """Cosign the newest verified checkpoint unless one went out less than ``spacing`` ago."""
        with self._lock:
            if self._uncosigned is None:
                return
            now = time.monotonic()
            if self._last_cosigned is not None and now - self._last_cosigned < spacing:
                return
            checkpoint, self._uncosigned = self._uncosigned, None
            self._last_cosigned = now
        yield from self._cosign(checkpoint)

    def _proof_to_trusted(
        self, trusted: Checkpoint, new: Checkpoint, given: audit_pb2.ConsistencyProof | None
    ) -> Steps[list[bytes]]:
        """The consistency proof between the trusted checkpoint and a new one: ``given``, if it
        is the proof from the one to the other, else the hub's answer when asked.

        A hub that signs a checkpoint smaller than one it signed before and cannot prove it a
        prefix (its latest is now smaller: the log was rolled back) has rewritten its history.
        """
        if given is not None and (given.from_size, given.to_size) == (trusted.size, new.size):
            return list(given.hashes)
        try:
            return (yield from self.consistency_proof_steps(trusted.size, new.size))
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
        return self._run(self.consistency_proof_steps(first, second))

    def consistency_proof_steps(self, first: int, second: int) -> Steps[list[bytes]]:
        """:meth:`consistency_proof` as steps."""
        smaller, larger = sorted((first, second))
        if smaller == 0 or smaller == larger:
            return []
        proof = yield from call(
            "audit",
            "GetConsistencyProof",
            audit_pb2.GetConsistencyProofRequest(from_size=smaller, to_size=larger),
        )
        return list(proof.hashes)

    def _cosign(self, checkpoint: Checkpoint) -> Steps[None]:
        if self._witness_key is None:
            return
        text = checkpoint.to_text()
        signer = CosignatureSigner(self._agency_id, self._witness_key.native)
        line = cosign(text, signer, int(self._clock().timestamp()))
        yield from call(
            "audit",
            "SubmitCosignature",
            audit_pb2.SubmitCosignatureRequest(checkpoint=text, cosignature=line),
        )
        with self._lock:
            self._own_cosignatures[text] = line

    def _witnesses(self) -> Steps[list[CosignatureVerifier]]:
        witnesses = []
        partners = yield from self._partner_keys()
        for keys in partners.values():
            try:
                witnesses.append(witness_verifier(keys))
            except UnknownKeyError:
                continue
        return witnesses

    def summary(self) -> CheckpointSummary:
        """The latest checkpoint, verified, with the cosignatures on it (ours included)."""
        return self._run(self.summary_steps())

    def summary_steps(self) -> Steps[CheckpointSummary]:
        """:meth:`summary` as steps."""
        yield from self.follow_steps()
        note = self._checkpoints().trusted_note
        assert note is not None
        own = self._own_cosignatures.get(checkpoint_text(note))
        if own is not None:
            note = append_signatures(note, [own])
        witnesses = yield from self._witnesses()
        signed = open_checkpoint(note, self.log_key, cosigners=witnesses)
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
        """:meth:`require_cosigned_steps`, run over the blocking transport."""
        self._run(self.require_cosigned_steps())

    def require_cosigned_steps(self) -> Steps[None]:
        """Check the profile's required cosigners on the trusted checkpoint; a no-op if none.

        A cosignature may have arrived since the checkpoint was fetched, so on a first failure
        the hub's latest checkpoint is followed and checked once more. Raises
        :class:`~exchange.errors.VerificationError` naming the first agency whose cosignature
        is missing or older than the profile allows.
        """
        if not self._require_cosigners:
            return
        try:
            yield from self._check_cosigners()
        except VerificationError:
            yield from self.follow_steps()
            yield from self._check_cosigners()

    def _check_cosigners(self) -> Steps[None]:
        partners = yield from self._partner_keys()
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
            yield from self.follow_steps()
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
        """:meth:`prove_statement_steps`, run over the blocking transport."""
        return self._run(
            self.prove_statement_steps(
                body,
                index,
                proof=proof,
                note=note,
                consistency=consistency,
                leaf=leaf,
                acting=acting,
            )
        )

    def prove_statement_steps(
        self,
        body: bytes,
        index: int,
        *,
        proof: audit_pb2.InclusionProof | None = None,
        note: str = "",
        consistency: audit_pb2.ConsistencyProof | None = None,
        leaf: bytes = b"",
        acting: bool = False,
    ) -> Steps[LeafContents]:
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
            signed = yield from self.accept_steps(
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
            signed = yield from self._covering(index)
            hashes = yield from self._inclusion_proof(index, signed.checkpoint.size)
        contents = yield from self._check_inclusion(
            signed.checkpoint, index, body, hashes, leaf=leaf
        )
        if acting:
            yield from self.require_cosigned_steps()
        return contents

    def _covering(self, index: int) -> Steps[SignedCheckpoint]:
        trusted = self.trusted
        if trusted is None or trusted.checkpoint.size <= index:
            trusted = yield from self.follow_steps()
        if trusted.checkpoint.size <= index:
            raise VerificationError(
                f"log index {index} is not yet under a signed checkpoint (the latest has "
                f"{trusted.checkpoint.size} entries); try again in a moment",
                reason="NOT_YET_CHECKPOINTED",
            )
        return trusted

    def _inclusion_proof(self, index: int, size: int) -> Steps[list[bytes]]:
        proof = yield from call(
            "audit",
            "GetInclusionProof",
            audit_pb2.GetInclusionProofRequest(index=index, tree_size=size),
        )
        if (proof.index, proof.tree_size) != (index, size):
            raise VerificationError(
                f"asked for the proof of log index {index} in a tree of {size}, the hub "
                f"answered for index {proof.index} in a tree of {proof.tree_size}",
                reason="INCLUSION_PROOF_INVALID",
            )
        return list(proof.hashes)

    def _leaf(self, index: int) -> Steps[bytes]:
        page = yield from call(
            "audit", "GetLeaves", audit_pb2.GetLeavesRequest(start=index, end=index + 1)
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
    ) -> Steps[LeafContents]:
        """Check that ``body`` is the entry at ``index`` under ``checkpoint`` (verified): the
        leaf (``leaf`` as the hub sent it along, or fetched when empty) must be proven by
        ``proof`` and commit to ``body``."""
        if not leaf:
            leaf = yield from self._leaf(index)
        return check_inclusion(checkpoint, index, body, proof, leaf)

    def audited_stream(
        self, call: grpc.CallIterator[alerts_pb2.SubscribeResponse]
    ) -> grpc.CallIterator[alerts_pb2.SubscribeResponse]:
        """Wrap a ``Subscribe`` stream so that heartbeats' checkpoints are verified on arrival
        and every event is proven in the log once a verified checkpoint covers it.

        The wrapper offers what a feed subscription uses of the call (iteration and
        ``cancel``), so it stands in for the call itself.
        """
        return cast("grpc.CallIterator[alerts_pb2.SubscribeResponse]", AuditedStream(call, self))

    def audit_response(self, response: alerts_pb2.SubscribeResponse) -> None:
        """:meth:`audit_response_steps`, run over the blocking transport."""
        self._run(self.audit_response_steps(response))

    def audit_response_steps(self, response: alerts_pb2.SubscribeResponse) -> Steps[None]:
        """Verify one response of a feed stream as it passes: a heartbeat's checkpoint is
        accepted (consistency proof, saved, cosigned) and the events it covers proven; an event
        waits until a verified checkpoint covers it (a feed event's logged body is the event
        without its log index)."""
        kind = response.WhichOneof("message")
        if kind == "event":
            self.await_proof(response.event)
        elif kind == "heartbeat" and response.heartbeat.checkpoint:
            heartbeat = response.heartbeat
            signed = yield from self.accept_steps(
                heartbeat.checkpoint,
                cosign_spacing=COSIGN_SPACING_SECONDS,
                consistency=heartbeat.consistency if heartbeat.HasField("consistency") else None,
            )
            yield from self.prove_awaiting_steps(signed.checkpoint, heartbeat.event_proofs)

    def await_proof(self, event: alerts_pb2.FeedEvent) -> None:
        """Keep a delivered feed event until a verified checkpoint covers it (kept here, not in
        the stream, so that a reconnection does not forget it)."""
        with self._lock:
            self._awaiting_proof.append(event)

    def prove_awaiting(
        self, checkpoint: Checkpoint, proofs: Iterable[alerts_pb2.EventProof] = ()
    ) -> None:
        """:meth:`prove_awaiting_steps`, run over the blocking transport."""
        self._run(self.prove_awaiting_steps(checkpoint, proofs))

    def prove_awaiting_steps(
        self, checkpoint: Checkpoint, proofs: Iterable[alerts_pb2.EventProof] = ()
    ) -> Steps[None]:
        """Prove every kept event that ``checkpoint`` (verified) covers in the log, and keep the
        others. An event's logged body is the event without its log index; its proof is the
        one among ``proofs`` (sent along with the checkpoint) or, failing that, asked for."""
        given = {
            proof.inclusion.index: proof
            for proof in proofs
            if proof.inclusion.tree_size == checkpoint.size
        }
        with self._lock:
            covered = [e for e in self._awaiting_proof if e.log_index < checkpoint.size]
            self._awaiting_proof = [
                e for e in self._awaiting_proof if e.log_index >= checkpoint.size
            ]
        for event in covered:
            body = logged_event(event)
            proof = given.get(event.log_index)
            if proof is None:
                yield from self.prove_statement_steps(body, event.log_index)
            else:
                hashes = list(proof.inclusion.hashes)
                yield from self._check_inclusion(
                    checkpoint, event.log_index, body, hashes, leaf=bytes(proof.leaf)
                )

    # --- the whole log --------------------------------------------------------------------------------

    def _fetch(self, size: int, progress: Progress | None) -> Steps[_FetchedLog]:
        """The leaves under a checkpoint of ``size`` and the bodies this agency may read.

        A window of the log at a time, its leaves and bodies asked for side by side: the hub
        answers a whole page when it has one, and the round trips then overlap. A page that
        comes back short (a hub with a smaller page, or one serving fewer leaves than its
        checkpoint signs) hands over to :meth:`_fetch_paged` from that window on, which pages
        on from the last leaf served, one call at a time, as the hub leads.
        """
        fetched: list[audit_pb2.Leaf] = []
        bodies: dict[int, audit_pb2.EntryBody] = {}
        start = 0
        while start < size:
            end = min(size, start + FETCH_WINDOW)
            pages = [(s, min(end, s + LEAVES_PER_PAGE)) for s in range(start, end, LEAVES_PER_PAGE)]
            chunks = [
                list(range(s, min(end, s + BODIES_PER_REQUEST)))
                for s in range(start, end, BODIES_PER_REQUEST)
            ]
            answers = yield from together(
                [
                    Rpc("audit", "GetLeaves", audit_pb2.GetLeavesRequest(start=s, end=e))
                    for s, e in pages
                ]
                + [
                    Rpc("audit", "GetEntryBodies", audit_pb2.GetEntryBodiesRequest(indices=chunk))
                    for chunk in chunks
                ]
            )
            served = answers[: len(pages)]
            if not all(
                page.leaves and page.leaves[-1].index + 1 == e
                for page, (_, e) in zip(served, pages, strict=True)
            ):
                rest = yield from self._fetch_paged(start, size, progress)
                fetched.extend(rest.leaves)
                bodies.update(rest.bodies)
                break
            for page in served:
                fetched.extend(page.leaves)
            for response in answers[len(pages) :]:
                bodies.update({body.index: body for body in response.bodies if body.present})
            start = end
            if progress is not None:
                progress("leaves", start, size)
                progress("bodies", start, size)
        return _FetchedLog(fetched, bodies)

    def _fetch_paged(self, start: int, size: int, progress: Progress | None) -> Steps[_FetchedLog]:
        """The leaves from ``start`` paged on from the last one served, then their bodies."""
        fetched: list[audit_pb2.Leaf] = []
        while start < size:
            page = yield from call(
                "audit",
                "GetLeaves",
                audit_pb2.GetLeavesRequest(start=start, end=min(size, start + LEAVES_PER_PAGE)),
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
            response = yield from call(
                "audit", "GetEntryBodies", audit_pb2.GetEntryBodiesRequest(indices=chunk)
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

    def verify_steps(self, *, progress: Progress | None = None) -> Steps[VerificationReport]:
        """:meth:`verify` as steps."""
        verified = yield from self.verified_log_steps(progress=progress)
        return verified.report

    def verified_log(self, *, progress: Progress | None = None) -> VerifiedLog:
        """:meth:`verify`, keeping what was verified: the checkpoint, leaves and bodies.

        Only a log whose report is ``ok`` may be read from (``exchange report`` computes its
        figures from the bodies, and from nothing else).
        """
        return self._run(self.verified_log_steps(progress=progress))

    def verified_log_steps(self, *, progress: Progress | None = None) -> Steps[VerifiedLog]:
        """:meth:`verified_log` as steps.

        :func:`~exchange.audit.verify.verify_log` asks for consistency proofs only to narrow
        down a root that does not match; it is a pure function, so each proof it asks for is
        fetched as a step and the replay run again with the proofs (or the hub's refusals)
        fetched so far, until it needs none it lacks.
        """
        # The cyclic collector is paused throughout (reference counting still frees): the
        # leaves and bodies held are hundreds of thousands of objects, none in a cycle, which
        # its passes over the older generations scanned again and again.
        with gc_paused():
            verified = yield from self._verified_log_steps(progress)
        return verified

    def _verified_log_steps(self, progress: Progress | None) -> Steps[VerifiedLog]:
        previous = self._checkpoints().trusted_note
        signed = yield from self.follow_steps()
        note = self._checkpoints().trusted_note
        assert note is not None
        notes = [note] if previous in (None, note) else [previous, note]
        log = yield from self._fetch(signed.checkpoint.size, progress)
        keys = yield from self._signing_keys()
        signing_keys = {agency: list(agency_keys) for agency, agency_keys in keys.items()}
        compromised: Mapping[str, Compromise] = {}
        if self._compromised_keys is not None:
            compromised = yield from self._compromised_keys()
        answers: dict[tuple[int, int], list[bytes] | Exception] = {}

        def proof_of(first: int, second: int) -> list[bytes]:
            answer = answers.get((first, second))
            if answer is None:
                raise _ProofNeeded(first, second)
            if isinstance(answer, Exception):
                raise answer
            return answer

        while True:
            try:
                report = verify_log(
                    log.leaves,
                    notes,
                    log_verifier=self.log_key,
                    bodies=log.bodies,
                    signing_keys=signing_keys,
                    reader=self._agency_id,
                    consistency_proof=proof_of,
                    compromised=compromised,
                    check_signatures=(
                        verify_in_processes
                        if len(log.bodies) >= BODIES_CHECKED_IN_PROCESSES
                        else None
                    ),
                )
                break
            except _ProofNeeded as needed:
                try:
                    answers[needed.sizes] = yield from self.consistency_proof_steps(*needed.sizes)
                except ExchangeError as e:
                    answers[needed.sizes] = e
        if report.ok:
            gap = yield from self._feed_gap(log, report.feed_sequence)
            if gap is not None:
                report = replace(report, failures=(gap,))
        return VerifiedLog(report, note, log.leaves, log.bodies)

    def _feed_gap(self, log: _FetchedLog, logged_sequence: int) -> Steps[LogFailure | None]:
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
                page = yield from call(
                    "alerts",
                    "ListEvents",
                    alerts_pb2.ListEventsRequest(after=received, limit=EVENTS_PER_PAGE),
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
        return self._run(self.history_steps(alert_id))

    def history_steps(self, alert_id: str) -> Steps[list[HistoryEntry]]:
        """:meth:`history` as steps."""
        signed = yield from self.follow_steps()
        log = yield from self._fetch(signed.checkpoint.size, None)
        keys = yield from self._signing_keys()
        return history_entries(log.leaves, log.bodies, alert_id, keys, reader=self._agency_id)

    def compare(self, partner_note: str) -> Comparison:
        """Prove a partner's checkpoint (obtained out of band) consistent with our own view.

        Our view is first brought up to the hub's latest checkpoint. Raises
        :class:`~exchange.audit.errors.LogInconsistentError` naming both sizes and roots if the
        two cannot both be true (a fork: the hub showed the partner another history), and
        :class:`~exchange.errors.VerificationError` if the hub will not prove the partner's
        checkpoint at all (it is ahead of what the hub shows us).
        """
        return self._run(self.compare_steps(partner_note))

    def compare_steps(self, partner_note: str) -> Steps[Comparison]:
        """:meth:`compare` as steps."""
        witnesses = yield from self._witnesses()
        theirs = open_checkpoint(
            partner_note, self.log_key, cosigners=witnesses, origin=self.log_key.name
        )
        ours = yield from self.follow_steps()
        if theirs.checkpoint.size > ours.checkpoint.size:
            raise VerificationError(
                f"the partner's checkpoint has {theirs.checkpoint.size} entries, the hub shows "
                f"us only {ours.checkpoint.size}: it withholds from us a log the partner saw",
                reason="CHECKPOINT_WITHHELD",
            )
        proof = yield from self.consistency_proof_steps(
            theirs.checkpoint.size, ours.checkpoint.size
        )
        check_consistency(ours.checkpoint, theirs.checkpoint, proof)
        return Comparison(ours.checkpoint, theirs.checkpoint, tuple(sorted(theirs.cosignatures)))
