"""The stored tree: subtree hashes built in batches after commit, proofs read in O(log n) rows.

Proofs from the database must equal :mod:`exchange.audit.merkle`'s over the same leaves, whatever
the batch sizes the builder hashed them in; and at a million entries a proof is a couple of
queries and a few dozen rows.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import pytest
from sqlalchemy import event, insert, update

from exchange.audit import merkle
from exchange.audit.leaves import FEED_EVENT, make_leaf
from exchange.audit.merkle import subtrees_added
from exchange.errors import NotFoundError, VerificationError
from exchange.store import tree as tree_module
from exchange.store.db import Database
from exchange.store.schema import log_entries, log_head, log_subtrees, log_tree_head
from exchange.store.tree import StoredTree, TreeBuilder, hash_new_leaves

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.from_url(f"sqlite:///{tmp_path / 'tree.db'}")
    database.migrate()
    yield database
    database.dispose()


def append_leaves(db: Database, count: int) -> list[bytes]:
    """Append ``count`` leaves the way the log does (rows only, no tree); return their data."""
    with db.write() as connection:
        start = int(connection.execute(log_head.select()).one().size)
        leaves = [
            make_leaf(FEED_EVENT, NOW, f"event {start + i}".encode(), b"s" * 16, ["agency-a"])
            for i in range(count)
        ]
        if leaves:
            connection.execute(
                insert(log_entries),
                [
                    {
                        "idx": start + i,
                        "entry_type": FEED_EVENT,
                        "logged_at": NOW,
                        "leaf": leaf,
                        "leaf_hash": merkle.leaf_hash(leaf),
                        "body": b"",
                        "salt": b"s" * 16,
                        "entitled": "agency-a",
                    }
                    for i, leaf in enumerate(leaves)
                ],
            )
            connection.execute(update(log_head).values(size=start + count))
    return leaves


def test_subtrees_added_are_the_complete_aligned_subtrees_of_the_grown_tree() -> None:
    rng = random.Random(7)
    hashes = [merkle.leaf_hash(bytes([i % 256, i // 256])) for i in range(300)]
    source = merkle.LeafHashSource(hashes)
    stored: dict[tuple[int, int], bytes] = {}
    size = 0
    while size < len(hashes):
        grow = rng.randint(1, 40)
        new = hashes[size : size + grow]
        frontier = {
            ((e - s).bit_length() - 1, s >> ((e - s).bit_length() - 1)): stored[
                ((e - s).bit_length() - 1, s >> ((e - s).bit_length() - 1))
            ]
            for s, e in merkle.aligned_subtrees(0, size)
        }
        added = subtrees_added(size, frontier, new)
        assert not set(added) & set(stored)
        stored.update(added)
        size += len(new)
    expected = {
        (level, idx): source.subtree_hash(idx << level, (idx + 1) << level)
        for level in range(size.bit_length())
        for idx in range(size >> level)
    }
    assert stored == expected


@pytest.mark.parametrize(("seed", "nodes_per_query"), [(0, 256), (1, 256), (2, 256), (3, 3)])
def test_stored_proofs_equal_the_merkle_core_on_random_trees(
    db: Database, seed: int, nodes_per_query: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With 3 nodes per query, every fetch is split into several padded queries.
    monkeypatch.setattr(tree_module, "MAX_NODES_PER_QUERY", nodes_per_query)
    rng = random.Random(seed)
    leaves: list[bytes] = []
    for _ in range(rng.randint(1, 6)):
        leaves += append_leaves(db, rng.randint(0, 70))
        builder = TreeBuilder(db, batch_size=rng.randint(1, 25))
        while (growth := builder.extend_batch()).grew:
            hashed = [merkle.leaf_hash(leaf) for leaf in leaves[: growth.new_size]]
            assert growth.root_hash == merkle.root(hashed)
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    with db.read() as connection:
        tree = StoredTree(connection)
        assert tree.size == len(leaves)
        for size in range(len(leaves) + 1):
            assert tree.root(size) == merkle.root(hashes[:size])
        for _ in range(60):
            size = rng.randint(1, len(leaves)) if leaves else 0
            if not size:
                break
            index = rng.randrange(size)
            assert tree.inclusion_proof(index, size) == merkle.inclusion_proof(index, size, hashes)
            first = rng.randint(1, size)
            assert tree.consistency_proof(first, size) == merkle.consistency_proof(
                first, size, hashes
            )


def test_the_builder_hashes_only_dense_committed_leaves_and_is_idempotent(db: Database) -> None:
    leaves = append_leaves(db, 5)
    with db.write() as connection:
        # A leaf beyond a gap (not yet visible leaf 5) must wait for the gap to fill.
        connection.execute(
            insert(log_entries).values(
                idx=6,
                entry_type=FEED_EVENT,
                logged_at=NOW,
                leaf=b"later",
                leaf_hash=merkle.leaf_hash(b"later"),
                body=b"",
                salt=b"s" * 16,
                entitled="",
            )
        )
    assert TreeBuilder(db).extend() == 5
    assert TreeBuilder(db).extend() == 5
    with db.write() as connection:
        assert not hash_new_leaves(connection).grew
    with db.read() as connection:
        tree = StoredTree(connection)
        assert tree.root(5) == merkle.root([merkle.leaf_hash(leaf) for leaf in leaves])
        with pytest.raises(NotFoundError):
            tree.root(6)


# --- a million entries ------------------------------------------------------------------------------

MILLION = 1_000_000


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, bytes]]:
    """A log of 10^6 synthetic leaves: every complete subtree hash stored, as the builder would."""
    db = Database.from_url(f"sqlite:///{tmp_path_factory.mktemp('million') / 'log.db'}")
    db.migrate()
    level = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(MILLION)]
    levels = [level]
    while len(level) > 1:
        level = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        levels.append(level)
    with db.write() as connection:
        # The driver's executemany directly: ten times faster than building a million dicts.
        connection.exec_driver_sql(
            "INSERT INTO log_subtrees (level, idx, hash) VALUES (?, ?, ?)",
            [
                (height, idx, value)
                for height, nodes in enumerate(levels)
                for idx, value in enumerate(nodes)
            ],
        )
        connection.execute(update(log_tree_head).values(hashed_size=MILLION))
    root = merkle.root_from(_LevelSource(levels), MILLION)
    yield db, root
    db.dispose()


class _LevelSource:
    def __init__(self, levels: list[list[bytes]]) -> None:
        self.levels = levels

    def subtree_hash(self, start: int, end: int) -> bytes:
        return merkle.hash_from_aligned_subtrees(
            [
                self.levels[(e - s).bit_length() - 1][s >> ((e - s).bit_length() - 1)]
                for s, e in merkle.aligned_subtrees(start, end)
            ]
        )


class QueryCounter:
    """Counts the statements and rows a block of code reads from the database."""

    def __init__(self, db: Database) -> None:
        self.statements = 0
        self._db = db

    def __enter__(self) -> Self:
        event.listen(self._db.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self._db.engine, "before_cursor_execute", self._count)

    def _count(self, *args: Any) -> None:
        statement = args[2]
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            self.statements += 1


@pytest.mark.parametrize("index", [0, 123_456, 524_287, 999_999])
def test_an_inclusion_proof_at_a_million_entries_costs_two_queries(
    million: tuple[Database, bytes], index: int
) -> None:
    db, root = million
    with QueryCounter(db) as counter, db.read() as connection:
        proof = StoredTree(connection).inclusion_proof(index, MILLION)
    assert counter.statements == 2  # the hashed size, then every hash the proof needs
    assert len(proof) <= 20
    merkle.verify_inclusion(merkle.leaf_hash(index.to_bytes(4, "big")), index, MILLION, proof, root)


@pytest.mark.parametrize("first", [1, 65_536, 700_001, 999_999])
def test_a_consistency_proof_at_a_million_entries_costs_two_queries(
    million: tuple[Database, bytes], first: int
) -> None:
    db, root = million
    with db.read() as connection:
        first_root = StoredTree(connection).root(first)
    with QueryCounter(db) as counter, db.read() as connection:
        proof = StoredTree(connection).consistency_proof(first, MILLION)
    assert counter.statements == 2
    merkle.verify_consistency(first, MILLION, first_root, root, proof)


@pytest.mark.parametrize(
    ("stride", "nodes_per_query", "level_query_from"),
    [(1, 256, 8), (3, 256, 8), (7, 5, 2), (40, 256, 8)],
)
def test_the_proofs_of_a_page_of_leaves_equal_the_merkle_core(
    database_url: str,
    stride: int,
    nodes_per_query: int,
    level_query_from: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A feed page's leaves: every ``stride``-th one from an odd start, on both databases; with
    # few nodes per query or a low level threshold, the fetch is split across both query kinds.
    monkeypatch.setattr(tree_module, "MAX_NODES_PER_QUERY", nodes_per_query)
    monkeypatch.setattr(tree_module, "LEVEL_QUERY_MIN_NODES", level_query_from)
    db = Database.from_url(database_url)
    try:
        db.migrate()
        leaves = append_leaves(db, 613)
        TreeBuilder(db, batch_size=100).extend()
        hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
        indices = list(range(5, 613, stride))[:120]
        for size in (613, indices[-1] + 1, 512):
            page = [index for index in indices if index < size]
            with QueryCounter(db) as counter, db.read() as connection:
                proofs = StoredTree(connection, size=size).inclusion_proofs(page, size)
            assert proofs == [merkle.inclusion_proof(i, size, hashes) for i in page]
            assert counter.statements <= 10 * size.bit_length()  # a few per level, not per proof
    finally:
        db.dispose()


def test_the_proofs_of_every_leaf_of_every_small_tree_equal_the_merkle_core(db: Database) -> None:
    # Every shape of frontier up to 70 leaves: a leaf in its first, middle or last complete
    # subtree, a last subtree of one leaf, a tree that is one complete subtree.
    leaves = append_leaves(db, 70)
    TreeBuilder(db).extend()
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    with db.read() as connection:
        tree = StoredTree(connection)
        for size in range(1, 71):
            proofs = tree.inclusion_proofs(list(range(size)), size)
            assert proofs == [merkle.inclusion_proof(i, size, hashes) for i in range(size)], size
        with pytest.raises(merkle.ProofError):
            tree.inclusion_proofs([3, 9], 9)


def test_a_page_of_proofs_reports_a_missing_subtree(db: Database) -> None:
    append_leaves(db, 40)
    TreeBuilder(db).extend()
    with db.write() as connection:
        connection.execute(
            log_subtrees.delete().where(log_subtrees.c.level == 0, log_subtrees.c.idx == 11)
        )
    with db.read() as connection, pytest.raises(VerificationError) as missing:
        StoredTree(connection, size=40).inclusion_proofs(list(range(0, 40, 2)), 40)
    assert missing.value.reason == "LOG_STORAGE_INCOMPLETE"
