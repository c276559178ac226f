"""Group commit on both databases: shared transactions, per-unit rollback, every result delivered."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Connection, func, insert, select

from exchange.errors import ConflictError
from exchange.store.db import Database
from exchange.store.group_commit import GroupCommit
from exchange.store.schema import feed_heads


@pytest.fixture
def db(database_url: str):  # type: ignore[no-untyped-def]
    database = Database.from_url(database_url)
    database.migrate()
    yield database
    database.dispose()


def add_head(agency: str, *, fail: bool) -> object:
    def work(connection: Connection) -> str:
        connection.execute(insert(feed_heads).values(agency_id=agency, last_sequence=1))
        if fail:
            raise ConflictError(f"{agency} refused after writing")
        return agency

    return work


def test_concurrent_units_commit_together_and_a_failing_one_rolls_back_alone(db: Database) -> None:
    committer = GroupCommit(db, max_batch=8)
    results: dict[str, object] = {}
    barrier = threading.Barrier(24)

    def caller(index: int) -> None:
        agency = f"agency-{index}"
        barrier.wait()
        try:
            results[agency] = committer.run(add_head(agency, fail=index % 5 == 0))  # type: ignore[arg-type]
        except ConflictError as error:
            results[agency] = error

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = {a for a, r in results.items() if isinstance(r, ConflictError)}
    assert failed == {f"agency-{i}" for i in range(24) if i % 5 == 0}
    assert all(results[a] == a for a in results if a not in failed)
    with db.read() as connection:
        stored = set(connection.execute(select(feed_heads.c.agency_id)).scalars())
        count = connection.execute(select(func.count()).select_from(feed_heads)).scalar_one()
    assert stored == set(results) - failed
    assert count == 24 - len(failed)


def test_a_database_error_fails_the_batch_and_the_next_batch_still_runs(db: Database) -> None:
    committer = GroupCommit(db)
    with db.write() as connection:
        connection.execute(insert(feed_heads).values(agency_id="taken", last_sequence=1))
    with pytest.raises(Exception) as failed:  # the database's own integrity error
        committer.run(add_head("taken", fail=False))  # type: ignore[arg-type]
    assert "taken" in str(failed.value) or "UNIQUE" in str(failed.value).upper()
    assert committer.run(add_head("fresh", fail=False)) == "fresh"  # type: ignore[arg-type]


def test_a_unit_alone_that_refuses_after_writing_leaves_nothing(db: Database) -> None:
    committer = GroupCommit(db)
    with pytest.raises(ConflictError, match="alone refused after writing"):
        committer.run(add_head("alone", fail=True))  # type: ignore[arg-type]
    with db.read() as connection:
        count = connection.execute(select(func.count()).select_from(feed_heads)).scalar_one()
    assert count == 0
    assert committer.run(add_head("next", fail=False)) == "next"  # type: ignore[arg-type]
