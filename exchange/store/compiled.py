"""Statements the publish writer runs once per batch, compiled once per dialect and executed
through the driver.

``connection.execute(statement, parameters)`` costs, per call, SQLAlchemy's compiled-cache
lookup (the statement's cache key), building the execution context and processing every
parameter and result column, where a batch's fixed statements (the log lock, a feed head's
bump, the tree head) bind and return plain integers and strings. :class:`CompiledStatement`
renders such a statement's text once per dialect and hands it to
``connection.exec_driver_sql`` (so the transaction, the events and the error mapping are
SQLAlchemy's as before) with the parameters in the driver's own style. It refuses, when
compiled, a statement with a parameter or result column whose type converts values: those
stay with ``connection.execute``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, CursorResult
from sqlalchemy.engine import Dialect
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


class CompiledStatement:
    """A Core statement whose parameters and results need no conversion, executed through the
    driver with its text compiled once per dialect."""

    def __init__(self, statement: Select[Any] | UpdateBase) -> None:
        self.statement = statement
        self._rendered: dict[str, _Rendered] = {}

    def execute(
        self, connection: Connection, parameters: Mapping[str, Any] | None = None
    ) -> CursorResult[Any]:
        """Run the statement in the connection's current transaction."""
        dialect = connection.dialect
        rendered = self._rendered.get(dialect.name) or self._render(dialect)
        values = dict(rendered.defaults)
        if parameters:
            values.update(parameters)
        if rendered.positions is None:
            return connection.exec_driver_sql(rendered.sql, values)
        return connection.exec_driver_sql(
            rendered.sql, tuple(values[name] for name in rendered.positions)
        )

    def _render(self, dialect: Dialect) -> _Rendered:
        compiled = self.statement.compile(dialect=dialect)
        for name, bind in compiled.binds.items():
            if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
                raise ValueError(f"parameter {name!r} needs a conversion: use connection.execute")
        for column in self.statement.exported_columns:
            if column.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
                raise ValueError(
                    f"result column {column.key!r} needs a conversion: use connection.execute"
                )
        defaults = dict(compiled.params)  # the literal ones' values; None for the others
        positions = tuple(compiled.positiontup or ()) if compiled.positional else None
        rendered = _Rendered(compiled.string, defaults, positions)
        self._rendered[dialect.name] = rendered
        return rendered
