"""The storage-backed audit log: appending leaves in the caller's transaction, and reading them.

Appends take the one log lock (an ``UPDATE`` of the single ``log_head`` row, which PostgreSQL
row-locks until commit and which SQLite's ``BEGIN IMMEDIATE`` already serializes), so log
indexes — and the per-agency feed sequences assigned after them in the same transaction — are
dense and in commit order across hub replicas.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, literal, select, update

from exchange.audit.leaves import SALT_BYTES, make_leaf
from exchange.audit.merkle import leaf_hash
from exchange.store.bulk import BulkInsert
from exchange.store.compiled import CompiledStatement
from exchange.store.schema import feed_events, log_entries, log_head

# Built once: statements executed with parameters reuse their compiled form and cache key.
_TAKE_NEXT_INDEX = (
    update(log_head)
    .where(log_head.c.id == 1)
    .values(size=log_head.c.size + 1)
    .returning(log_head.c.size)
)
_INSERT_ENTRY = insert(log_entries)
_INSERT_ENTRIES = BulkInsert(
    log_entries,
    ["idx", "entry_type", "logged_at", "leaf", "leaf_hash", "body", "salt", "entitled"],
)
_RESERVE_INDEXES = CompiledStatement(
    update(log_head)
    .where(log_head.c.id == 1)
    .values(size=log_head.c.size + bindparam("count"))
    .returning(log_head.c.size)
)
_LOG_SIZE = select(log_head.c.size).where(log_head.c.id == 1)
_LOCK_LOG = _LOG_SIZE.with_for_update()
_SET_LOG_SIZE = CompiledStatement(
    update(log_head).where(log_head.c.id == 1).values(size=bindparam("new_size"))
)
_FEED_EVENT_INDEX = select(feed_events.c.log_index).where(
    feed_events.c.agency_id == bindparam("agency"), feed_events.c.sequence == bindparam("sequence")
)


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
    size = connection.execute(_TAKE_NEXT_INDEX).scalar_one()
    index = int(size) - 1
    salt = os.urandom(SALT_BYTES)
    leaf = make_leaf(entry_type, now, body, salt, references)
    connection.execute(
        _INSERT_ENTRY,
        {
            "idx": index,
            "entry_type": entry_type,
            "logged_at": now,
            "leaf": leaf,
            "leaf_hash": leaf_hash(leaf),
            "body": body,
            "salt": salt,
            "entitled": " ".join(sorted(set(entitled))),
        },
    )
    return index


@dataclass(frozen=True)
class NewEntry:
    """A leaf to append in a batch: what :func:`append_entry` takes, as a value."""

    entry_type: str
    body: bytes
    references: Sequence[str]
    entitled: Iterable[str]


@dataclass(frozen=True)
class AppendedLeaf:
    """A leaf appended in the current transaction: its index, bytes and RFC 9162 leaf hash."""

    index: int
    data: bytes
    hash: bytes


def lock_log(connection: Connection) -> int:
    """Take the log lock in the current transaction (a row lock on PostgreSQL; SQLite's
    ``BEGIN IMMEDIATE`` holds it already) and return the log's size.

    What a transaction reads after this sees every append committed before it, so checks made
    then (an alert version already taken) cannot race another replica's append.
    """
    return int(connection.execute(_LOCK_LOG).scalar_one())


def reserve_indexes(connection: Connection, count: int) -> int:
    """Take the log lock, as :func:`lock_log` does, and move the log's size on by ``count`` in
    the same statement; returns the first index reserved (the size before).

    For a writer that knows how many leaves it will most likely append once its checks (made
    under the lock) are done: it writes them with :func:`insert_entries` and, if it appends
    fewer, gives the rest back with :func:`set_log_size` before it commits, so the committed
    log stays dense. One statement instead of the lock's read and the size's update.
    """
    return int(_RESERVE_INDEXES.scalar(connection, {"count": count})) - count


def set_log_size(connection: Connection, size: int) -> None:
    """Set the log's size in the current transaction, under the log lock (the indexes a
    :func:`reserve_indexes` took and left unused given back)."""
    _SET_LOG_SIZE.execute(connection, {"new_size": size})


def append_entries(
    connection: Connection, start: int, entries: Sequence[NewEntry], *, now: datetime
) -> list[AppendedLeaf]:
    """Append ``entries`` at indexes ``start, start + 1, ...`` with one multi-row insert, under
    the log lock :func:`lock_log` returned ``start`` for; returns them in order."""
    if not entries:
        return []
    appended = insert_entries(connection, start, entries, now=now)
    set_log_size(connection, start + len(entries))
    return appended


def insert_entries(
    connection: Connection, start: int, entries: Sequence[NewEntry], *, now: datetime
) -> list[AppendedLeaf]:
    """Write ``entries``' leaves at indexes ``start, start + 1, ...`` with one multi-row insert,
    leaving the log's size alone (the caller has moved it: :func:`reserve_indexes`)."""
    if not entries:
        return []
    salts = os.urandom(SALT_BYTES * len(entries))
    rows = []
    appended = []
    for offset, entry in enumerate(entries):
        salt = salts[offset * SALT_BYTES : (offset + 1) * SALT_BYTES]
        leaf = make_leaf(entry.entry_type, now, entry.body, salt, entry.references)
        hashed = leaf_hash(leaf)
        appended.append(AppendedLeaf(start + offset, leaf, hashed))
        rows.append(
            (
                start + offset,
                entry.entry_type,
                now,
                leaf,
                hashed,
                entry.body,
                salt,
                " ".join(sorted(set(entry.entitled))),
            )
        )
    _INSERT_ENTRIES.execute(connection, rows)
    return appended


