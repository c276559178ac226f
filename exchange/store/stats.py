"""Figures about the store that operators watch: log size, latest checkpoint, pending requests.

Read at scrape time by the hub's metrics (:mod:`exchange.hub.metrics`); each is one cheap query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from exchange.store.release_tables import release_requests
from exchange.store.schema import checkpoints, log_head

_LOG_SIZE = select(log_head.c.size).where(log_head.c.id == 1)
_LATEST_CHECKPOINT = (
    select(checkpoints.c.size, checkpoints.c.created_at).order_by(checkpoints.c.size.desc()).limit(1)
)
_PENDING_REQUESTS = select(func.count()).select_from(release_requests).where(
    release_requests.c.decision.is_(None)
)


@dataclass(frozen=True)
class StoreStats:
    log_size: int
    """Entries appended to the audit log."""
    checkpoint_size: int
    """Entries covered by the latest signed checkpoint (0 before the first)."""
    checkpoint_signed_at: datetime | None
    pending_release_requests: int
    """Release requests the originators have neither approved nor denied."""


def read_stats(connection: Connection) -> StoreStats:
    """The store's figures, read in the caller's (read) transaction."""
    log_size = connection.execute(_LOG_SIZE).scalar_one_or_none() or 0
    latest = connection.execute(_LATEST_CHECKPOINT).first()
    pending = connection.execute(_PENDING_REQUESTS).scalar_one()
    return StoreStats(
        log_size=int(log_size),
        checkpoint_size=int(latest.size) if latest is not None else 0,
        checkpoint_signed_at=latest.created_at if latest is not None else None,
        pending_release_requests=int(pending),
    )
