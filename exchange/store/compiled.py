"""Statements compiled once per dialect and executed through the driver: the publish writer's
fixed statements, and the reads of leaves and tree nodes that a full-log verification or a
page of proofs makes thousands of times.

``connection.execute(statement, parameters)`` costs, per call, SQLAlchemy's compiled-cache
lookup (the statement's cache key), building the execution context and processing every
parameter and result column, where a batch's fixed statements (the log lock, a feed head's
bump, the tree head) bind and return plain integers and strings. :class:`CompiledStatement`
renders such a statement's text once per dialect and runs it with :func:`run_on_driver`, with
the parameters in the driver's own style. A list parameter (``bindparam(..., expanding=True)``,
for ``IN``) is expanded per call by SQLAlchemy's own ``construct_expanded_state``; result
columns whose type converts values (a timestamp) are converted by the type's own result
processor, so the rows hold what ``connection.execute`` would have returned. It refuses, when
compiled, a statement with a parameter whose type converts values: those stay with
``connection.execute``.

:func:`run_on_driver` runs a statement's text on the driver's cursor in the connection's
current transaction, past SQLAlchemy's per-statement layer: even ``exec_driver_sql`` builds an
execution context and a result object per statement, about 15 µs against the driver's 3 µs for
a one-row ``UPDATE ... RETURNING`` on SQLite, and a batch runs a dozen of them. The transaction
is still SQLAlchemy's (the statement runs only inside one), a driver error is still handed to
SQLAlchemy's own error handling (wrapped as ``DBAPIError``, the connection invalidated when the
database went away), and when anyone listens to the engine's cursor events, or no transaction
is open, the statement goes through ``exec_driver_sql`` as before, so every listener sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import Select


@dataclass(frozen=True)
class _Rendered:
    sql: str
    defaults: Mapping[str, Any]
    """The values of the statement's literal parameters (``id = 1``)."""
    positions: tuple[str, ...] | None
    """The parameter names in order, for a positional parameter style; ``None`` for a named
    one."""
    expanding: SQLCompiler | None
    """The compiled statement, when a list parameter is expanded per call."""
    results: tuple[Callable[[Any], Any] | None, ...] | None
    """Per result column its conversion (``None``: none); ``None`` when no column has one."""


