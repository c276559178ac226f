"""Statements compiled once per dialect and run through the driver: the same rows as
``connection.execute``, a statement whose types convert values refused up front, a driver
error raised as SQLAlchemy's, and every statement seen by whoever listens to the engine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError

from exchange.store.compiled import CompiledStatement, run_on_driver
from exchange.store.db import Database
from exchange.store.errors import StorageConflictError
from exchange.store.schema import checkpoints, feed_heads, log_head


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database.from_url(database_url)
    database.migrate()
    yield database
    database.dispose()


def test_a_compiled_statement_binds_its_literals_and_the_callers_parameters(db: Database) -> None:
    bump = (
        update(feed_heads)
        .where(feed_heads.c.agency_id == bindparam("agency"))
        .values(last_sequence=feed_heads.c.last_sequence + bindparam("count"))
        .returning(feed_heads.c.last_sequence)
    )
    compiled = CompiledStatement(bump)
    with db.write() as connection:
        connection.execute(insert(feed_heads).values(agency_id="agency-b", last_sequence=4))
        connection.execute(insert(feed_heads).values(agency_id="agency-c", last_sequence=9))
        assert compiled.execute(connection, {"agency": "agency-b", "count": 3}) == [(7,)]
        assert connection.execute(bump, {"agency": "agency-b", "count": 1}).scalar_one() == 8
        size = CompiledStatement(select(log_head.c.size).where(log_head.c.id == 1))
        assert size.scalar(connection) == 0  # the literal 1 bound by itself
        assert compiled.scalar(connection, {"agency": "agency-x", "count": 1}) is None
        heads = {row.agency_id: row.last_sequence for row in connection.execute(select(feed_heads))}
    assert heads == {"agency-b": 8, "agency-c": 9}


def test_a_statement_whose_parameters_convert_values_is_refused(db: Database) -> None:
    with db.write() as connection, pytest.raises(ValueError, match="needs a conversion"):
        CompiledStatement(insert(checkpoints)).execute(connection, {})  # a timestamp parameter


def test_a_list_parameter_is_expanded_and_converting_results_converted(db: Database) -> None:
    """``IN`` over a list of any length, and a timestamp column read back as
    ``connection.execute`` reads it (an aware UTC datetime on SQLite too)."""
    when = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)
    query = (
        select(checkpoints.c.size, checkpoints.c.created_at)
        .where(checkpoints.c.size.in_(bindparam("sizes", expanding=True)))
        .order_by(checkpoints.c.size)
    )
    compiled = CompiledStatement(query)
    with db.write() as connection:
        for size in (1, 2, 3):
            connection.execute(
                insert(checkpoints).values(
                    size=size, root_hash=bytes(32), note=f"note {size}", created_at=when
                )
            )
        assert compiled.execute(connection, {"sizes": [3, 1]}) == [(1, when), (3, when)]
        assert compiled.execute(connection, {"sizes": [2]}) == [(2, when)]
        expected = [tuple(row) for row in connection.execute(query, {"sizes": [1, 2, 3]})]
        assert compiled.execute(connection, {"sizes": [1, 2, 3]}) == expected


_NEW_HEAD = CompiledStatement(
    insert(feed_heads).values(agency_id=bindparam("agency"), last_sequence=bindparam("count"))
)


def test_a_statement_goes_to_the_driver_past_sqlalchemys_layer(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.write() as connection:
        monkeypatch.setattr(Connection, "exec_driver_sql", _not_the_driver_path)
        _NEW_HEAD.execute(connection, {"agency": "agency-b", "count": 2})
        monkeypatch.undo()
    with db.read() as connection:
        assert connection.execute(select(feed_heads.c.last_sequence)).scalars().all() == [2]


def _not_the_driver_path(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the statement went through exec_driver_sql")


def test_a_statement_the_database_refuses_raises_sqlalchemys_error(db: Database) -> None:
    with db.write() as connection:
        _NEW_HEAD.execute(connection, {"agency": "agency-b", "count": 2})
    with pytest.raises(StorageConflictError) as refused, db.write() as connection:
        _NEW_HEAD.execute(connection, {"agency": "agency-b", "count": 5})
    assert isinstance(refused.value.__cause__, IntegrityError)  # mapped as SQLAlchemy's own
    with db.read() as connection:  # the refused transaction left nothing
        assert connection.execute(select(feed_heads.c.last_sequence)).scalars().all() == [2]


def test_every_statement_is_seen_by_a_listener_of_the_engine(db: Database) -> None:
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.write() as connection:
            _NEW_HEAD.execute(connection, {"agency": "agency-b", "count": 2})
            run_on_driver(connection, "UPDATE feed_heads SET last_sequence = 3", ())
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    touched = [s.split()[0] for s in seen if "feed_heads" in s]
    assert touched == ["INSERT", "UPDATE"]


@pytest.mark.parametrize("listened", [False, True], ids=["on the driver", "while listened to"])
def test_a_query_read_in_batches_hands_on_every_row_in_order(db: Database, listened: bool) -> None:
    query = CompiledStatement(
        select(feed_heads.c.agency_id, feed_heads.c.last_sequence).order_by(feed_heads.c.agency_id)
    )
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    if listened:
        event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.write() as connection:
            for n in range(5):
                _NEW_HEAD.execute(connection, {"agency": f"agency-{n}", "count": n})
            batches = list(query.batches(connection, None, 2))
    finally:
        if listened:
            event.remove(db.engine, "before_cursor_execute", record)
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert [row for batch in batches for row in batch] == [(f"agency-{n}", n) for n in range(5)]
    assert any(s.startswith("SELECT") for s in seen) is listened
