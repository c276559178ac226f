"""The publish writer's rows, on SQLite and PostgreSQL: what it stores through the driver
(:mod:`exchange.store.bulk`) is, byte for byte, what SQLAlchemy's own inserts store for the same
values, and those values are the publishes' own.

One batch of publishes (an embargoed item, an expiring one, items for two recipients, a second
version, a retry) is written by the writer. Every row it stored is read back through SQLAlchemy
and inserted again into a second, fresh database with ``connection.execute(insert(table), dicts)``
(the path the store took before); then the two databases' rows are compared as the database
itself renders them (SQLite's ``quote()``, with the type of each value; PostgreSQL's row text).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Table, insert, select

from exchange.hub.app import Hub
from exchange.statements.codec import encode
from exchange.statements.publish import CheckedPublish
from exchange.statements.sealing import summary_item
from exchange.store.bulk import PAGE_ROWS, BulkInsert
from exchange.store.db import Database
from exchange.store.publish_writer import Receipt
from exchange.store.schema import (
    agencies,
    alerts,
    feed_events,
    grants,
    item_audience,
    items,
    log_entries,
    log_subtrees,
)
from exchange.v1 import statements_pb2
from tests.conftest import _postgres_database
from tests.integration.agency import TestAgency, note_item
from tests.integration.test_publish_batches import SUMMARY, checked, write_one_batch

Policy = statements_pb2.ReleasePolicy

# In the order their foreign keys allow.
WRITTEN = (log_entries, alerts, items, item_audience, grants, feed_events)


@pytest.fixture
def agency_a(hub: Hub, exchange_dir: Path) -> Iterator[TestAgency]:
    agency = TestAgency(exchange_dir, "agency-a", hub.port)  # type: ignore[arg-type]
    yield agency
    agency.close()


@pytest.fixture
def second_database(database_url: str, tmp_path: Path) -> Iterator[Database]:
    """A fresh, migrated database of the same kind as the hub's."""
    if database_url.startswith("sqlite"):
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path / 'again.db'}"])
    else:
        urls = _postgres_database()
    url = next(urls)
    database = Database.from_url(url)
    try:
        database.migrate()
        yield database
    finally:
        database.dispose()
        next(urls, None)  # drops the PostgreSQL database


def publishes(hub: Hub, agency: TestAgency) -> list[CheckedPublish]:
    now = datetime.now(UTC)
    embargoed = note_item("raid", "raid at dawn", ["agency-b"], release=Policy.EMBARGO)
    embargoed.policy.embargo_until.FromDatetime(now + timedelta(hours=2, microseconds=7))
    expiring = note_item("route", "the route", ["agency-b", "agency-c"])
    expiring.policy.expires_at.FromDatetime(now + timedelta(days=30))
    later = note_item("hold", "on request", ["agency-c"], release=Policy.ON_REQUEST)
    first_items = [embargoed, expiring, later]
    first = agency.seal([summary_item(SUMMARY, first_items), *first_items])
    amended_items = [note_item("route", "the amended route", ["agency-b"])]
    amended = agency.seal(
        [summary_item(SUMMARY, amended_items), *amended_items],
        alert_id=first.manifest.alert_id,
        version=2,
        previous_manifest_hash=first.manifest.hash,
    )
    plain_items = [note_item("note-1", "container MSCU1234565", ["agency-b", "agency-c"])]
    plain = agency.seal([summary_item(SUMMARY, plain_items), *plain_items])
    return [checked(hub, s) for s in (first, amended, plain, first)]  # the last: a retry


def copy_through_sqlalchemy(source: Connection, target: Connection) -> None:
    """Every row of the written tables (and the agencies they name), read back and inserted
    again by SQLAlchemy Core with a parameter dict per row."""
    for table in (agencies, *WRITTEN):
        rows = [dict(row._mapping) for row in source.execute(select(table))]
        if rows:
            target.execute(insert(table), rows)


def stored(connection: Connection, table: Table) -> list[tuple[object, ...]]:
    """The table's rows as the database renders them, in primary key order."""
    order = ", ".join(f'"{column.name}"' for column in table.primary_key.columns)
    if connection.dialect.name == "sqlite":
        columns = ", ".join(
            f'typeof("{column.name}"), quote("{column.name}")' for column in table.columns
        )
        sql = f'SELECT {columns} FROM "{table.name}" ORDER BY {order}'
    else:
        sql = f'SELECT t::text FROM "{table.name}" AS t ORDER BY {order}'
    return [tuple(row) for row in connection.exec_driver_sql(sql)]


