"""Checkpoints and cosignatures in the database, and the checkpointer that signs them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, event, func, insert, select

from exchange.audit import merkle
from exchange.crypto.notes import (
    Checkpoint,
    CosignatureSigner,
    NoteSigner,
    cosign,
    open_checkpoint,
)
from exchange.errors import InvalidInputError, NotFoundError, SignatureError
from exchange.hub.background import Checkpointer
from exchange.store.checkpoints import (
    StoredCheckpoint,
    add_cosignature,
    latest_checkpoint,
    sign_checkpoint,
)
from exchange.store.db import Database
from exchange.store.log import NewEntry, append_entries, append_entry, lock_log
from exchange.store.schema import agencies, checkpoints, log_entries

ORIGIN = "exchange.test/log"
SIGNER = NoteSigner(ORIGIN, bytes(range(32)))
WITNESS = CosignatureSigner("agency-b", bytes(range(3, 35)))
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database.from_url(f"sqlite:///{tmp_path / 'log.db'}")
    database.migrate()
    with database.write() as connection:
        connection.execute(
            insert(agencies).values(agency_id="agency-b", ca_certificate=b"der", added_at=NOW)
        )
    yield database
    database.dispose()


def append_one(connection: Connection, body: bytes) -> int:
    return append_entry(
        connection, entry_type="feed_event", body=body, references=[], entitled=["agency-b"], now=NOW
    )


def append(db: Database, count: int) -> None:
    with db.write() as connection:
        for i in range(count):
            append_one(connection, f"event {i}".encode())


def checkpointer(db: Database) -> Checkpointer:
    return Checkpointer(db, SIGNER, origin=ORIGIN, interval=60, clock=lambda: NOW, batch_size=4)


def test_the_checkpointer_signs_each_new_size_once_and_the_empty_log_first(db: Database) -> None:
    signing = checkpointer(db)
    empty = signing.checkpoint_now()
    assert (empty.size, empty.root_hash) == (0, merkle.EMPTY_ROOT)
    append(db, 11)  # more than two batches
    grown = signing.checkpoint_now()
    assert grown.size == 11
    assert signing.checkpoint_now() == grown  # nothing new: the same checkpoint, not a new row
    opened = open_checkpoint(grown.note, SIGNER.verifier(), origin=ORIGIN)
    assert opened.checkpoint == Checkpoint(ORIGIN, 11, grown.root_hash)
    append(db, 1)
    assert signing.checkpoint_covering(11) == grown
    assert signing.checkpoint_covering(12).size == 12


def test_sign_checkpoint_without_growth_reads_the_hashed_tree(db: Database) -> None:
    checkpointer(db).checkpoint_now()
    append(db, 3)
    with db.write() as connection:
        first = sign_checkpoint(connection, SIGNER, origin=ORIGIN, now=NOW)
    assert first.size == 0  # nothing hashed yet: the tree builder runs first
    checkpointer(db).checkpoint_now()
    with db.write() as connection:
        again = sign_checkpoint(connection, SIGNER, origin=ORIGIN, now=NOW)
    assert again.size == 3


def test_a_later_cosignature_replaces_an_earlier_one_and_forgeries_are_refused(
    db: Database,
) -> None:
    append(db, 2)
    checkpoint = checkpointer(db).checkpoint_now()
    body = checkpoint.checkpoint_text
    stamp = int(NOW.timestamp())
    with db.write() as connection:
        for moment in (stamp - 10, stamp, stamp - 5):
            add_cosignature(
                connection,
                cosigner="agency-b",
                checkpoint_text=body,
                signature_line=cosign(body, WITNESS, moment),
                verifier=WITNESS.verifier(),
                now=NOW,
            )
    with db.read() as connection:
        served = latest_checkpoint(connection)
    assert served is not None and served.cosignature_lines == (cosign(body, WITNESS, stamp),)
    opened = open_checkpoint(served.note, SIGNER.verifier(), cosigners=[WITNESS.verifier()])
    assert opened.cosignatures == {"agency-b": stamp}

    rogue = CosignatureSigner("agency-b", bytes(range(4, 36)))
    unknown = Checkpoint(ORIGIN, 2, b"\x02" * 32).to_text()
    cases = [
        (body, cosign(body, rogue, stamp), SignatureError),
        (unknown, cosign(unknown, WITNESS, stamp), NotFoundError),
        (body, cosign(body, WITNESS, stamp + 3600), InvalidInputError),
        ("not a checkpoint\n", cosign(body, WITNESS, stamp), InvalidInputError),
    ]
    for text, line, error in cases:
        with pytest.raises(error), db.write() as connection:
            add_cosignature(
                connection,
                cosigner="agency-b",
                checkpoint_text=text,
                signature_line=line,
                verifier=WITNESS.verifier(),
                now=NOW,
            )


def test_a_batch_signs_its_own_appends_and_earlier_unhashed_ones_before_its_commit(
    db: Database,
) -> None:
    signing = checkpointer(db)
    signing.checkpoint_now()
    append(db, 6)  # appended elsewhere and not hashed yet: the batch's checkpoint covers them too
    with db.write() as connection:
        start = lock_log(connection)
        appended = append_entries(
            connection,
            start,
            [NewEntry("feed_event", f"batch {i}".encode(), [], ["agency-b"]) for i in range(3)],
            now=NOW,
        )
        signed = signing.sign_batch(connection, start, [leaf.hash for leaf in appended])
        proofs = [signed.tree.inclusion_proof(leaf.index, 9) for leaf in appended]
    assert start == 6 and [leaf.index for leaf in appended] == [6, 7, 8]
    signed.committed()
    assert signing.checkpoint_covering(9) is signed.checkpoint  # adopted: no new signature
    with db.read() as connection:
        stored = latest_checkpoint(connection)
        leaves = [row.leaf for row in connection.execute(select(log_entries.c.leaf).order_by(log_entries.c.idx))]
        rows = connection.execute(select(func.count()).select_from(checkpoints)).scalar_one()
    assert stored == signed.checkpoint and stored.size == 9 and rows == 2
    hashes = [merkle.leaf_hash(bytes(leaf)) for leaf in leaves]
    assert stored.root_hash == merkle.root(hashes)
    for leaf, proof in zip(appended, proofs, strict=True):
        assert leaf.hash == hashes[leaf.index]
        merkle.verify_inclusion(leaf.hash, leaf.index, 9, proof, stored.root_hash)
    opened = open_checkpoint(stored.note, SIGNER.verifier(), origin=ORIGIN)
    assert opened.checkpoint.size == 9


class _Rollback(Exception):
    pass


def _batch(db: Database, signing: Checkpointer, label: str, *, commit: bool = True) -> int:
    """One publish batch's log work: three appends, hashed and signed in their transaction;
    returns the number of reads of stored subtree hashes it made."""
    reads: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "log_subtrees" in statement:
            reads.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.write() as connection:
            start = lock_log(connection)
            entries = [NewEntry("feed_event", f"{label} {i}".encode(), [], ["agency-b"]) for i in range(3)]
            appended = append_entries(connection, start, entries, now=NOW)
            signed = signing.sign_batch(connection, start, [leaf.hash for leaf in appended])
            if not commit:
                raise _Rollback
        signed.committed()
    except _Rollback:
        pass
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return len(reads)


def _stored_root(db: Database) -> bytes:
    with db.read() as connection:
        leaves = connection.execute(select(log_entries.c.leaf).order_by(log_entries.c.idx))
        return merkle.root([merkle.leaf_hash(bytes(leaf)) for (leaf,) in leaves])


def test_a_batch_takes_the_frontier_its_committed_predecessor_left_and_not_a_rolled_back_ones(
    db: Database,
) -> None:
    signing = checkpointer(db)
    append(db, 5)
    signing.checkpoint_now()
    assert _batch(db, signing, "first") == 1  # the old frontier (at 5) is read once
    assert _batch(db, signing, "second") == 0  # then taken from the batch before
    assert latest_checkpoint_of(db).root_hash == _stored_root(db)
    _batch(db, signing, "rolled back", commit=False)  # its tree of size 14 never existed
    assert _batch(db, signing, "third") == 0  # the frontier at 11, as the second batch left it
    _batch(db, signing, "fourth")  # from the third's tree of size 14, not the rolled-back one
    checkpoint = latest_checkpoint_of(db)
    assert checkpoint.size == 17 and checkpoint.root_hash == _stored_root(db)


def test_a_frontier_of_another_size_is_not_used(db: Database) -> None:
    signing = checkpointer(db)
    signing.checkpoint_now()
    append(db, 2)
    signing.checkpoint_now()
    _batch(db, signing, "first")  # leaves a frontier at 5
    append(db, 2)
    signing.checkpoint_now()  # the tree grew to 7 outside the batches
    assert _batch(db, signing, "second") == 1  # so the stored frontier at 7 is read
    checkpoint = latest_checkpoint_of(db)
    assert checkpoint.size == 10 and checkpoint.root_hash == _stored_root(db)


def latest_checkpoint_of(db: Database) -> StoredCheckpoint:
    with db.read() as connection:
        checkpoint = latest_checkpoint(connection)
    assert checkpoint is not None
    return checkpoint
