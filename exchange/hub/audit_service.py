"""The hub's side of the audit log: the checkpointer thread and the AuditService servicer.

The :class:`Checkpointer` hashes committed leaves into the stored tree and signs a checkpoint
after each batch of appends. Publishes are checkpointed in their own group commit: after the
batch's appends and before its one commit, :meth:`Checkpointer.sign_in` hashes the new leaves and
signs, so a batch costs one durable commit and every receipt leaves with a proof at once (a
checkpoint that fails there is left to the thread, and the publishes stand). A publish that
finds no checkpoint covering its leaf asks for one (concurrent ones share it); every other
append — release statements, sweeper events, other replicas' appends — is noticed by its
thread's cheap poll of the log's size, at most :data:`POLL_SECONDS` apart, and the thread
signs at least once per checkpoint interval. An idle log keeps its latest checkpoint (signing
the same size again would give the same note). Tests call :meth:`Checkpointer.checkpoint_now`
to need no sleeps.

:class:`AuditServicer` serves checkpoints, proofs, leaves and (to entitled agencies) bodies, and
stores agencies' cosignatures. Body requests answer ``present = false`` for an entry the caller is
not entitled to, for a purged body and for an index past the log alike, so the answer says
nothing about entries the caller may not see.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import grpc
from cryptography import x509
from sqlalchemy import Connection, select
from sqlalchemy.exc import SQLAlchemyError

from exchange.audit.checkpoints import (
    StoredCheckpoint,
    add_cosignature,
    latest_checkpoint,
    sign_checkpoint,
)
from exchange.audit.log import (
    entitled_bodies,
    feed_event_index,
    index_of_leaf,
    leaves_at,
    read_leaves,
)
from exchange.audit.tree import DEFAULT_BATCH_SIZE, StoredTree, hash_new_leaves
from exchange.audit.verify import witness_verifier
from exchange.crypto.notes import NoteSigner
from exchange.errors import ExchangeError, InvalidInputError, NotFoundError
from exchange.hub.background import BackgroundThread
from exchange.hub.guard import current_caller
from exchange.limits import over_limit
from exchange.statements.agency_keys import AgencyKeys
from exchange.store import registry
from exchange.store.db import Database
from exchange.store.schema import log_head
from exchange.v1 import alerts_pb2, audit_pb2, audit_pb2_grpc

log = logging.getLogger(__name__)

MAX_LEAVES_PER_PAGE = 1000
"""Most leaves one ``GetLeaves`` answers; callers page on from the last index returned."""

MAX_BODIES_PER_REQUEST = 1000
"""Most indices one ``GetEntryBodies`` request may ask for."""

POLL_SECONDS = 1.0
"""Longest time between two looks at the log's size by the checkpointer thread."""


