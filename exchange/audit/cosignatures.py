"""The hub's rule for accepting an agency's cosignature of a checkpoint: pure, no I/O.

The store keeps the accepted line (:func:`exchange.store.checkpoints.add_cosignature`); this
module decides whether a line is acceptable: it must verify under the cosigner's witness key, and
its timestamp may not lie further in the future than :data:`MAX_COSIGNATURE_CLOCK_SKEW_SECONDS`.
"""

from __future__ import annotations

from datetime import datetime

from exchange.crypto.notes import CosignatureVerifier, verify_cosignature
from exchange.errors import InvalidInputError

__all__ = ["MAX_COSIGNATURE_CLOCK_SKEW_SECONDS", "check_cosignature"]

MAX_COSIGNATURE_CLOCK_SKEW_SECONDS = 300
"""How far in the future (by the hub's clock) a cosignature's timestamp may be."""


def check_cosignature(
    checkpoint_text: str, signature_line: str, verifier: CosignatureVerifier, *, now: datetime
) -> int:
    """Verify ``signature_line`` over ``checkpoint_text`` and return its timestamp.

    Raises :class:`~exchange.errors.SignatureError` for a line that does not verify and
    :class:`~exchange.errors.InvalidInputError` (``COSIGNATURE_TIME_INVALID``) for a timestamp
    too far ahead of ``now``.
    """
    timestamp = verify_cosignature(checkpoint_text, signature_line, verifier)
    latest_allowed = int(now.timestamp()) + MAX_COSIGNATURE_CLOCK_SKEW_SECONDS
    if timestamp > latest_allowed:
        raise InvalidInputError(
            f"cosignature time {timestamp} is in the future", reason="COSIGNATURE_TIME_INVALID"
        )
    return timestamp
