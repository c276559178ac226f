"""The hub's background threads, all in one place: the checkpointer, the release sweeper and the
replica listener, on one base (a daemon thread running until it is asked to stop).

* :class:`Checkpointer` hashes committed leaves into the stored tree and signs a checkpoint
  after each batch of appends. Publishes are checkpointed in their own batch's transaction: after
  the batch's appends and before its one commit, :meth:`Checkpointer.sign_batch` hashes the new
  leaves (from the bytes in hand) and signs, so a batch costs one durable commit and every
  receipt leaves with a proof at once (a checkpoint that fails there is left to the thread, and
  the publishes stand; :mod:`exchange.store.publish_writer`). A heartbeat that finds no
  checkpoint covering its events asks for one (concurrent ones share it); every other append — release statements, sweeper events, other replicas' appends — is noticed by its
  thread's cheap poll of the log's size, at most :data:`POLL_SECONDS` apart, and the thread
  signs at least once per checkpoint interval. An idle log keeps its latest checkpoint (signing
  the same size again would give the same note). Tests call :meth:`Checkpointer.checkpoint_now`
  to need no sleeps.
* :class:`ReleaseSweeper` tells holders of embargoed grants when the embargo lapses and purges
  items past their expiry. It runs at an interval; reads (``GetAlert``, ``ListAlerts``,
  ``ListEvents``) sweep first when the clock has moved on, and tests call
  :meth:`ReleaseSweeper.sweep_now` after moving the frozen clock, so nothing waits on a sleep. The
  hub never serves a grant before its time or an item after its expiry whatever the sweeper has
  done: those rules are applied on every read.
* :class:`ReplicaListener` turns other replicas' feed commits (PostgreSQL ``NOTIFY``) into local
  wake-ups of :class:`~exchange.hub.notifier.FeedNotifier`.

Every database failure reaches them as :class:`~exchange.errors.StorageError` (the store maps
driver errors): a thread logs it and carries on at its next turn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy.engine import URL

from exchange.crypto.notes import NoteSigner
from exchange.errors import ConfigurationError, ExchangeError
from exchange.hub.log_state import LogBehindError, LogStateFile
from exchange.hub.notifier import FeedNotifier
from exchange.store import release as release_store
from exchange.store.checkpoints import StoredCheckpoint, sign_checkpoint
from exchange.store.db import Database
from exchange.store.errors import StorageConflictError, StorageError
from exchange.store.feed import listen_for_feed_events
from exchange.store.log import log_size
from exchange.store.publish_writer import SignedBatch
from exchange.store.tree import (
    DEFAULT_BATCH_SIZE,
    Frontier,
    StoredTree,
    hash_appended_leaves,
    hash_new_leaves,
)

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
"""Longest time between two looks at the log's size by the checkpointer thread."""

SWEEP_INTERVAL_SECONDS = 5.0
"""How often the background sweeper looks for lapsed embargoes and expired items."""

READ_SWEEP_SPACING = timedelta(seconds=1)
"""A read sweeps first when the hub's clock has moved on by this much since the last sweep."""

RECONNECT_SECONDS = 1.0
"""Pause before a listener whose connection failed connects again."""


