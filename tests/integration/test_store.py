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
