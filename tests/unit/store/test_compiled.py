"""Statements compiled once per dialect and run through the driver: the same rows as
``connection.execute``, and a statement whose types convert values refused up front."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import bindparam, insert, select, update

from exchange.store.compiled import CompiledStatement
from exchange.store.db import Database
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
        assert compiled.execute(connection, {"agency": "agency-b", "count": 3}).scalar_one() == 7
        assert connection.execute(bump, {"agency": "agency-b", "count": 1}).scalar_one() == 8
        size = CompiledStatement(select(log_head.c.size).where(log_head.c.id == 1))
        assert size.execute(connection).scalar_one() == 0  # the literal 1 bound by itself
        heads = {row.agency_id: row.last_sequence for row in connection.execute(select(feed_heads))}
    assert heads == {"agency-b": 8, "agency-c": 9}


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(insert(checkpoints), id="a timestamp parameter"),
        pytest.param(select(checkpoints.c.created_at), id="a timestamp result"),
    ],
)
def test_a_statement_whose_types_convert_values_is_refused(db: Database, statement: object) -> None:
    with db.write() as connection, pytest.raises(ValueError, match="needs a conversion"):
        CompiledStatement(statement).execute(connection, {})  # type: ignore[arg-type]
