"""The hub's one publish writer: a thread that owns the write connection and stores queued,
already-verified publishes in batches.

Whatever is queued when the writer is free becomes one batch (up to ``max_batch``): one write
transaction in which every publish is validated under the log lock and then stored with one
multi-row insert per table (:func:`~exchange.store.alerts.publish_alerts`), the batch's leaves
are hashed into the tree from the bytes in hand, one checkpoint is signed, and every receipt's
inclusion proof (and consistency proof from the size its publisher trusts) is computed under
it. Then one durable commit, and only after it are the receipts handed over, together, by one
call of ``deliver`` (the hub resolves its waiting calls with one hop onto its event loop).

A publish the store refuses (a version taken with other bytes, a missing previous version) gets
its own error and stores nothing, while the rest of the batch is stored. If the database itself
refuses the batch (a constraint the validation could not foresee), the batch is rolled back and
run again with each publish in its own savepoint, so only the offending one fails. A failure of
the checkpoint step is logged and the batch is written again without it, so the publishes stand;
their receipts go without proofs, which the client then asks for (``GetInclusionProof``), and
the checkpointer's thread signs their leaves at its next poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from exchange.errors import ExchangeError
from exchange.statements.publish import CheckedPublish
from exchange.store.alerts import PublishedBatch, PublishOutcome, publish_alerts
from exchange.store.checkpoints import StoredCheckpoint
from exchange.store.db import Database, is_outage, storage_error, storage_errors
from exchange.store.errors import DatabaseUnavailableError
from exchange.store.log import leaves_at
from exchange.store.tree import StoredTree
from exchange.v1 import audit_pb2

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_MAX_BATCH = 128
"""Most publishes written in one transaction."""


@dataclass(frozen=True)
class Receipt:
    """A stored publish, with the proof of its alert's leaf when the batch's checkpoint step
    succeeded."""

    outcome: PublishOutcome
    checkpoint: str = ""
    """The signed note the proofs lead to ('' without proofs)."""
    leaf: bytes = b""
    inclusion: audit_pb2.InclusionProof | None = None
    consistency: audit_pb2.ConsistencyProof | None = None


@dataclass(frozen=True)
class SignedBatch:
    """The checkpoint a batch signed in its transaction, the tree to prove under it (holding
    the hashes the batch computed), and what to call once the transaction committed."""

    checkpoint: StoredCheckpoint
    tree: StoredTree
    committed: Callable[[], None]


class BatchSigner(Protocol):
    """Hashes the leaf hashes appended from an index on, in the given transaction, and signs.

    ``hashed_size``, when the batch read it under the tree head's lock (held until the
    commit), spares the signer that read."""

    def __call__(
        self,
        connection: Connection,
        start: int,
        leaf_hashes: Sequence[bytes],
        *,
        hashed_size: int | None = None,
    ) -> SignedBatch: ...


Delivery = Callable[[list[tuple[T, Receipt | BaseException]]], None]
"""Takes every result of one batch, after its commit, from the writer's thread."""


@dataclass(frozen=True)
class QueuedPublish(Generic[T]):
    """A verified publish waiting for the writer, with the log size its publisher trusts (for
    the receipt's consistency proof) and the caller's token."""

    checked: CheckedPublish
    known_size: int
    token: T


