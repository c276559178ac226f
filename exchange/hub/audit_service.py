"""The AuditService servicer: the log's checkpoints, proofs, leaves and bodies, and cosignatures.

(The checkpointer thread that signs the checkpoints is in :mod:`exchange.hub.background`.)

:class:`AuditServicer` serves checkpoints, proofs, leaves and (to entitled agencies) bodies, and
stores agencies' cosignatures. Body requests answer ``present = false`` for an entry the caller is
not entitled to, for a purged body and for an index past the log alike, so the answer says
nothing about entries the caller may not see.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import grpc

from exchange.audit.leaves import logged_micros
from exchange.audit.verify import witness_verifier
from exchange.errors import InvalidInputError, NotFoundError
from exchange.hub.blocking import blocking
from exchange.hub.guard import current_caller
from exchange.limits import over_limit
from exchange.store import registry
from exchange.store.checkpoints import StoredCheckpoint, add_cosignature, signed_checkpoint
from exchange.store.db import Database
from exchange.store.log import (
    entitled_bodies,
    index_of_leaf,
    read_leaves,
)
from exchange.store.tree import StoredTree
from exchange.v1 import audit_pb2, audit_pb2_grpc

log = logging.getLogger(__name__)

MAX_LEAVES_PER_PAGE = 10_000
"""Most leaves one ``GetLeaves`` answers; callers page on from the last index returned.

A leaf is about 150 bytes on the wire, so a full page is about 1.5 MB: well inside the
transport's limit, and few enough round trips that a full-log verification is not paced by
them."""

MAX_BODIES_PER_REQUEST = 1000
"""Most indices one ``GetEntryBodies`` request may ask for."""


def checkpoint_view(checkpoint: StoredCheckpoint) -> audit_pb2.CheckpointView:
    """The wire form of a stored checkpoint, cosignature lines appended to the note."""
    return audit_pb2.CheckpointView(
        note=checkpoint.note, size=checkpoint.size, root_hash=checkpoint.root_hash
    )


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

    @blocking
    def GetCheckpoint(
        self, request: audit_pb2.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> audit_pb2.CheckpointView:
        """The latest signed checkpoint with the cosignatures submitted for it."""
        with self._db.read() as connection:
            return checkpoint_view(signed_checkpoint(connection))

    @blocking
    def GetInclusionProof(
        self, request: audit_pb2.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> audit_pb2.InclusionProof:
        """The proof of a leaf (by index or leaf hash) at a checkpointed tree size."""
        with self._db.read() as connection:
            size = _tree_size(request.tree_size, signed_checkpoint(connection))
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

    @blocking
    def GetConsistencyProof(
        self, request: audit_pb2.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> audit_pb2.ConsistencyProof:
        """The proof that the tree of ``from_size`` is a prefix of that of ``to_size`` (0: latest)."""
        with self._db.read() as connection:
            to_size = _tree_size(request.to_size, signed_checkpoint(connection))
            if not 1 <= request.from_size <= to_size:
                raise InvalidInputError(
                    f"from_size must be between 1 and {to_size}, got {request.from_size}",
                    reason="TREE_SIZE_OUT_OF_RANGE",
                )
            hashes = StoredTree(connection).consistency_proof(request.from_size, to_size)
        return audit_pb2.ConsistencyProof(
            from_size=request.from_size, to_size=to_size, hashes=hashes
        )

    @blocking
    def GetLeaves(
        self, request: audit_pb2.GetLeavesRequest, context: grpc.ServicerContext
    ) -> audit_pb2.GetLeavesResponse:
        """Leaves ``[start, end)`` under the latest checkpoint, at most one page of them."""
        response = audit_pb2.GetLeavesResponse()
        add = response.leaves.add
        with self._db.read() as connection:
            latest = signed_checkpoint(connection)
            end = min(request.end or latest.size, latest.size, request.start + MAX_LEAVES_PER_PAGE)
            for batch in read_leaves(connection, request.start, end):
                for index, data, entry_type in batch:
                    message = add()  # fields set one by one: cheaper than as keywords
                    message.index = index
                    message.data = data
                    message.entry_type = entry_type
                    # The log time the leaf commits to (the hub wrote it with the row's), read
                    # from the bytes: converting the column's timestamp cost more than the rest
                    # of a page.
                    micros = logged_micros(data)
                    if micros is not None:
                        logged_at = message.logged_at
                        seconds, micro = divmod(micros, 1_000_000)
                        logged_at.seconds = seconds
                        logged_at.nanos = micro * 1_000
        return response

    @blocking
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
        response = audit_pb2.GetEntryBodiesResponse()
        add = response.bodies.add
        for index in request.indices:
            stored = found.get(index)
            if stored is None or stored.body is None:
                add(index=index)  # present = false, the default
            else:
                add(index=index, body=stored.body, present=True, salt=stored.salt)
        return response

    @blocking
    def SubmitCosignature(
        self, request: audit_pb2.SubmitCosignatureRequest, context: grpc.ServicerContext
    ) -> audit_pb2.SubmitCosignatureResponse:
        """Verify the caller's cosignature with its certified witness key, and keep it."""
        caller = current_caller()
        now = self._clock()
        with self._db.write() as connection:
            keys = registry.verified_agency_keys(connection, caller, now=now)
            add_cosignature(
                connection,
                cosigner=caller,
                checkpoint_text=request.checkpoint,
                signature_line=request.cosignature,
                verifier=witness_verifier(keys),
                now=now,
            )
        return audit_pb2.SubmitCosignatureResponse()