class BackgroundThread:
    """A daemon thread that runs :meth:`_run` until :meth:`stop` sets ``_stopping``."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to end and wait for it (at most ``timeout`` seconds, if given)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        raise NotImplementedError


class Checkpointer(BackgroundThread):
    """Extends the stored tree and signs checkpoints, on demand or in a background thread."""

    def __init__(
        self,
        db: Database,
        signer: NoteSigner,
        *,
        origin: str,
        interval: float,
        clock: Callable[[], datetime],
        batch_size: int = DEFAULT_BATCH_SIZE,
        log_state: LogStateFile | None = None,
    ) -> None:
        """Sign with ``signer`` (named ``origin``) at least every ``interval`` seconds once started.

        ``log_state`` remembers every checkpoint adopted, outside the database, and keeps the
        checkpointer from signing a tree shorter than the latest one remembered.
        """
        self._db = db
        self._log_state = log_state
        self._signer = signer
        self._origin = origin
        self._interval = interval
        self._clock = clock
        self._batch_size = batch_size
        self._lock = threading.Lock()  # one signer of this process at a time, outside batches
        self._latest_lock = threading.Lock()
        self._latest: StoredCheckpoint | None = None
        # The tree frontier the last committed publish batch left (the writer's thread only).
        self._batch_frontier: Frontier | None = None
        super().__init__("checkpointer")

    def checkpoint_now(self) -> StoredCheckpoint:
        """Hash every committed leaf and sign the tree if it grew; return the latest checkpoint.

        The last batch of hashing and the signature share one transaction, after the appends
        they cover have committed.
        """
        with self._lock:
            return self._extend_and_sign()

    def checkpoint_covering(self, size: int) -> StoredCheckpoint:
        """A checkpoint of at least ``size`` leaves: the latest one if it does, else a new one.

        Callers that arrive together queue on one lock and the first one's checkpoint covers
        every append committed before it, so concurrent publishes share a checkpoint (a group
        commit) and none waits for a thread to wake.
        """
        latest = self._latest
        if latest is not None and latest.size >= size:
            return latest
        with self._lock:
            latest = self._latest
            if latest is not None and latest.size >= size:
                return latest
            return self._extend_and_sign()

    def sign_batch(
        self,
        connection: Connection,
        start: int,
        leaf_hashes: Sequence[bytes],
        *,
        hashed_size: int | None = None,
    ) -> SignedBatch:
        """Hash a publish batch's leaves (appended at ``start`` in the caller's write
        transaction, their hashes in hand) and any earlier ones not hashed yet, and sign the
        tree, in that transaction: the checkpoint commits with the publishes it covers.

        The publish writer's :data:`~exchange.store.publish_writer.BatchSigner`; what it
        returns proves the batch's receipts, and is adopted once the transaction committed.
        """
        hashed = hash_appended_leaves(
            connection,
            start,
            leaf_hashes,
            known_frontier=self._batch_frontier,
            hashed_size=hashed_size,
        )
        self._refuse_behind(hashed.growth.new_size)
        checkpoint = sign_checkpoint(
            connection, self._signer, origin=self._origin, now=self._clock(), growth=hashed.growth
        )
        tree = StoredTree(connection, size=checkpoint.size)
        tree.remember(hashed.known)

        def committed() -> None:
            # Adopted at once; written to the log state file at the thread's next poll (at
            # most POLL_SECONDS later), not by the writer between two batches. The new
            # frontier is kept only now: a batch rolled back leaves no tree of its size.
            self._batch_frontier = hashed.frontier
            self._adopt(checkpoint, remember=False)

        return SignedBatch(checkpoint, tree, committed)

    def _extend_and_sign(self) -> StoredCheckpoint:
        # A long backlog is hashed in batches, each its own transaction; the last one signs.
        while True:
            with self._db.write() as connection:
                checkpoint = self._hash_and_sign(connection)
            if checkpoint is not None:
                self._adopt(checkpoint)
                return checkpoint

    def _hash_and_sign(self, connection: Connection) -> StoredCheckpoint | None:
        """Hash one batch of new leaves; if that was the last of them, sign the tree."""
        growth = hash_new_leaves(connection, batch_size=self._batch_size)
        if growth.new_size - growth.old_size == self._batch_size:
            return None  # more may follow
        self._refuse_behind(growth.new_size)
        return sign_checkpoint(
            connection, self._signer, origin=self._origin, now=self._clock(), growth=growth
        )

    def _refuse_behind(self, size: int) -> None:
        head = self._log_state.head if self._log_state is not None else None
        if head is not None and size < head.size:
            raise LogBehindError(
                f"the log has {size} entries, fewer than the checkpoint of "
                f"{head.size} this hub signed: the database was restored under a running hub; "
                "stop it and see docs/OPERATIONS.md, 'Backup and restore'",
            )

    def _adopt(self, checkpoint: StoredCheckpoint, *, remember: bool = True) -> None:
        """Remember a committed checkpoint as the latest, unless a larger one is known, and
        record it in the log state file now (``remember``) or at the thread's next poll."""
        with self._latest_lock:
            if self._latest is None or checkpoint.size > self._latest.size:
                self._latest = checkpoint
        if remember:
            self._remember(checkpoint)

    def _remember(self, checkpoint: StoredCheckpoint | None) -> None:
        if self._log_state is None or checkpoint is None:
            return
        try:
            self._log_state.remember(checkpoint)
        except ConfigurationError:
            log.exception("the latest checkpoint could not be remembered outside the database")

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread, and record the latest checkpoint in the log state file."""
        super().stop(timeout)
        self._remember(self._latest)

    def _run(self) -> None:
        last_run = time.monotonic()
        while not self._stopping.wait(timeout=min(self._interval, POLL_SECONDS)):
            try:
                self._remember(self._latest)  # the publish batches' checkpoints, once a poll
                if time.monotonic() - last_run >= self._interval or self._log_has_grown():
                    last_run = time.monotonic()
                    self.checkpoint_now()
            except ExchangeError:
                log.exception("checkpoint failed; retrying at the next poll")

    def _log_has_grown(self) -> bool:
        """Whether entries were appended past the latest checkpoint this process signed or saw."""
        with self._db.read() as connection:
            size = log_size(connection)
        latest = self._latest
        return latest is None or size > latest.size


class ReleaseSweeper(BackgroundThread):
    """Sends embargo-lapse notices and purges expired items, now or in a background thread."""

    def __init__(
        self,
        db: Database,
        notifier: FeedNotifier,
        *,
        clock: Callable[[], datetime],
        interval: float = SWEEP_INTERVAL_SECONDS,
    ) -> None:
        self._db = db
        self._notifier = notifier
        self._clock = clock
        self._interval = interval
        self._lock = threading.Lock()
        self._last_sweep: datetime | None = None
        super().__init__("release-sweeper")

    def sweep_on_read(self) -> None:
        """Sweep before a read unless a sweep ran less than :data:`READ_SWEEP_SPACING` ago."""
        last = self._last_sweep
        if last is None or self._clock() - last >= READ_SWEEP_SPACING:
            self.sweep_now()

    def sweep_now(self) -> tuple[int, int]:
        """Run one sweep at the clock's time; returns (embargo notices sent, items purged)."""
        now = self._clock()
        with self._lock:
            self._last_sweep = now
            with self._db.read() as connection:
                if not release_store.sweep_due(connection, now=now):
                    return 0, 0
            try:
                with self._db.write() as connection:
                    events = release_store.release_lapsed_embargoes(connection, now=now)
                    purged = release_store.purge_expired_items(connection, now=now)
            except StorageConflictError:
                # Another replica swept the same rows first; the next sweep sees its result.
                log.info("release sweep raced another replica; retrying at the next interval")
                return 0, 0
        if events:
            self._notifier.notify()
        return len(events), purged

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.sweep_now()
            except StorageError:  # a database outage must not end the thread for good
                log.exception("release sweep failed")
            except ExchangeError as e:
                log.warning("release sweep failed: %s", e.message)


