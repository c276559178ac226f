"""Checkpoints and cosignatures in the database, and the checkpointer that signs them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, insert, select

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
from exchange.store.checkpoints import add_cosignature, latest_checkpoint, sign_checkpoint
from exchange.store.db import Database
from exchange.store.group_commit import GroupCommit
from exchange.store.log import append_entry
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


def append_unit(index: int) -> Callable[[Connection], int]:
    return lambda connection: append_one(connection, f"unit {index}".encode())


def test_a_group_commit_signs_its_own_appends_before_its_one_commit(db: Database) -> None:
    signing = checkpointer(db)
    signing.checkpoint_now()
    append(db, 6)  # appended elsewhere and not hashed yet: the batch's checkpoint covers them too
    committer = GroupCommit(db, on_batch=signing.sign_in)
    indexes = [committer.run(append_unit(i)) for i in range(3)]
    assert indexes == [6, 7, 8]
    latest = signing.checkpoint_covering(9)  # known already: no new signature, no new row
    with db.read() as connection:
        stored = latest_checkpoint(connection)
        rows = connection.execute(select(func.count()).select_from(checkpoints)).scalar_one()
    assert stored == latest and latest.size == 9
    assert rows == 4  # the empty log's, then one per batch: each unit ran as its own batch
    opened = open_checkpoint(latest.note, SIGNER.verifier(), origin=ORIGIN)
    assert opened.checkpoint.size == 9


def test_a_failing_batch_hook_leaves_the_units_committed(db: Database) -> None:
    committed: list[bool] = []

    def broken(connection):  # type: ignore[no-untyped-def]
        append_entry(
            connection, entry_type="feed_event", body=b"hook", references=[], entitled=[], now=NOW
        )
        committed.append(True)
        raise InvalidInputError("no signature today")

    committer = GroupCommit(db, on_batch=broken)
    assert committer.run(append_unit(0)) == 0
    with db.read() as connection:
        size = connection.execute(select(func.count()).select_from(log_entries)).scalar_one()
    assert committed == [True] and size == 1  # the unit stands; the hook's own write is undone
