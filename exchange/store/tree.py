"""The audit log's Merkle tree in the database: stored subtree hashes, proofs, and the tree builder.

Appends only write leaves (:func:`exchange.store.log.append_entry`, inside the transaction of the
state change). After they commit, :class:`TreeBuilder` hashes the new leaves in batches into
``log_subtrees``: the hash of every *complete aligned subtree*, keyed by ``(level, idx)`` for the
leaves ``[idx * 2**level, (idx + 1) * 2**level)``, level 0 being the leaf hashes. It records how far
it got in ``log_tree_head.hashed_size``.

:class:`StoredTree` answers :mod:`exchange.audit.merkle`'s
:class:`~exchange.audit.merkle.SubtreeSource`
from those rows: every hash a proof needs is a complete aligned subtree (one row) or a right-edge
subtree (at most ``log2(size)`` rows folded together), so a root, an inclusion proof or a
consistency proof costs one query of O(log n) rows at any size of the log.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, or_, select, update

from exchange.audit.merkle import (
    EMPTY_ROOT,
    Node,
    ProofError,
    aligned_subtrees,
    consistency_proof_from,
    consistency_proof_ranges,
    hash_from_aligned_subtrees,
    inclusion_proof_from,
    inclusion_proof_ranges,
    leaf_hash,
    subtrees_added,
)
from exchange.errors import ConfigurationError, NotFoundError, VerificationError
from exchange.store.bulk import BulkInsert
from exchange.store.compiled import CompiledStatement
from exchange.store.db import Database
from exchange.store.schema import log_entries, log_subtrees, log_tree_head

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Frontier",
    "HashedBatch",
    "StoredTree",
    "TreeBuilder",
    "TreeGrowth",
    "hash_appended_leaves",
    "hash_new_leaves",
    "hashed_size",
]

DEFAULT_BATCH_SIZE = 10_000
"""Leaves hashed per transaction by :class:`TreeBuilder`."""


def _node(start: int, end: int) -> Node:
    """The ``(level, idx)`` of the complete aligned subtree ``[start, end)``."""
    level = (end - start).bit_length() - 1
    return level, start >> level


# Built once: statements executed with parameters reuse their compiled form and cache key.
_HASHED_SIZE = select(log_tree_head.c.hashed_size).where(log_tree_head.c.id == 1)
_HASHED_SIZE_FOR_UPDATE = CompiledStatement(_HASHED_SIZE.with_for_update())
_LEAVES_FROM = (
    select(log_entries.c.idx, log_entries.c.leaf)
    .where(log_entries.c.idx >= bindparam("start"))
    .order_by(log_entries.c.idx)
    .limit(bindparam("limit"))
)
_INSERT_SUBTREES = BulkInsert(log_subtrees, ("level", "idx", "hash"))
_SET_HASHED_SIZE = CompiledStatement(
    update(log_tree_head).where(log_tree_head.c.id == 1).values(hashed_size=bindparam("new_size"))
)


MAX_NODES_PER_QUERY = 256
"""Most subtree hashes one query asks for."""

LEVEL_QUERY_MIN_NODES = 8
"""From this many nodes of one level on (the lower levels of a page of proofs), they are read by
one query on that level, not as (level, idx) pairs."""


def _slots(count: int) -> int:
    """The statement size used for ``count`` nodes: the next power of two, at least 8 (a fetch's
    nodes are padded up to it, so that few distinct statements reach the database)."""
    return max(8, 1 << (count - 1).bit_length())


_SUBTREE_COLUMNS = (log_subtrees.c.level, log_subtrees.c.idx, log_subtrees.c.hash)


# Both queries are compiled once per size (a power of two: few distinct statements) and run
# through the driver: a page's proofs read thousands of nodes, and SQLAlchemy's per-call
# parameter rendering (an expanding ``IN``'s above all) cost more than the database's lookups.
@functools.cache
def _subtrees_query(slots: int) -> CompiledStatement:
    """The subtree hashes at ``slots`` (level, index) pairs, bound as ``level<i>``/``idx<i>``."""
    return CompiledStatement(
        select(*_SUBTREE_COLUMNS).where(
            or_(
                *(
                    and_(
                        log_subtrees.c.level == bindparam(f"level{i}"),
                        log_subtrees.c.idx == bindparam(f"idx{i}"),
                    )
                    for i in range(slots)
                )
            )
        )
    )


@functools.cache
def _level_query(slots: int) -> CompiledStatement:
    """The hashes of ``slots`` nodes of one level, bound as ``level`` and ``idx<i>``: the primary
    key (level, idx) searched once per index, with one bound parameter per node, not two. (A
    row-value ``(level, idx) IN (...)`` would be a full scan on SQLite 3.40.)"""
    return CompiledStatement(
        select(*_SUBTREE_COLUMNS).where(
            log_subtrees.c.level == bindparam("level"),
            log_subtrees.c.idx.in_([bindparam(f"idx{i}") for i in range(slots)]),
        )
    )


def _locked_hashed_size(connection: Connection) -> int:
    return hashed_size(connection, for_update=True)


def hashed_size(connection: Connection, *, for_update: bool = False) -> int:
    """How many leaves the tree builder has hashed (every proof and checkpoint stays below it)."""
    if for_update:
        return int(_HASHED_SIZE_FOR_UPDATE.scalar(connection))
    return int(connection.execute(_HASHED_SIZE).scalar_one())


class StoredTree:
    """A :class:`~exchange.audit.merkle.SubtreeSource` over the subtree hashes in the database.

    Reads in the caller's transaction and remembers what it read, so the hashes of one proof are
    fetched in one query. Only tree sizes up to :attr:`size` (the hashed size when first asked)
    can be served; a larger one is a :class:`~exchange.errors.NotFoundError`.
    """

    def __init__(self, connection: Connection, *, size: int | None = None) -> None:
        """Serve subtree hashes from ``connection``'s current transaction.

        ``size``, when the caller knows the tree has been hashed at least that far (a signed
        checkpoint's size), spares the read of the hashed size.
        """
        self._connection = connection
        self._hashes: dict[Node, bytes] = {}
        self._size = size

    @property
    def size(self) -> int:
        """The number of leaves hashed into the stored tree."""
        if self._size is None:
            self._size = hashed_size(self._connection)
        return self._size

    def subtree_hash(self, start: int, end: int) -> bytes:
        """The hash of the leaves ``[start, end)``, folded from their stored aligned subtrees."""
        self._check_size(end)
        pieces = aligned_subtrees(start, end)
        self._fetch(_node(s, e) for s, e in pieces)
        return hash_from_aligned_subtrees([self._hashes[_node(s, e)] for s, e in pieces])

    def root(self, size: int) -> bytes:
        """The root hash of the tree of the first ``size`` leaves."""
        if size == 0:
            return EMPTY_ROOT
        return self.subtree_hash(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves, in one query."""
        self._prefetch(inclusion_proof_ranges(index, size), size)
        return inclusion_proof_from(self, index, size)

    def inclusion_proofs(self, indices: Sequence[int], size: int) -> list[list[bytes]]:
        """The inclusion proofs of ``indices`` in the tree of ``size`` leaves, their hashes read
        together (a query per :data:`MAX_NODES_PER_QUERY` distinct nodes, not one per proof).

        The tree splits into complete aligned subtrees, largest first (its frontier). A leaf's
        proof is, bottom up, its siblings inside the frontier subtree that holds it (one stored
        node a level), then the hash of everything right of that subtree (the frontier
        subtrees after it, folded) and the frontier subtrees left of it, nearest first: the
        proofs of a page share that upper part, taken once for each frontier subtree, and
        equal :func:`~exchange.audit.merkle.inclusion_proof_ranges`' ranges."""
        self._check_size(size)
        frontier = aligned_subtrees(0, size)
        starts = [start for start, _ in frontier]
        places: list[tuple[int, list[Node]]] = []
        for index in indices:
            if not 0 <= index < size:
                raise ProofError(f"leaf index {index} is not in a tree of size {size}")
            place = bisect.bisect_right(starts, index) - 1
            start, end = frontier[place]
            height = (end - start).bit_length() - 1
            places.append((place, [(level, (index >> level) ^ 1) for level in range(height)]))
        frontier_nodes = [_node(start, end) for start, end in frontier]
        self._fetch(itertools.chain(frontier_nodes, (n for _, path in places for n in path)))
        hashes = self._hashes
        frontier_hashes = [hashes[node] for node in frontier_nodes]
        uppers: dict[int, list[bytes]] = {}
        for place in {place for place, _ in places}:
            right = frontier_hashes[place + 1 :]
            upper = [hash_from_aligned_subtrees(right)] if right else []
            uppers[place] = upper + frontier_hashes[:place][::-1]
        return [[hashes[node] for node in path] + uppers[place] for place, path in places]

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """The consistency proof from ``size1`` to ``size2`` leaves, in one query."""
        self._prefetch(consistency_proof_ranges(size1, size2), size2)
        return consistency_proof_from(self, size1, size2)

    def remember(self, hashes: Mapping[Node, bytes]) -> None:
        """Take subtree hashes the caller already holds (a batch's, just written), so that
        proofs over them read nothing."""
        self._hashes.update(hashes)

    def prefetch_proofs(
        self, size: int, *, indices: Iterable[int] = (), from_sizes: Iterable[int] = ()
    ) -> None:
        """Fetch, in one query, every hash the inclusion proofs of ``indices`` and the
        consistency proofs from ``from_sizes`` to ``size`` need (a batch's receipts)."""
        ranges = [r for index in indices for r in inclusion_proof_ranges(index, size)]
        ranges += [
            r for old in from_sizes if 0 < old < size for r in consistency_proof_ranges(old, size)
        ]
        self._prefetch(ranges, size)

    def frontier(self, size: int) -> dict[Node, bytes]:
        """The hashes of the complete aligned subtrees the first ``size`` leaves split into."""
        self._check_size(size)
        nodes = [_node(s, e) for s, e in aligned_subtrees(0, size)]
        self._fetch(nodes)
        return {node: self._hashes[node] for node in nodes}

    def _check_size(self, size: int) -> None:
        if size > self.size:
            raise NotFoundError(
                f"tree size {size} is beyond the {self.size} leaves hashed so far",
                reason="TREE_SIZE_NOT_HASHED",
            )

    def _prefetch(self, ranges: Sequence[tuple[int, int]], size: int) -> None:
        self._check_size(size)
        self._fetch(_node(s, e) for start, end in ranges for s, e in aligned_subtrees(start, end))

    def _fetch(self, nodes: Iterable[Node]) -> None:
        missing = sorted({node for node in nodes if node not in self._hashes})
        if not missing:
            return
        by_level: dict[int, list[int]] = {}
        for level, idx in missing:
            by_level.setdefault(level, []).append(idx)
        pairs: list[Node] = []
        for level, indices in by_level.items():
            if len(indices) < LEVEL_QUERY_MIN_NODES:
                pairs += [(level, idx) for idx in indices]
                continue
            for start in range(0, len(indices), MAX_NODES_PER_QUERY):
                chunk = indices[start : start + MAX_NODES_PER_QUERY]
                slots = _slots(len(chunk))
                parameters = {f"idx{i}": idx for i, idx in enumerate(chunk)}
                parameters.update({f"idx{i}": chunk[-1] for i in range(len(chunk), slots)})
                parameters["level"] = level
                self._read(_level_query(slots), parameters)
        for start in range(0, len(pairs), MAX_NODES_PER_QUERY):
            some = pairs[start : start + MAX_NODES_PER_QUERY]
            slots = _slots(len(some))
            padded_pairs = some + [some[-1]] * (slots - len(some))
            parameters = {f"level{i}": level for i, (level, _) in enumerate(padded_pairs)}
            parameters.update({f"idx{i}": idx for i, (_, idx) in enumerate(padded_pairs)})
            self._read(_subtrees_query(slots), parameters)
        absent = [node for node in missing if node not in self._hashes]
        if absent:
            raise VerificationError(
                f"the stored tree lacks subtree hashes {absent} below its hashed size",
                reason="LOG_STORAGE_INCOMPLETE",
            )

    def _read(self, query: CompiledStatement, parameters: dict[str, Any]) -> None:
        hashes = self._hashes
        rows = query.execute(self._connection, parameters)
        for level, idx, value in rows:
            hashes[(int(level), int(idx))] = bytes(value)


class TreeBuilder:
    """Hashes committed leaves into ``log_subtrees``, a batch per transaction.

    Leaves are taken in index order from the hashed size on, and only while their indexes are
    dense: entries become visible in commit order, which (under the log lock) is index order, so
    the builder never hashes past a leaf it has not seen. (The hub's group commit also hashes in
    its own appending transaction: holding the log lock, it sees every earlier leaf committed.)
    Every leaf hash is recomputed from the stored leaf bytes. Several builders (hub replicas)
    serialize on the ``log_tree_head`` row.
    """

    def __init__(self, db: Database, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        """Build over ``db``, hashing at most ``batch_size`` leaves per transaction."""
        if batch_size < 1:
            raise ConfigurationError(f"tree batch size must be positive, got {batch_size}")
        self._db = db
        self._batch_size = batch_size

    def extend(self) -> int:
        """Hash every committed leaf not hashed yet; return the new hashed size."""
        while True:
            growth = self.extend_batch()
            if not growth.grew:
                return growth.new_size

    def extend_batch(self) -> TreeGrowth:
        """Hash at most one batch of new leaves in its own transaction."""
        with self._db.write() as connection:
            return hash_new_leaves(connection, batch_size=self._batch_size)


@dataclass(frozen=True)
class TreeGrowth:
    """What one :func:`hash_new_leaves` did: the hashed size before and after, and the new root."""

    old_size: int
    new_size: int
    root_hash: bytes | None
    """The root at ``new_size`` when the tree grew (computed from hashes already in hand)."""

    @property
    def grew(self) -> bool:
        """Whether any leaf was hashed."""
        return self.new_size > self.old_size


def hash_new_leaves(connection: Connection, *, batch_size: int = DEFAULT_BATCH_SIZE) -> TreeGrowth:
    """Hash up to ``batch_size`` leaves past the hashed size in the caller's write transaction:
    committed ones, or also the transaction's own appends once it holds the log lock.

    Locks the tree head first, so concurrent builders take turns.
    """
    old_size = hashed_size(connection, for_update=True)
    rows = connection.execute(_LEAVES_FROM, {"start": old_size, "limit": batch_size}).all()
    new_leaf_hashes: list[bytes] = []
    for row in rows:
        if int(row.idx) != old_size + len(new_leaf_hashes):
            break
        new_leaf_hashes.append(leaf_hash(bytes(row.leaf)))
    if not new_leaf_hashes:
        return TreeGrowth(old_size, old_size, None)
    frontier = StoredTree(connection, size=old_size).frontier(old_size)
    return _grow(connection, old_size, frontier, new_leaf_hashes).growth


@dataclass(frozen=True)
class Frontier:
    """The hashes of the complete aligned subtrees a tree of ``size`` leaves splits into, in
    order (its root is folded from them)."""

    size: int
    hashes: Mapping[Node, bytes]


@dataclass(frozen=True)
class HashedBatch:
    """What :func:`hash_appended_leaves` did, with every subtree hash it computed or read."""

    growth: TreeGrowth
    known: Mapping[Node, bytes]
    """The old tree's frontier and every subtree added: enough for the new leaves' proofs."""
    frontier: Frontier | None = None
    """The new tree's frontier (when the tree grew)."""


def hash_appended_leaves(
    connection: Connection,
    start: int,
    leaf_hashes: Sequence[bytes],
    *,
    known_frontier: Frontier | None = None,
    hashed_size: int | None = None,
) -> HashedBatch:
    """Hash the leaves the caller's transaction appended at ``start`` (their hashes in hand,
    not read back), after any committed leaves not hashed yet, up to ``start + len``.

    The caller holds the log lock, so every leaf below ``start`` is committed and visible; the
    tree head is locked here, so a concurrent builder (the checkpointer thread, a replica)
    waits for this transaction.

    ``known_frontier``, the frontier of a tree size committed earlier (the last batch's
    :attr:`HashedBatch.frontier`, once its transaction committed), spares reading the old
    frontier when the tree is still at that size: the first ``n`` leaves of an append-only log
    never change, so neither do the hashes they split into.

    ``hashed_size``, the tree head's size as the caller's transaction read it under the tree
    head's lock (which it holds until it commits), spares that read and lock here.
    """
    old_size = hashed_size if hashed_size is not None else _locked_hashed_size(connection)
    if old_size > start:
        raise VerificationError(
            f"the tree is hashed to {old_size}, past the batch's first leaf {start}",
            reason="LOG_STORAGE_INCOMPLETE",
        )
    earlier: list[bytes] = []
    if start > old_size:
        rows = connection.execute(_LEAVES_FROM, {"start": old_size, "limit": start - old_size})
        earlier = [
            leaf_hash(bytes(row.leaf))
            for offset, row in enumerate(rows)
            if int(row.idx) == old_size + offset
        ]
    if len(earlier) != start - old_size:
        raise VerificationError(
            f"the log lacks leaves between {old_size} and {start}", reason="LOG_STORAGE_INCOMPLETE"
        )
    new_leaf_hashes = [*earlier, *leaf_hashes]
    if not new_leaf_hashes:
        return HashedBatch(TreeGrowth(old_size, old_size, None), {})
    if known_frontier is not None and known_frontier.size == old_size:
        frontier = dict(known_frontier.hashes)
    else:
        frontier = StoredTree(connection, size=old_size).frontier(old_size)
    return _grow(connection, old_size, frontier, new_leaf_hashes)


def _grow(
    connection: Connection,
    old_size: int,
    frontier: Mapping[Node, bytes],
    new_leaf_hashes: Sequence[bytes],
) -> HashedBatch:
    """Store the subtree hashes ``new_leaf_hashes`` add to the tree of ``old_size`` leaves
    (whose ``frontier`` is given) and move the hashed size; the new root is folded from hashes
    in hand."""
    added = subtrees_added(old_size, frontier, new_leaf_hashes)
    _INSERT_SUBTREES.execute(
        connection, [(level, idx, value) for (level, idx), value in added.items()]
    )
    new_size = old_size + len(new_leaf_hashes)
    _SET_HASHED_SIZE.execute(connection, {"new_size": new_size})
    # The new tree's aligned subtrees are new, or (a common prefix) the old tree's.
    known = {**frontier, **added}
    nodes = [_node(s, e) for s, e in aligned_subtrees(0, new_size)]
    new_frontier = Frontier(new_size, {node: known[node] for node in nodes})
    root = hash_from_aligned_subtrees(list(new_frontier.hashes.values()))
    return HashedBatch(TreeGrowth(old_size, new_size, root), known, new_frontier)