class PublishWriter(Generic[T]):
    """The writer thread. :meth:`submit` queues a publish with a token of the caller's (the
    hub's is an asyncio future); ``deliver`` gets ``(token, receipt or error)`` per batch."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime],
        deliver: Delivery[T],
        sign: BatchSigner | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        observe_batch: Callable[[int], None] | None = None,
        sender: str = "",
    ) -> None:
        """``sender`` names this writer in the feed channel's notifications on PostgreSQL
        (:func:`~exchange.store.feed.insert_events`)."""
        self._db = db
        self._sender = sender
        self._clock = clock
        self._deliver = deliver
        self._sign = sign
        self._max_batch = max_batch
        self._observe_batch = observe_batch
        self._queue: list[QueuedPublish[T]] = []
        self._wake = threading.Condition()
        self._stopping = False
        self._in_flight = 0
        self._thread: threading.Thread | None = None

    @property
    def in_flight(self) -> int:
        """Publishes submitted whose results are not delivered yet (queued or being written)."""
        return self._in_flight

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="publish-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def submit(self, checked: CheckedPublish, *, known_size: int, token: T) -> None:
        """Queue a verified publish; its result goes to ``deliver`` with ``token``."""
        with self._wake:
            if self._stopping:
                stopped = True
            else:
                stopped = False
                self._queue.append(QueuedPublish(checked, known_size, token))
                self._in_flight += 1
                self._wake.notify()
        if stopped:
            self._deliver([(token, DatabaseUnavailableError("the hub is stopping; try again"))])

    def _run(self) -> None:
        connection: Connection | None = None
        try:
            while True:
                with self._wake:
                    while not self._queue and not self._stopping:
                        self._wake.wait()
                    if not self._queue:
                        return
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                try:
                    if connection is None:
                        connection = self._connect()
                    results = self.write_batch(connection, batch)
                except DatabaseUnavailableError as error:
                    results = [(pending.token, error) for pending in batch]
                if any(isinstance(r, DatabaseUnavailableError) for _, r in results):
                    self._close(connection)  # a new connection for the next batch
                    connection = None
                with self._wake:
                    self._in_flight -= len(batch)
                self._deliver(results)
        finally:
            self._close(connection)

    def _connect(self) -> Connection:
        """The writer's own connection, held from batch to batch (no pool checkout, and no
        PostgreSQL ping, per batch); a new one after the database went away."""
        with storage_errors():
            return self._db.engine.connect()

    @staticmethod
    def _close(connection: Connection | None) -> None:
        if connection is None:
            return
        try:
            connection.close()
        except SQLAlchemyError:  # a connection the database dropped: nothing left to close
            log.debug("closing the writer's broken connection failed", exc_info=True)

    def write_batch(
        self, connection: Connection, batch: Sequence[QueuedPublish[T]]
    ) -> list[tuple[T, Receipt | BaseException]]:
        """Write one batch on ``connection`` and return each publish's result."""
        if self._observe_batch is not None:
            self._observe_batch(len(batch))
        now = self._clock()
        isolated, signing = False, self._sign is not None
        try:
            while True:
                try:
                    with self._db.write_on(connection) as transaction:
                        receipts, committed = self._write(
                            transaction, batch, now, isolated=isolated, signing=signing
                        )
                    break
                except _BatchRefused:
                    isolated = True  # again, each publish in a savepoint of its own
                except _SigningFailed:
                    signing = False  # again, without the checkpoint: receipts without proofs
        except Exception as error:  # noqa: BLE001 - handed to every caller, not hidden: the
            # commit or the database failed and nothing of the batch is stored; the writer
            # itself must live on for the next batch
            return [(pending.token, error) for pending in batch]
        if committed is not None:
            committed()
        return [(pending.token, receipt) for pending, receipt in zip(batch, receipts, strict=True)]

    def _write(
        self,
        connection: Connection,
        batch: Sequence[QueuedPublish[T]],
        now: datetime,
        *,
        isolated: bool,
        signing: bool,
    ) -> tuple[list[Receipt | BaseException], Callable[[], None] | None]:
        """The batch's work in its transaction; returns the results and what to call after
        the commit (the signed checkpoint's adoption)."""
        checked = [pending.checked for pending in batch]
        if isolated:
            parts = [_one_in_savepoint(connection, c, now, self._sender) for c in checked]
        else:
            try:
                parts = [publish_alerts(connection, checked, now=now, sender=self._sender)]
            except DBAPIError as error:
                if len(batch) == 1 or is_outage(error):
                    raise
                log.warning(
                    "the database refused a batch of %d publishes (%s): writing them one by one",
                    len(batch),
                    error.orig,
                )
                raise _BatchRefused from error
        results: list[PublishOutcome | BaseException] = [
            result for part in parts for result in part.results
        ]
        stored = any(isinstance(r, PublishOutcome) for r in results)
        proven = self._prove(connection, parts, batch, results) if stored and signing else None
        if proven is None:
            return [r if isinstance(r, BaseException) else Receipt(r) for r in results], None
        receipts, signed = proven
        return receipts, signed.committed

    def _prove(
        self,
        connection: Connection,
        parts: Sequence[PublishedBatch],
        batch: Sequence[QueuedPublish[T]],
        results: Sequence[PublishOutcome | BaseException],
    ) -> tuple[list[Receipt | BaseException], SignedBatch]:
        """Hash the batch's leaves, sign, and prove every receipt; :class:`_SigningFailed`
        (logged) if that failed, for the batch to be written again without it."""
        assert self._sign is not None
        appended = [leaf for part in parts for leaf in part.leaves]
        start = appended[0].index if appended else parts[0].start
        stored = [
            (p, r) for p, r in zip(batch, results, strict=True) if isinstance(r, PublishOutcome)
        ]
        hashed_size = next(
            (p.hashed_size for p in reversed(parts) if p.hashed_size is not None), None
        )
        try:
            signed = self._sign(
                connection, start, [leaf.hash for leaf in appended], hashed_size=hashed_size
            )
            size = signed.checkpoint.size
            leaves = {leaf.index: leaf.data for leaf in appended}
            retried = [r.log_index for _, r in stored if r.log_index not in leaves]
            leaves.update(leaves_at(connection, retried))
            proven = [
                r.log_index for _, r in stored if r.log_index < size and r.log_index in leaves
            ]
            signed.tree.prefetch_proofs(
                size, indices=proven, from_sizes=[p.known_size for p, _ in stored]
            )
            # The batch's leaves sit side by side, so their proofs share most ranges: each range
            # is folded once for all of them (the same hashes as proving each leaf alone).
            inclusions = dict(zip(proven, signed.tree.inclusion_proofs(proven, size), strict=True))
            consistencies: dict[int, list[bytes]] = {}
            receipts: list[Receipt | BaseException] = [
                result
                if isinstance(result, BaseException)
                else _receipt(signed, result, leaves, inclusions, consistencies, pending.known_size)
                for pending, result in zip(batch, results, strict=True)
            ]
        except DBAPIError as error:
            if is_outage(error):
                raise
            log.exception("the batch's checkpoint failed; its receipts go without proofs")
            raise _SigningFailed from error
        except (ExchangeError, SQLAlchemyError) as error:
            log.exception("the batch's checkpoint failed; its receipts go without proofs")
            raise _SigningFailed from error
        return receipts, signed