class CompiledStatement:
    """A Core statement whose parameters need no conversion, executed through the driver with
    its text compiled once per dialect."""

    def __init__(self, statement: Select[Any] | UpdateBase) -> None:
        self.statement = statement
        self._rendered: dict[str, _Rendered] = {}

    def execute(
        self, connection: Connection, parameters: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run the statement in the connection's current transaction; the rows it returned."""
        rendered, sql, values = self._bound(connection, parameters)
        return _converted(rendered, run_on_driver(connection, sql, values))

    def batches(
        self, connection: Connection, parameters: Mapping[str, Any] | None, size: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Run the statement and hand on its rows in lists of at most ``size``, each read from
        the driver as the caller takes it (a long result is never held whole)."""
        rendered, sql, values = self._bound(connection, parameters)
        for rows in batches_on_driver(connection, sql, values, size):
            yield _converted(rendered, rows)

    def _bound(
        self, connection: Connection, parameters: Mapping[str, Any] | None
    ) -> tuple[_Rendered, str, Any]:
        """The rendering for the connection's dialect, the text to run and its parameters."""
        dialect = connection.dialect
        rendered = self._rendered.get(dialect.name) or self._render(dialect)
        if rendered.expanding is not None:
            state = rendered.expanding.construct_expanded_state(parameters or {})
            return (
                rendered,
                state.statement,
                state.positional_parameters if dialect.positional else state.parameters,
            )
        values = dict(rendered.defaults)
        if parameters:
            values.update(parameters)
        if rendered.positions is None:
            return rendered, rendered.sql, values
        return rendered, rendered.sql, tuple(values[name] for name in rendered.positions)

    def scalar(self, connection: Connection, parameters: Mapping[str, Any] | None = None) -> Any:
        """The first column of the statement's one row, or ``None`` for no row; more than one
        row is an error (as ``scalar_one_or_none``)."""
        rows = self.execute(connection, parameters)
        if len(rows) > 1:
            raise ValueError(f"{len(rows)} rows where at most one was expected")
        return rows[0][0] if rows else None

    def _render(self, dialect: Dialect) -> _Rendered:
        compiled = self.statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        for name, bind in compiled.binds.items():
            if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
                raise ValueError(f"parameter {name!r} needs a conversion: use connection.execute")
        conversions = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in self.statement.exported_columns
        )
        expanding = any(bind.expanding for bind in compiled.binds.values())
        defaults = dict(compiled.params)  # the literal ones' values; None for the others
        positions = tuple(compiled.positiontup or ()) if compiled.positional else None
        rendered = _Rendered(
            compiled.string,
            defaults,
            positions,
            compiled if expanding else None,
            conversions if any(c is not None for c in conversions) else None,
        )
        self._rendered[dialect.name] = rendered
        return rendered


def _converted(rendered: _Rendered, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    if rendered.results is None:
        return rows
    return [
        tuple(
            value if convert is None else convert(value)
            for convert, value in zip(rendered.results, row, strict=True)
        )
        for row in rows
    ]


def _through_sqlalchemy(connection: Connection) -> bool:
    """Whether a statement must go through ``exec_driver_sql``: no transaction is open (its
    autobegin is SQLAlchemy's), or someone listens to the engine's cursor events."""
    dispatch = connection.dispatch
    return (
        not connection.in_transaction()
        or bool(dispatch.before_cursor_execute)
        or bool(dispatch.after_cursor_execute)
    )


def run_on_driver(
    connection: Connection,
    sql: str,
    parameters: Any,
    *,
    many: bool = False,
) -> list[tuple[Any, ...]]:
    """Run ``sql`` (in the driver's parameter style) on the driver's cursor, in the
    connection's current transaction, with ``parameters`` (a tuple or a mapping), or
    ``many``: once per row of ``parameters`` (a list of them; ``executemany``). Returns the rows
    the statement returned (none for one that returns none)."""
    if _through_sqlalchemy(connection):
        result = connection.exec_driver_sql(sql, parameters)
        return [tuple(row) for row in result] if result.returns_rows else []
    with driver_cursor(connection) as cursor, driver_errors(connection, cursor, sql, parameters):
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        return list(cursor.fetchall()) if cursor.description is not None else []


def batches_on_driver(
    connection: Connection, sql: str, parameters: Any, size: int
) -> Iterator[list[tuple[Any, ...]]]:
    """:func:`run_on_driver` for a query whose rows are handed on in lists of at most
    ``size``, each fetched from the driver's cursor as the caller takes it."""
    if _through_sqlalchemy(connection):
        for partition in connection.exec_driver_sql(sql, parameters).partitions(size):
            yield [tuple(row) for row in partition]
        return
    with driver_cursor(connection) as cursor:
        with driver_errors(connection, cursor, sql, parameters):
            cursor.execute(sql, parameters)
        while True:
            with driver_errors(connection, cursor, sql, parameters):
                rows = list(cursor.fetchmany(size))
            if not rows:
                return
            yield rows


@contextmanager
def driver_cursor(connection: Connection) -> Iterator[Any]:
    """A cursor of the connection's driver connection, closed after use."""
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


@contextmanager
def driver_errors(connection: Connection, cursor: Any, sql: str, parameters: Any) -> Iterator[None]:
    """A driver error handed to SQLAlchemy's own error handling, which raises it wrapped as
    ``DBAPIError`` (and invalidates the connection when the database went away)."""
    try:
        yield
    except connection.dialect.loaded_dbapi.Error as error:
        connection._handle_dbapi_exception(error, sql, parameters, cursor, None)
        raise  # not reached: the handler raises SQLAlchemy's error for it
