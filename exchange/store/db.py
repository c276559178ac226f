"""Database engines for the hub: SQLite (embedded default) and PostgreSQL (psycopg 3).

SQLite needs care (TRAPS.md): WAL and ``synchronous=FULL`` are per connection, and Python's
``sqlite3`` issues no ``BEGIN`` before a ``SELECT``, so read-then-write sequences race.  Write
transactions therefore begin with ``BEGIN IMMEDIATE``; read-only ones (``Database.read``) begin
deferred so that readers never queue behind writers.

Every failure of the database leaving a transaction of :class:`Database` (an error the driver
raised, a lost connection, an exhausted pool) is mapped here to
:class:`~exchange.errors.StorageError` (an integrity violation, a concurrent writer's, to
:class:`~exchange.errors.StorageConflictError`), so that nothing above the store handles
driver errors. A statement the store itself got wrong (a naive datetime for a timestamp
column) stays SQLAlchemy's ``StatementError``: a bug, not an outage.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from exchange.errors import ConfigurationError
from exchange.store.errors import DatabaseUnavailableError, StorageConflictError, StorageError

_READ_ONLY = "exchange_read_only"

POSTGRESQL_CONNECT_TIMEOUT_SECONDS = 10
"""How long a PostgreSQL connection may take before it fails (``?connect_timeout=`` overrides)."""


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's begin event, not the driver, open transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def create_database_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``)."""
    try:
        parsed = make_url(url)
    except Exception as e:  # sqlalchemy raises ArgumentError, a bare Exception subclass
        raise ConfigurationError(f"not a database URL: {url!r}") from e
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        connect_args = (
            {} if "connect_timeout" in parsed.query
            else {"connect_timeout": POSTGRESQL_CONNECT_TIMEOUT_SECONDS}
        )
        return create_engine(
            parsed, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args
        )
    raise ConfigurationError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


class Database:
    """The hub's database: an engine and the two kinds of transaction the store uses."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # SQLite's busy handler sleeps and polls; writers of this process queue on a lock
        # instead, and the busy timeout is left for writers in other processes.
        self._sqlite_writer = threading.Lock() if engine.dialect.name == "sqlite" else None

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(create_database_engine(url))

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite); commits on success."""
        with storage_errors():
            if self._sqlite_writer is None:
                with self.engine.begin() as connection:
                    yield connection
                return
            with self._sqlite_writer, self.engine.begin() as connection:
                yield connection

    @contextmanager
    def write_on(self, connection: Connection) -> Iterator[Connection]:
        """A write transaction on ``connection``, a connection its caller holds for good (the
        publish writer's), like :meth:`write` but without a pool checkout (and its PostgreSQL
        ping) per transaction. A connection the database dropped is replaced at the next one."""
        with storage_errors():
            if self._sqlite_writer is None:
                with connection.begin():
                    yield connection
                return
            with self._sqlite_writer, connection.begin():
                yield connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction on one snapshot that never blocks writers.

        Every statement in it sees the same committed state: SQLite's deferred transaction under
        WAL keeps the snapshot of its first read, and on PostgreSQL the transaction runs at
        REPEATABLE READ (READ COMMITTED would take a new snapshot per statement, so a feed page
        and the feed head read after it could disagree).
        """
        options: dict[str, Any] = {_READ_ONLY: True}
        if self.is_postgresql:
            options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with (
            storage_errors(),
            self.engine.connect().execution_options(**options) as connection,
            connection.begin(),
        ):
            yield connection

    def migrate(self) -> None:
        """Bring the schema to the latest Alembic revision shipped in the package.

        This is the first use of the database by every hub command, so a database that cannot
        be reached or opened is one :class:`ConfigurationError` here, naming the URL (without
        its password) and what failed.
        """
        try:
            upgrade(self.engine)
        except DBAPIError as e:
            raise database_error(self.engine.url, e) from e

    def dispose(self) -> None:
        self.engine.dispose()


_UNAVAILABLE = "the hub's database is unavailable; try again shortly"

# SQLite's operational errors that pass: a writer holding the file, a file that cannot be opened.
_SQLITE_OUTAGES = ("database is locked", "unable to open", "disk I/O error")


def is_outage(error: DBAPIError) -> bool:
    """Whether a driver error is the database being out of reach (the client should retry), not a
    statement the database refused."""
    if error.connection_invalidated:
        return True
    if isinstance(error, InterfaceError):
        return True  # the connection was closed under the statement
    if not isinstance(error, OperationalError):
        return False
    if isinstance(error.orig, sqlite3.OperationalError):
        return any(text in str(error.orig) for text in _SQLITE_OUTAGES)
    return True  # PostgreSQL: the server could not be reached, went away or is shutting down


@contextmanager
def storage_errors() -> Iterator[None]:
    """Map the database failures raised inside the block to the store's domain errors."""
    try:
        yield
    except (DisconnectionError, PoolTimeoutError) as e:
        raise DatabaseUnavailableError(_UNAVAILABLE) from e
    except DBAPIError as e:
        raise storage_error(e) from e