class Checkpointer(BackgroundThread):
    """Extends the stored tree and signs checkpoints, on demand or in a background thread."""

    def __init__(
        self,
        db: Database,
        signer: NoteSigner,
        *,
        origin: str,
        interval: float,
        clock: Callable[[], datetime],
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        """Sign with ``signer`` (named ``origin``) at least every ``interval`` seconds once started."""
        self._db = db
        self._signer = signer
        self._origin = origin
        self._interval = interval
        self._clock = clock
        self._batch_size = batch_size
        self._lock = threading.Lock()  # one signer of this process at a time, outside batches
        self._latest_lock = threading.Lock()
        self._latest: StoredCheckpoint | None = None
        super().__init__("checkpointer")

    def checkpoint_now(self) -> StoredCheckpoint:
        """Hash every committed leaf and sign the tree if it grew; return the latest checkpoint.

        The last batch of hashing and the signature share one transaction, after the appends
        they cover have committed.
        """
        with self._lock:
            return self._extend_and_sign()

    def checkpoint_covering(self, size: int) -> StoredCheckpoint:
        """A checkpoint of at least ``size`` leaves: the latest one if it does, else a new one.

        Callers that arrive together queue on one lock and the first one's checkpoint covers
        every append committed before it, so concurrent publishes share a checkpoint (a group
        commit) and none waits for a thread to wake.
        """
        latest = self._latest
        if latest is not None and latest.size >= size:
            return latest
        with self._lock:
            latest = self._latest
            if latest is not None and latest.size >= size:
                return latest
            return self._extend_and_sign()

    def sign_in(self, connection: Connection) -> Callable[[], None]:
        """Hash every leaf appended so far, in the caller's write transaction, and sign the tree.

        For a group commit: called after the batch's appends, in its transaction, so the
        checkpoint commits with them; returns what to call once that commit succeeded.
        """
        while (checkpoint := self._hash_and_sign(connection)) is None:
            pass
        return lambda: self._adopt(checkpoint)

    def _extend_and_sign(self) -> StoredCheckpoint:
        # A long backlog is hashed in batches, each its own transaction; the last one signs.
        while True:
            with self._db.write() as connection:
                checkpoint = self._hash_and_sign(connection)
            if checkpoint is not None:
                self._adopt(checkpoint)
                return checkpoint

    def _hash_and_sign(self, connection: Connection) -> StoredCheckpoint | None:
        """Hash one batch of new leaves; if that was the last of them, sign the tree."""
        growth = hash_new_leaves(connection, batch_size=self._batch_size)
        if growth.new_size - growth.old_size == self._batch_size:
            return None  # more may follow
        return sign_checkpoint(
            connection, self._signer, origin=self._origin, now=self._clock(), growth=growth
        )

    def _adopt(self, checkpoint: StoredCheckpoint) -> None:
        """Remember a committed checkpoint as the latest, unless a larger one is known."""
        with self._latest_lock:
            if self._latest is None or checkpoint.size > self._latest.size:
                self._latest = checkpoint

    def _run(self) -> None:
        last_run = time.monotonic()
        while not self._stopping.wait(timeout=min(self._interval, POLL_SECONDS)):
            try:
                if time.monotonic() - last_run >= self._interval or self._log_has_grown():
                    last_run = time.monotonic()
                    self.checkpoint_now()
            except (ExchangeError, SQLAlchemyError):
                log.exception("checkpoint failed; retrying at the next poll")

    def _log_has_grown(self) -> bool:
        """Whether entries were appended past the latest checkpoint this process signed or saw."""
        with self._db.read() as connection:
            size = connection.execute(
                select(log_head.c.size).where(log_head.c.id == 1)
            ).scalar_one()
        latest = self._latest
        return latest is None or int(size) > latest.size


def checkpoint_view(checkpoint: StoredCheckpoint) -> audit_pb2.CheckpointView:
    """The wire form of a stored checkpoint, cosignature lines appended to the note."""
    return audit_pb2.CheckpointView(
        note=checkpoint.note, size=checkpoint.size, root_hash=checkpoint.root_hash
    )


def _latest(connection: Connection) -> StoredCheckpoint:
    checkpoint = latest_checkpoint(connection)
    if checkpoint is None:
        raise NotFoundError("the log has no signed checkpoint yet", reason="NO_CHECKPOINT")
    return checkpoint


def _tree_size(requested: int, latest: StoredCheckpoint) -> int:
    """The tree size a proof is asked at: 0 means the latest checkpoint's."""
    if requested == 0:
        return latest.size
    if requested > latest.size:
        raise InvalidInputError(
            f"tree size {requested} is beyond the latest checkpoint ({latest.size})",
            reason="TREE_SIZE_UNCHECKPOINTED",
        )
    return requested


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    """AuditService: each method reads the request, calls the audit store, maps the result."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime]) -> None:
        """Serve the log in ``db``; ``clock`` stamps cosignatures."""
        self._db = db
        self._clock = clock

    def GetCheckpoint(
        self, request: audit_pb2.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> audit_pb2.CheckpointView:
        """The latest signed checkpoint with the cosignatures submitted for it."""
        with self._db.read() as connection:
            return checkpoint_view(_latest(connection))

    def GetInclusionProof(
        self, request: audit_pb2.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> audit_pb2.InclusionProof:
        """The proof of a leaf (by index or leaf hash) at a checkpointed tree size."""
        with self._db.read() as connection:
            size = _tree_size(request.tree_size, _latest(connection))
            if request.WhichOneof("leaf") == "leaf_hash":
                found = index_of_leaf(connection, request.leaf_hash, below=size)
                if found is None:
                    raise NotFoundError(f"no leaf with that hash in the tree of size {size}")
                index = found
            elif request.WhichOneof("leaf") == "index":
                index = request.index
            else:
                raise InvalidInputError("name the leaf by index or by leaf_hash")
            if index >= size:
                raise InvalidInputError(
                    f"leaf {index} is not in the tree of size {size}", reason="LEAF_OUT_OF_RANGE"
                )
            hashes = StoredTree(connection).inclusion_proof(index, size)
        return audit_pb2.InclusionProof(index=index, tree_size=size, hashes=hashes)

    def GetConsistencyProof(
        self, request: audit_pb2.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ConsistencyProof:
        """The proof that the tree of ``from_size`` is a prefix of that of ``to_size`` (0: latest)."""
        with self._db.read() as connection:
            to_size = _tree_size(request.to_size, _latest(connection))
            if not 1 <= request.from_size <= to_size:
                raise InvalidInputError(
                    f"from_size must be between 1 and {to_size}, got {request.from_size}",
                    reason="TREE_SIZE_OUT_OF_RANGE",
                )
            hashes = StoredTree(connection).consistency_proof(request.from_size, to_size)
        return audit_pb2.ConsistencyProof(
            from_size=request.from_size, to_size=to_size, hashes=hashes
        )

    def GetLeaves(
        self, request: audit_pb2.GetLeavesRequest, context: grpc.ServicerContext
    ) -> audit_pb2.GetLeavesResponse:
        """Leaves ``[start, end)`` under the latest checkpoint, at most one page of them."""
        with self._db.read() as connection:
            latest = _latest(connection)
            end = min(request.end or latest.size, latest.size, request.start + MAX_LEAVES_PER_PAGE)
            stored = read_leaves(connection, request.start, end)
        leaves = []
        for leaf in stored:
            message = audit_pb2.Leaf(index=leaf.index, data=leaf.data, entry_type=leaf.entry_type)
            message.logged_at.FromDatetime(leaf.logged_at)
            leaves.append(message)
        return audit_pb2.GetLeavesResponse(leaves=leaves)

    def GetEntryBodies(
        self, request: audit_pb2.GetEntryBodiesRequest, context: grpc.ServicerContext
    ) -> audit_pb2.GetEntryBodiesResponse:
        """Bodies and salts of the asked entries the caller is entitled to; see the module doc."""
        if len(request.indices) > MAX_BODIES_PER_REQUEST:
            raise InvalidInputError(
                over_limit(
                    len(request.indices),
                    MAX_BODIES_PER_REQUEST,
                    "indices",
                    what="the request",
                    verb="has",
                )
            )
        with self._db.read() as connection:
            found = entitled_bodies(connection, current_caller(), request.indices)
        bodies = []
        for index in request.indices:
            stored = found.get(index)
            if stored is None or stored.body is None:
                bodies.append(audit_pb2.EntryBody(index=index, present=False))
            else:
                bodies.append(
                    audit_pb2.EntryBody(
                        index=index, body=stored.body, present=True, salt=stored.salt
                    )
                )
        return audit_pb2.GetEntryBodiesResponse(bodies=bodies)

    def SubmitCosignature(
        self, request: audit_pb2.SubmitCosignatureRequest, context: grpc.ServicerContext
    ) -> audit_pb2.SubmitCosignatureResponse:
        """Verify the caller's cosignature with its certified witness key, and keep it."""
        caller = current_caller()
        now = self._clock()
        with self._db.write() as connection:
            keys = _current_agency_keys(connection, caller, now=now)
            add_cosignature(
                connection,
                cosigner=caller,
                checkpoint_text=request.checkpoint,
                signature_line=request.cosignature,
                verifier=witness_verifier(keys),
                now=now,
            )
        return audit_pb2.SubmitCosignatureResponse()


def _current_agency_keys(connection: Connection, agency_id: str, *, now: datetime) -> AgencyKeys:
    """The agency's latest key statement, verified again against its registered CA."""
    for row in registry.list_agencies(connection):
        if row.agency_id == agency_id and row.keys:
            ca = x509.load_der_x509_certificate(row.ca_certificate_der)
            return AgencyKeys.verify(registry.envelope_of(row.keys[-1]), ca, now=now)
    raise NotFoundError(f"agency {agency_id!r} has no key statement", reason="NO_WITNESS_KEY")


@dataclass(frozen=True)
class ReceiptProof:
    """A publish receipt's proof: the alert's leaf with its inclusion proof under a signed
    checkpoint, and that checkpoint's consistency with the size the publisher trusts (if asked)."""

    entry: alerts_pb2.EventProof
    note: str
    consistency: audit_pb2.ConsistencyProof | None


def receipt_proof(
    db: Database, checkpointer: Checkpointer, index: int, *, known_size: int = 0
) -> ReceiptProof | None:
    """The leaf at ``index`` with its inclusion proof, the signed checkpoint it leads to and, for
    a ``known_size`` below that checkpoint's, the consistency proof from it, for a receipt.

    Called after the append committed; ``None`` (the receipt goes without a proof, which
    ``GetInclusionProof`` serves later) if checkpointing fails, since the publish itself stands.
    """
    try:
        checkpoint = checkpointer.checkpoint_covering(index + 1)
        if checkpoint.size <= index:
            return None
        with db.read() as connection:
            entries, consistency = _proofs_under(connection, checkpoint.size, [index], known_size)
    except (ExchangeError, SQLAlchemyError):
        log.exception("no checkpoint for the receipt of leaf %d", index)
        return None
    return ReceiptProof(entries[0], checkpoint.note, consistency) if entries else None


def _proofs_under(
    connection: Connection, size: int, indices: Sequence[int], from_size: int
) -> tuple[tuple[alerts_pb2.EventProof, ...], audit_pb2.ConsistencyProof | None]:
    """Under the tree of ``size`` leaves: each of ``indices`` it covers with its leaf and
    inclusion proof, and the proof that the tree of ``from_size`` leaves is a prefix of it (when
    ``0 < from_size < size``)."""
    tree = StoredTree(connection, size=size)
    covered = [index for index in indices if index < size]
    leaves = leaves_at(connection, covered)
    entries = tuple(
        alerts_pb2.EventProof(
            inclusion=audit_pb2.InclusionProof(
                index=index, tree_size=size, hashes=tree.inclusion_proof(index, size)
            ),
            leaf=leaves[index],
        )
        for index in covered
        if index in leaves
    )
    consistency = None
    if 0 < from_size < size:
        consistency = audit_pb2.ConsistencyProof(
            from_size=from_size, to_size=size, hashes=tree.consistency_proof(from_size, size)
        )
    return entries, consistency


@dataclass(frozen=True)
class HeartbeatLogState:
    """What a heartbeat says of the log: where the agency's latest event is, under which
    checkpoint, with the proofs of the events it follows and of the checkpoint's consistency."""

    latest_log_index: int
    """The log index of the agency's latest feed event (0 for none)."""
    checkpoint: StoredCheckpoint | None
    event_proofs: tuple[alerts_pb2.EventProof, ...] = ()
    consistency: audit_pb2.ConsistencyProof | None = None


def heartbeat_log_state(
    db: Database,
    checkpointer: Checkpointer | None,
    agency_id: str,
    sequence: int,
    *,
    events: Sequence[int] = (),
    previous_size: int = 0,
) -> HeartbeatLogState:
    """For a heartbeat: the log index of the agency's feed event ``sequence`` and a checkpoint
    that covers it, so the heartbeat proves the latest sequence under a checkpoint; under that
    checkpoint, each of ``events`` (log indices) with its leaf and inclusion proof, and the proof
    that the tree of ``previous_size`` (the stream's previous checkpoint; 0 for none) is a
    prefix of it.

    When the latest checkpoint does not cover the event yet, one is signed first (shared with any
    publish doing the same); if that fails the latest checkpoint goes as it is, and events it
    does not cover go without proofs (the client asks for them later).
    """
    with db.read() as connection:
        index = feed_event_index(connection, agency_id, sequence) if sequence else None
        checkpoint = latest_checkpoint(connection)
        if checkpoint is not None and (index is None or checkpoint.size > index):
            return _with_proofs(connection, index or 0, checkpoint, events, previous_size)
    if checkpointer is not None and index is not None:
        try:
            checkpointer.checkpoint_covering(index + 1)
        except (ExchangeError, SQLAlchemyError):
            log.exception("no checkpoint covering leaf %d for a heartbeat", index)
    with db.read() as connection:
        checkpoint = latest_checkpoint(connection)
        if checkpoint is None:
            return HeartbeatLogState(index or 0, None)
        return _with_proofs(connection, index or 0, checkpoint, events, previous_size)


def _with_proofs(
    connection: Connection,
    latest_log_index: int,
    checkpoint: StoredCheckpoint,
    events: Sequence[int],
    previous_size: int,
) -> HeartbeatLogState:
    proofs, consistency = _proofs_under(connection, checkpoint.size, events, previous_size)
    return HeartbeatLogState(latest_log_index, checkpoint, proofs, consistency)