class ReplicaListener(BackgroundThread):
    """A thread holding one PostgreSQL connection that ``LISTEN``s on the feed channel and
    wakes ``notifier`` for every notification (other replicas' commits, and this one's) except
    those sent by ``own_writer``: this hub's publish writer, which hands its events to the
    hub's streams and wakes them itself, on the loop.

    It looks up from the connection every ``poll_seconds`` to see whether it is asked to stop,
    so stopping the hub waits at most that long for it.
    """

    def __init__(
        self,
        url: URL,
        notifier: FeedNotifier,
        *,
        own_writer: str = "",
        poll_seconds: float = 0.1,
    ) -> None:
        self._url = url
        self._own_writer = own_writer
        self._notifier = notifier
        self._poll_seconds = poll_seconds
        self._listening = threading.Event()
        super().__init__("replica-listener")

    def start(self, *, wait: float = 10.0) -> None:
        """Start listening; returns once the channel is listened to (or after ``wait``)."""
        super().start()
        self._listening.wait(wait)

    def _on_event(self, sender: str) -> None:
        if not (sender and sender == self._own_writer):
            self._notifier.notify()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                listen_for_feed_events(
                    self._url,
                    listening=self._listening.set,
                    on_event=self._on_event,
                    stopping=self._stopping,
                    poll_seconds=self._poll_seconds,
                )
            except StorageError:
                log.exception("listening for other replicas' feed events failed; reconnecting")
                self._notifier.notify()  # re-read now: something may have been missed
                self._stopping.wait(RECONNECT_SECONDS)