def test_the_writer_stores_the_bytes_sqlalchemy_stores_and_the_publishes_values(
    hub: Hub, agency_a: TestAgency, second_database: Database
) -> None:
    batch = publishes(hub, agency_a)
    results = write_one_batch(hub, batch)
    assert all(isinstance(r, Receipt) for r in results)

    with hub.db.read() as source:
        with second_database.write() as target:
            copy_through_sqlalchemy(source, target)
        with second_database.read() as target:
            for table in WRITTEN:
                rows = stored(source, table)
                assert rows, table.name
                assert rows == stored(target, table), table.name

        # And the values are the publishes' own.
        for publish, receipt in zip(batch[:3], results[:3], strict=True):
            assert isinstance(receipt, Receipt)
            now = receipt.outcome.accepted_at
            manifest = publish.manifest
            alert = source.execute(
                select(alerts).where(alerts.c.manifest_hash == manifest.hash)
            ).one()
            assert (
                alert.originator, alert.alert_id, alert.version, bytes(alert.manifest_envelope),
                bytes(alert.request_digest), alert.published_at, alert.log_index, alert.retracted,
            ) == (
                manifest.originator, manifest.alert_id, manifest.version,
                publish.manifest_envelope, publish.digest, now, receipt.outcome.log_index, False,
            )
            item_rows = source.execute(
                select(items).where(items.c.alert_pk == alert.id).order_by(items.c.position)
            ).all()
            assert [
                (
                    r.item_id, r.position, bytes(r.header), bytes(r.ciphertext), r.release,
                    r.embargo_until, r.expires_at, r.summary,
                )
                for r in item_rows
            ] == [
                (
                    i.header.item_id, position, i.header.raw, i.ciphertext, i.release_name,
                    i.embargo_until, i.expires_at, i.header.message.summary,
                )
                for position, i in enumerate(publish.items)
            ]
            audience = source.execute(
                select(item_audience.c.item_id, item_audience.c.agency_id).where(
                    item_audience.c.alert_pk == alert.id
                )
            ).all()
            assert sorted(tuple(r) for r in audience) == sorted(
                (i.header.item_id, agency) for i in publish.items for agency in i.audience
            )
            grant_rows = source.execute(
                select(grants).where(grants.c.alert_pk == alert.id).order_by(grants.c.id)
            ).all()
            assert [
                (
                    r.item_id, r.recipient, r.recipient_key_id, bytes(r.grant), r.available_at,
                    r.created_at, r.delivered_at,
                )
                for r in grant_rows
            ] == [
                (
                    g.item_id, g.recipient, g.recipient_key_id, encode(g),
                    now if g.recipient == manifest.originator else (i.embargo_until or now),
                    now, None,
                )
                for i in publish.items
                for g in i.grants
            ]
            events = source.execute(
                select(feed_events).where(
                    feed_events.c.alert_id == manifest.alert_id,
                    feed_events.c.version == manifest.version,
                )
            ).all()
            assert sorted(
                (e.agency_id, e.sequence, e.kind, e.originator, e.actor, e.created_at,
                 e.log_index, e.item_id, e.request_id)
                for e in events
            ) == sorted(
                (a, m.sequence, "ALERT_PUBLISHED", manifest.originator, manifest.originator,
                 now, m.log_index, "", "")
                for a, m in zip(publish.recipients, receipt.outcome.feed_events, strict=True)
            )
            logged = source.execute(
                select(log_entries).where(log_entries.c.idx == receipt.outcome.log_index)
            ).one()
            assert (bytes(logged.leaf), bytes(logged.body), logged.logged_at) == (
                receipt.leaf, publish.manifest_envelope, now
            )
            assert logged.entitled == " ".join(sorted({manifest.originator, *publish.recipients}))


def test_an_insert_returning_more_rows_than_one_statement_takes_is_paged(
    database_url: str,
) -> None:
    """:meth:`BulkInsert.returning` splits its rows into statements of at most ``PAGE_ROWS``
    rows and returns every row's columns (the writer's batches stay within one page)."""
    database = Database.from_url(database_url)
    try:
        database.migrate()
        rows = [(3, index, index.to_bytes(32, "big")) for index in range(2 * PAGE_ROWS + 7)]
        bulk = BulkInsert(log_subtrees, ["level", "idx", "hash"], returning=["idx", "hash"])
        with database.write() as connection:
            returned = bulk.returning(connection, rows)
        assert sorted((int(idx), bytes(hashed)) for idx, hashed in returned) == [
            (index, hashed) for _, index, hashed in rows
        ]
        with database.read() as connection:
            stored_rows = connection.execute(
                select(log_subtrees).where(log_subtrees.c.level == 3).order_by(log_subtrees.c.idx)
            ).all()
        assert [(r.level, r.idx, bytes(r.hash)) for r in stored_rows] == rows
    finally:
        database.dispose()