class _SigningFailed(Exception):
    """The batch's checkpoint step failed: write the batch again without it."""


class _BatchRefused(Exception):
    """The database refused a batch: run it again, one savepoint per publish."""


def _one_in_savepoint(
    connection: Connection, checked: CheckedPublish, now: datetime, sender: str
) -> PublishedBatch:
    """One publish in a savepoint of the batch's transaction: the database's refusal of it
    rolls back only its own rows and becomes its error."""
    try:
        with connection.begin_nested():
            return publish_alerts(connection, [checked], now=now, sender=sender)
    except DBAPIError as error:
        if is_outage(error):
            raise
        return PublishedBatch((storage_error(error),), 0, ())


def _receipt(
    signed: SignedBatch,
    outcome: PublishOutcome,
    leaves: dict[int, bytes],
    inclusions: dict[int, list[bytes]],
    consistencies: dict[int, list[bytes]],
    known_size: int,
) -> Receipt:
    """``outcome``'s receipt with its proofs (``inclusions`` holds the batch's, by leaf index;
    ``consistencies`` those computed so far, by the size they start from), or without them for
    a leaf the checkpoint does not cover."""
    size = signed.checkpoint.size
    index = outcome.log_index
    inclusion = inclusions.get(index)
    if inclusion is None:
        return Receipt(outcome)
    consistency = None
    if 0 < known_size < size:
        hashes = consistencies.get(known_size)
        if hashes is None:
            hashes = consistencies[known_size] = signed.tree.consistency_proof(known_size, size)
        consistency = audit_pb2.ConsistencyProof(from_size=known_size, to_size=size, hashes=hashes)
    return Receipt(
        outcome,
        checkpoint=signed.checkpoint.note,
        leaf=leaves[index],
        inclusion=audit_pb2.InclusionProof(index=index, tree_size=size, hashes=inclusion),
        consistency=consistency,
    )
