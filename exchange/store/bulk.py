"""Multi-row inserts executed through the driver, for the publish writer's batches.

``connection.execute(insert(table), rows)`` with a list of dicts costs SQLAlchemy's per-row
parameter processing (a parameter dict per row, built by ``construct_params``, every column's
bind processor called on every value) before the driver's ``executemany`` gets the rows. A
batch of publishes writes some twenty rows per publish, so that work adds up. :class:`BulkInsert`
hands the same rows to the same ``executemany`` (:func:`~exchange.store.compiled.run_on_driver`,
so the transaction, the events and the error mapping are SQLAlchemy's as before) as plain
tuples, with a statement built once per dialect, and applies the columns' own bind processors
itself: each distinct value of a timestamp or boolean column is rendered once per call (a batch stamps every
row with the same time), the binary columns' processors run per value as SQLAlchemy runs them,
except where all they do is wrap the bytes in a ``memoryview`` (``sqlite3.Binary``): sqlite3
binds bytes and a view of them alike, as the same blob. So the driver receives the values
SQLAlchemy would have given it, and the database stores the same bytes.

An insert whose generated keys the caller needs (:meth:`BulkInsert.returning`) is one statement
with a row of placeholders per row and ``RETURNING``, as SQLAlchemy's "insertmanyvalues" renders
it for a batch of this size, its text built once per dialect and row count. The other inserts
are one ``executemany`` on SQLite; on PostgreSQL they are one ``COPY ... FROM STDIN`` each:
psycopg's pipelined ``executemany`` runs some Python per row (binding, preparing, sending), a
statement of many rows instead cost the writer more CPU still, and ``COPY`` formats the rows
in compiled code (``bench/RESULTS.md``, issue 12). The values are the same either way, and so
are the stored bytes; a row the database refuses fails the whole ``COPY`` as it failed the
``executemany``, with the same ``DBAPIError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, LargeBinary, Table
from sqlalchemy.engine import Dialect

from exchange.store.compiled import driver_cursor, driver_errors, run_on_driver

_Processor = Callable[[Any], Any]

PAGE_ROWS = 1000
"""Most rows in one statement of :meth:`BulkInsert.returning` (SQLAlchemy's page size)."""
MAX_PARAMETERS = 32_766
"""Most bound parameters in one statement (SQLite's limit; PostgreSQL's is 65,535)."""
_MANY_CACHED = 256
"""Statement texts kept per :class:`BulkInsert`, by row count."""


@dataclass(frozen=True)
class _Compiled:
    sql: str
    """The statement for one row (``executemany`` runs it per row)."""
    head: str
    """``INSERT INTO table (columns) VALUES ``."""
    values: str
    """One row's ``(?, ...)``."""
    returning: str
    """`` RETURNING ...`` ('' without)."""
    copy: str
    """``COPY table (columns) FROM STDIN``."""
    processors: tuple[tuple[int, _Processor, bool], ...]
    """Per column with a bind processor: its position, the processor, and whether its
    distinct values are rendered once per call (every type but a binary one)."""


class BulkInsert:
    """``INSERT INTO table (columns) VALUES (...)`` executed with many rows at once; each row a
    tuple of the columns' values in ``columns``' order, as the application holds them."""

    def __init__(
        self, table: Table, columns: Sequence[str], *, returning: Sequence[str] = ()
    ) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.returned = tuple(returning)
        for name in (*self.columns, *self.returned):
            if name not in table.c:
                raise ValueError(f"{table.name} has no column {name!r}")
        self._compiled: dict[str, _Compiled] = {}
        self._many: dict[tuple[str, int], str] = {}  # by dialect and row count

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is not None:
            return compiled
        if dialect.paramstyle == "qmark":
            placeholder = "?"
        elif dialect.paramstyle in ("format", "pyformat"):
            placeholder = "%s"
        else:  # pragma: no cover - the hub's drivers are sqlite3 and psycopg
            raise ValueError(f"unsupported parameter style {dialect.paramstyle!r}")
        quote = dialect.identifier_preparer
        values = f"({', '.join([placeholder] * len(self.columns))})"
        returning = (
            f" RETURNING {', '.join(quote.quote(name) for name in self.returned)}"
            if self.returned
            else ""
        )
        sql = (
            f"INSERT INTO {quote.format_table(self.table)} "
            f"({', '.join(quote.quote(name) for name in self.columns)}) VALUES "
        )
        binds_buffers = getattr(dialect.dbapi, "Binary", None) is memoryview
        processors = []
        for position, name in enumerate(self.columns):
            column_type = self.table.c[name].type
            binary = isinstance(column_type, LargeBinary)
            if binary and binds_buffers:
                continue
            process = column_type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors.append((position, process, not binary))
        copy = (
            f"COPY {quote.format_table(self.table)} "
            f"({', '.join(quote.quote(name) for name in self.columns)}) FROM STDIN"
        )
        compiled = _Compiled(sql + values, sql, values, returning, copy, tuple(processors))
        self._compiled[dialect.name] = compiled
        return compiled

    def execute(self, connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert ``rows`` in the connection's current transaction (nothing for no rows)."""
        if not rows:
            return
        compiled = self._compile(connection.dialect)
        parameters: Sequence[tuple[Any, ...]] = rows
        if compiled.processors:
            parameters = _processed(rows, compiled.processors)
        if connection.dialect.name == "postgresql":
            self._copy(connection, compiled, parameters)
            return
        run_on_driver(connection, compiled.sql, parameters, many=True)

    def _copy(
        self, connection: Connection, compiled: _Compiled, rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """PostgreSQL: the rows through ``COPY ... FROM STDIN``, psycopg formatting each row in
        compiled code where its ``executemany`` runs Python per row. A driver error is handed to
        SQLAlchemy as its own statements' are (wrapped as ``DBAPIError``, the connection
        invalidated when the database went away)."""
        with (
            driver_cursor(connection) as cursor,
            driver_errors(connection, cursor, compiled.copy, rows),
            cursor.copy(compiled.copy) as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def returning(
        self, connection: Connection, rows: Sequence[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """Insert ``rows`` and return the ``returning`` columns of each, in that order, as a
        tuple per row (the rows in no particular order): one statement per :data:`PAGE_ROWS`
        rows, as SQLAlchemy pages them."""
        if not rows:
            return []
        compiled = self._compile(connection.dialect)
        parameters: Sequence[tuple[Any, ...]] = rows
        if compiled.processors:
            parameters = _processed(rows, compiled.processors)
        return [row for result in self._paged(connection, compiled, parameters) for row in result]

    def _paged(
        self, connection: Connection, compiled: _Compiled, parameters: Sequence[tuple[Any, ...]]
    ) -> Iterator[list[tuple[Any, ...]]]:
        """One statement with a row of placeholders per row, per page of rows."""
        page = max(1, min(PAGE_ROWS, MAX_PARAMETERS // len(self.columns)))
        for first in range(0, len(parameters), page):
            chunk = parameters[first : first + page]
            flat = tuple(value for row in chunk for value in row)
            sql = self._many_sql(connection.dialect.name, compiled, len(chunk))
            yield run_on_driver(connection, sql, flat)

    def _many_sql(self, dialect: str, compiled: _Compiled, count: int) -> str:
        key = (dialect, count)
        sql = self._many.get(key)
        if sql is None:
            sql = compiled.head + ", ".join([compiled.values] * count) + compiled.returning
            if len(self._many) < _MANY_CACHED:
                self._many[key] = sql
        return sql


def _processed(
    rows: Sequence[tuple[Any, ...]], processors: tuple[tuple[int, _Processor, bool], ...]
) -> list[tuple[Any, ...]]:
    rendered: list[dict[Any, Any]] = [{} for _ in processors]
    processed = []
    for row in rows:
        values = list(row)
        for (position, process, once), seen in zip(processors, rendered, strict=True):
            value = values[position]
            if not once:
                values[position] = process(value)
                continue
            try:
                values[position] = seen[value]
            except KeyError:
                values[position] = seen[value] = process(value)
        processed.append(tuple(values))
    return processed
