"""The storage-backed audit log: appending leaves in the caller's transaction.

Appends take the one log lock (an ``UPDATE`` of the single ``log_head`` row, which PostgreSQL
row-locks until commit and which SQLite's ``BEGIN IMMEDIATE`` already serializes), so log
indexes — and the per-agency feed sequences assigned after them in the same transaction — are
dense and in commit order across hub replicas.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, insert, update

from exchange.audit.leaves import SALT_BYTES, make_leaf
from exchange.audit.merkle import leaf_hash
from exchange.store.schema import log_entries, log_head


def append_entry(
    connection: Connection,
    *,
    entry_type: str,
    body: bytes,
    references: Sequence[str],
    entitled: Iterable[str],
    now: datetime,
) -> int:
    """Append one leaf in the current transaction and return its index."""
    size = connection.execute(
        update(log_head).where(log_head.c.id == 1).values(size=log_head.c.size + 1).returning(
            log_head.c.size
        )
    ).scalar_one()
    index = int(size) - 1
    salt = os.urandom(SALT_BYTES)
    leaf = make_leaf(entry_type, now, body, salt, references)
    connection.execute(
        insert(log_entries).values(
            idx=index,
            entry_type=entry_type,
            logged_at=now,
            leaf=leaf,
            leaf_hash=leaf_hash(leaf),
            body=body,
            salt=salt,
            entitled=" ".join(sorted(set(entitled))),
        )
    )
    return index
