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
