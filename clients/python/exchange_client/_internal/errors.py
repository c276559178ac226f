"""The client's own errors, and the audit errors re-exported from :mod:`exchange.audit.errors`.

There is one class of each audit error, so that ``except exchange_client.FeedGapError`` also
catches what the pure verifiers of :mod:`exchange.audit.verify` raise.
"""

from __future__ import annotations

import os

from exchange.audit.errors import FeedGapError, LogInconsistentError
from exchange.errors import ExchangeError

__all__ = [
    "ClientClosedError",
    "ClientForkedError",
    "FeedGapError",
    "LogInconsistentError",
    "check_same_process",
]


class ClientClosedError(ExchangeError):
    """A ``Client`` (or ``AsyncClient``) used after :meth:`close`: nothing was sent or written."""

    reason = "CLIENT_CLOSED"


class ClientForkedError(ExchangeError):
    """A ``Client`` used in a process forked from the one that created it.

    Its channel and locks belong to the parent; the child must create its own client (the
    profile's state files are safe to share between processes).
    """

    reason = "CLIENT_FORKED"


def check_same_process(created_in: int, what: str) -> None:
    """Raise :class:`ClientForkedError` unless this is process ``created_in``."""
    current = os.getpid()
    if current != created_in:
        raise ClientForkedError(
            f"{what} was created in process {created_in} and cannot be used in process "
            f"{current}, forked from it: create a new client in the child process"
        )
