"""Errors only the client can detect, added to the one tree of :mod:`exchange.errors`."""

from __future__ import annotations

from exchange.errors import VerificationError


class FeedGapError(VerificationError):
    """The feed skipped a sequence number: the hub withheld (or lost) an event meant for us.

    ``missing_sequence`` is the first sequence number that never arrived.
    """

    reason = "FEED_GAP"

    def __init__(self, message: str, *, missing_sequence: int, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.missing_sequence = missing_sequence


class LogInconsistentError(VerificationError):
    """The hub showed a log checkpoint that is not consistent with one this client verified."""

    reason = "LOG_INCONSISTENT"
