"""The audit errors the client raises, re-exported from :mod:`exchange.audit.errors`.

There is one class of each, so that ``except exchange_client.FeedGapError`` also catches what the
pure verifiers of :mod:`exchange.audit.verify` raise.
"""

from __future__ import annotations

from exchange.audit.errors import FeedGapError, LogInconsistentError

__all__ = ["FeedGapError", "LogInconsistentError"]
