"""The store's own errors: database failures, mapped from the driver's exceptions in one place
(:func:`exchange.store.db.storage_errors`), so that nothing above the store handles them.

They belong to the one error tree (:class:`~exchange.errors.ExchangeError`) but stay on the hub's
side: a client sees them only as the hub's failure.
"""

from __future__ import annotations

from exchange.errors import ExchangeError


class StorageError(ExchangeError):
    """The hub's database failed: unreachable, a lost connection, a statement it refused."""

    reason = "STORAGE_FAILED"


class StorageConflictError(StorageError):
    """A write collided with a concurrent one (a constraint another replica's commit took)."""

    reason = "STORAGE_CONFLICT"


class DatabaseUnavailableError(StorageError):
    """The database cannot be reached, dropped the connection or has no connection to spare: a
    passing outage, answered ``UNAVAILABLE`` so that clients retry."""

    reason = "DATABASE_UNAVAILABLE"