def storage_error(error: DBAPIError) -> StorageError:
    """The store's domain error for a driver error (:func:`storage_errors` raises it)."""
    if isinstance(error, IntegrityError):
        return StorageConflictError(f"the write collided with another: {error.orig}")
    if is_outage(error):
        return DatabaseUnavailableError(_UNAVAILABLE)
    return StorageError(f"the database failed: {error}")


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration pointing at the migrations inside the installed package."""
    config = Config()
    location = resources.files("exchange.store") / "migrations"
    config.set_main_option("script_location", str(location))
    config.attributes["engine"] = engine
    return config


MIGRATION_LOCK = 0x65786368  # "exch": the PostgreSQL advisory lock migrations take turns on


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision``.

    On PostgreSQL, replicas starting together take turns on an advisory lock, so the second
    finds the schema migrated instead of racing the first through the same DDL.
    """
    if engine.dialect.name != "postgresql":
        command.upgrade(alembic_config(engine), revision)
        return
    with engine.connect() as lock:
        lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            command.upgrade(alembic_config(engine), revision)
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})


# What the drivers say, and what the operator reads.  The drivers give no code for a failed
# connection (psycopg's ``sqlstate`` is empty until a server answers), so their text decides.
_DATABASE_FAILURES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), text)
    for pattern, text in (
        (r"connection refused", "connection refused: is the database server running there?"),
        (
            r"failed to resolve host|could not translate host name|name or service not known",
            "unknown host: check the host name in the URL",
        ),
        (
            r"password authentication failed|no password supplied|authentication failed",
            "authentication failed: check the user and password",
        ),
        (r'role "[^"]*" does not exist', "authentication failed: no such database user"),
        (
            r'database "[^"]*" does not exist',
            "the database does not exist: create it, or correct the URL",
        ),
        (r"timeout expired|timed out", "no answer from the database server in time"),
        (
            r"unable to open database file",
            "cannot open the database file: does its directory exist, may the hub write there?",
        ),
        (r"file is not a database", "the file is not an SQLite database"),
        (r"readonly database", "the database is read-only for the hub"),
    )
)


def database_error(url: URL, error: DBAPIError) -> ConfigurationError:
    """One line for a database the hub cannot use: the URL without its password, and why."""
    said = str(error.orig).strip()
    why = next(
        (text for pattern, text in _DATABASE_FAILURES if pattern.search(said)),
        said.splitlines()[0] if said else type(error.orig).__name__,
    )
    shown = url.render_as_string(hide_password=True)
    return ConfigurationError(
        f"database {shown}: {why} (set database_url in hub.toml, --database or "
        "EXCHANGE_HUB_DATABASE_URL)",
        reason="DATABASE_UNAVAILABLE",
    )
