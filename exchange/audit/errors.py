"""The audit log's verification errors: what a client raises when the hub's log does not add up.

Both are :class:`~exchange.errors.VerificationError` (CLI exit code 3). The client library
re-exports them; they live here, beside the pure verifiers that raise them.
"""

from __future__ import annotations

from exchange.errors import VerificationError

__all__ = ["FeedGapError", "LogInconsistentError"]


class LogInconsistentError(VerificationError):
    """Two checkpoints of the log that cannot both be true: a rewritten history or a fork.

    ``known_size``/``known_root`` describe the checkpoint already trusted, ``new_size``/
    ``new_root`` the one that does not extend (or equal) it; the verifiers in
    :mod:`exchange.audit.verify` always set them, other callers may leave them ``None``.
    """

    reason = "LOG_INCONSISTENT"

    def __init__(
        self,
        message: str,
        *,
        known_size: int | None = None,
        known_root: bytes | None = None,
        new_size: int | None = None,
        new_root: bytes | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.known_size = known_size
        self.known_root = known_root
        self.new_size = new_size
        self.new_root = new_root


class FeedGapError(VerificationError):
    """The feed skipped a sequence number: the hub withheld (or lost) an event meant for us.

    ``missing_sequence`` is the first sequence number that never arrived.
    """

    reason = "FEED_GAP"

    def __init__(self, message: str, *, missing_sequence: int, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.missing_sequence = missing_sequence