def log_size(connection: Connection) -> int:
    """How many leaves the log holds (committed ones, and the transaction's own appends)."""
    return int(connection.execute(_LOG_SIZE).scalar_one())


@dataclass(frozen=True)
class StoredBody:
    """The body of one entry and the salt of its references, for an entitled agency."""

    index: int
    body: bytes | None
    """``None`` once purged (the leaf stays)."""
    salt: bytes


# Run through the driver (:class:`~exchange.store.compiled.CompiledStatement`): a full-log
# verification reads every leaf here, and SQLAlchemy's result rows cost more than the driver's.
_READ_LEAVES = CompiledStatement(
    select(log_entries.c.idx, log_entries.c.leaf, log_entries.c.entry_type)
    .where(log_entries.c.idx >= bindparam("start"), log_entries.c.idx < bindparam("end"))
    .order_by(log_entries.c.idx)
)

StoredLeaf = tuple[int, bytes, str]
"""One leaf as anyone may read it: its index, canonical bytes and entry type (its log time is
in the bytes: :func:`~exchange.audit.leaves.logged_micros`)."""


def read_leaves(connection: Connection, start: int, end: int) -> Iterator[list[StoredLeaf]]:
    """The stored leaves with index in ``[start, end)``, ascending (a missing row is skipped),
    in lists of at most :data:`_LEAVES_PER_BATCH`.

    Read in batches as the caller consumes them: a page of leaves is then never held as rows,
    tuples and messages all at once, which in a busy process made the garbage collector's
    passes cost more than the page itself.
    """
    for rows in _READ_LEAVES.batches(connection, {"start": start, "end": end}, _LEAVES_PER_BATCH):
        yield [(int(idx), bytes(leaf), entry_type) for idx, leaf, entry_type in rows]


_LEAVES_PER_BATCH = 500


def leaves_at(connection: Connection, indices: Iterable[int]) -> dict[int, bytes]:
    """The canonical bytes of the stored leaves at ``indices`` (a missing one is left out)."""
    wanted = sorted(set(indices))
    if not wanted:
        return {}
    rows = connection.execute(
        select(log_entries.c.idx, log_entries.c.leaf).where(log_entries.c.idx.in_(wanted))
    )
    return {int(row.idx): bytes(row.leaf) for row in rows}


def entitled_bodies(
    connection: Connection, agency_id: str, indices: Iterable[int]
) -> dict[int, StoredBody]:
    """The bodies among ``indices`` that ``agency_id`` is entitled to; others are left out."""
    wanted = sorted(set(indices))
    if not wanted:
        return {}
    # A run of consecutive indices (what a full-log verification asks for) is read as a range:
    # one statement with two parameters instead of one parameter per index.
    first, last = wanted[0], wanted[-1]
    if last - first + 1 == len(wanted):
        rows = connection.execute(
            _ENTITLED_RANGE, {"first": first, "last": last, "agency": _like_agency(agency_id)}
        )
    else:
        rows = connection.execute(
            _ENTITLED_BODIES, {"indices": wanted, "agency": _like_agency(agency_id)}
        )
    return {
        int(idx): StoredBody(
            index=int(idx), body=None if body is None else bytes(body), salt=bytes(salt)
        )
        for idx, body, salt, entitled in rows
        if agency_id in entitled.split()
    }


def _like_agency(agency_id: str) -> str:
    """The ``LIKE`` pattern of an entitled list naming ``agency_id`` (wildcards escaped)."""
    escaped = agency_id.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"% {escaped} %"


# Bodies are read only for the entries whose list names the agency (the caller's check on the
# split list is the exact one; the LIKE only spares reading the bodies of everyone else's).
_ENTITLED_SELECT = select(
    log_entries.c.idx, log_entries.c.body, log_entries.c.salt, log_entries.c.entitled
)
_NAMES_AGENCY = (literal(" ") + log_entries.c.entitled + literal(" ")).like(
    bindparam("agency"), escape="/"
)
_ENTITLED_RANGE = _ENTITLED_SELECT.where(
    log_entries.c.idx >= bindparam("first"), log_entries.c.idx <= bindparam("last"), _NAMES_AGENCY
)
_ENTITLED_BODIES = _ENTITLED_SELECT.where(
    log_entries.c.idx.in_(bindparam("indices", expanding=True)), _NAMES_AGENCY
)


def index_of_leaf(connection: Connection, leaf_hash_value: bytes, *, below: int) -> int | None:
    """The smallest index below ``below`` whose leaf hash is ``leaf_hash_value``, if any."""
    found = connection.execute(
        select(log_entries.c.idx)
        .where(log_entries.c.leaf_hash == leaf_hash_value, log_entries.c.idx < below)
        .order_by(log_entries.c.idx)
        .limit(1)
    ).scalar_one_or_none()
    return None if found is None else int(found)


def feed_event_index(connection: Connection, agency_id: str, sequence: int) -> int | None:
    """The log index of ``agency_id``'s feed event number ``sequence``, if it exists."""
    found = connection.execute(
        _FEED_EVENT_INDEX, {"agency": agency_id, "sequence": sequence}
    ).scalar_one_or_none()
    return None if found is None else int(found)
