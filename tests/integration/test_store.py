"""Store transactions on both databases."""

from __future__ import annotations

from sqlalchemy import func, insert, select

from exchange.store.db import Database
from exchange.store.schema import feed_heads


def test_a_read_transaction_sees_one_snapshot(database_url: str) -> None:
    """A feed page and the feed head read after it must agree (the heartbeat relies on it)."""
    db = Database.from_url(database_url)
    db.migrate()
    try:
        with db.read() as reader:
            before = reader.execute(select(func.count()).select_from(feed_heads)).scalar_one()
            with db.write() as writer:
                writer.execute(insert(feed_heads).values(agency_id="agency-x", last_sequence=1))
            after = reader.execute(select(func.count()).select_from(feed_heads)).scalar_one()
        assert after == before
        with db.read() as fresh:
            assert fresh.execute(select(func.count()).select_from(feed_heads)).scalar_one() == before + 1
    finally:
        db.dispose()


def test_timestamps_read_back_as_aware_utc_and_naive_ones_are_refused(database_url: str) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    import pytest
    from sqlalchemy.exc import StatementError

    from exchange.store.schema import agencies

    db = Database.from_url(database_url)
    db.migrate()
    beijing = timezone(timedelta(hours=8))
    added = datetime(2026, 11, 28, 20, 0, tzinfo=beijing)
    try:
        with db.write() as connection:
            connection.execute(
                insert(agencies).values(agency_id="agency-x", ca_certificate=b"x", added_at=added)
            )
        with db.read() as connection:
            stored = connection.execute(select(agencies.c.added_at)).scalar_one()
        assert stored == added and stored.tzinfo == UTC
        with pytest.raises(StatementError, match="timezone-aware"), db.write() as connection:
            connection.execute(
                insert(agencies).values(
                    agency_id="agency-y", ca_certificate=b"y", added_at=datetime(2026, 11, 28)
                )
            )
    finally:
        db.dispose()


def test_one_agencys_cosignature_stored_twice_at_once_keeps_the_later(database_url: str) -> None:
    """Two processes of one agency cosign the same checkpoint at the same moment: on PostgreSQL
    the second waits on the first's row and must then update it, not fail on the key."""
    import threading
    from datetime import UTC, datetime

    from exchange.crypto.notes import CosignatureSigner, NoteSigner, cosign
    from exchange.store.checkpoints import add_cosignature, checkpoint_at, sign_checkpoint
    from exchange.store.schema import agencies, cosignatures

    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    db = Database.from_url(database_url)
    db.migrate()
    signer = NoteSigner("exchange.test/log", bytes(range(32)))
    witness = CosignatureSigner("agency-b", bytes(range(3, 35)))
    with db.write() as connection:
        connection.execute(
            insert(agencies).values(agency_id="agency-b", ca_certificate=b"der", added_at=now)
        )
        signed = sign_checkpoint(connection, signer, origin="exchange.test/log", now=now)
    body = signed.checkpoint_text
    stamp = int(now.timestamp())

    def store(connection, moment: int) -> None:  # type: ignore[no-untyped-def]
        add_cosignature(
            connection,
            cosigner="agency-b",
            checkpoint_text=body,
            signature_line=cosign(body, witness, moment),
            verifier=witness.verifier(),
            now=now,
        )

    failures: list[BaseException] = []

    def second() -> None:
        try:
            with db.write() as connection:
                store(connection, stamp + 5)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(error)

    with db.write() as connection:
        store(connection, stamp)
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=0.5)  # the second caller now waits for this transaction
    thread.join(timeout=10)
    assert not thread.is_alive() and failures == []
    with db.read() as connection:
        stored = checkpoint_at(connection, 0)
        rows = connection.execute(select(func.count()).select_from(cosignatures)).scalar_one()
    assert rows == 1
    assert stored is not None and stored.cosignature_lines == (cosign(body, witness, stamp + 5),)
    db.dispose()


def test_database_failures_leave_the_store_as_domain_errors(database_url: str) -> None:
    """Nothing above the store handles driver errors: a collision is a StorageConflictError,
    any other failure of the database a StorageError, and the transaction is rolled back."""
    import pytest
    from sqlalchemy import text

    from exchange.store.errors import StorageConflictError, StorageError

    db = Database.from_url(database_url)
    db.migrate()
    try:
        with db.write() as connection:
            connection.execute(insert(feed_heads).values(agency_id="agency-y", last_sequence=1))
        with pytest.raises(StorageConflictError), db.write() as connection:
            connection.execute(insert(feed_heads).values(agency_id="agency-z", last_sequence=1))
            connection.execute(insert(feed_heads).values(agency_id="agency-y", last_sequence=2))
        with pytest.raises(StorageError, match="the database failed"), db.read() as connection:
            connection.execute(text("SELECT * FROM no_such_table"))
        with db.read() as connection:
            agencies = set(connection.execute(select(feed_heads.c.agency_id)).scalars())
        assert agencies == {"agency-y"}
    finally:
        db.dispose()
