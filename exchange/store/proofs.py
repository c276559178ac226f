"""Proofs read from the stored log, in their wire form: leaves with inclusion proofs, and the
consistency proof between two tree sizes, all under one signed tree size."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from exchange.store.log import leaves_at
from exchange.store.tree import StoredTree
from exchange.v1 import alerts_pb2, audit_pb2

__all__ = ["proofs_under"]


def proofs_under(
    connection: Connection, size: int, indices: Sequence[int], from_size: int
) -> tuple[tuple[alerts_pb2.EventProof, ...], audit_pb2.ConsistencyProof | None]:
    """Under the tree of ``size`` leaves: each of ``indices`` it covers with its leaf and
    inclusion proof, and the proof that the tree of ``from_size`` leaves is a prefix of it (when
    ``0 < from_size < size``)."""
    tree = StoredTree(connection, size=size)
    covered = [index for index in indices if index < size]
    leaves = leaves_at(connection, covered)
    stored = [index for index in covered if index in leaves]
    entries = tuple(
        alerts_pb2.EventProof(
            inclusion=audit_pb2.InclusionProof(index=index, tree_size=size, hashes=hashes),
            leaf=leaves[index],
        )
        for index, hashes in zip(stored, tree.inclusion_proofs(stored, size), strict=True)
    )
    consistency = None
    if 0 < from_size < size:
        consistency = audit_pb2.ConsistencyProof(
            from_size=from_size, to_size=size, hashes=tree.consistency_proof(from_size, size)
        )
    return entries, consistency
