"""Group commit: write work from many threads shares transactions, one commit per batch.

Every publish is its own unit of work, but committing each alone costs a durable flush (an
``fsync`` with SQLite's ``synchronous=FULL``) and a turn on the database's write lock.  Callers
here enqueue their work; whichever caller finds no batch running becomes the leader, runs every
queued unit in one transaction — each inside a savepoint, so a unit that raises rolls back alone
and gets its own error — commits once, and hands every caller its result.  Nothing is reported
as done before the commit that makes it durable.

An ``on_batch`` hook may add work of its own to each batch's transaction after the units (the hub
signs a checkpoint of the log there, so the appends and the checkpoint share the commit).  The
hook runs in a savepoint and its failure is logged and leaves the units' work to commit.
``observe_batch`` is told each batch's size (the hub's metrics).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from exchange.errors import ExchangeError
from exchange.store.db import Database

T = TypeVar("T")

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 64

BatchHook = Callable[[Connection], Callable[[], None]]
"""Runs in a batch's transaction after its units; returns what to run once the batch committed."""


@dataclass
class _Unit(Generic[T]):
    work: Callable[[Connection], T]
    result: T | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class GroupCommit:
    """Runs units of write work in shared transactions."""

    def __init__(
        self,
        db: Database,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        on_batch: BatchHook | None = None,
        observe_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._db = db
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._observe_batch = observe_batch
        self._queue: list[_Unit[object]] = []
        self._queue_lock = threading.Lock()
        self._leader = threading.Lock()

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a write transaction shared with concurrent callers; return its result.

        ``work`` raising an :class:`ExchangeError` rolls back its own changes only; any other
        failure, or a failed commit, fails every unit of the batch.
        """
        unit: _Unit[T] = _Unit(work)
        with self._queue_lock:
            self._queue.append(unit)  # type: ignore[arg-type]
        while not unit.done.is_set():
            with self._leader:
                if unit.done.is_set():
                    break
                with self._queue_lock:
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                self._run_batch(batch)
        if unit.error is not None:
            raise unit.error
        return unit.result  # type: ignore[return-value]

    def _run_batch(self, batch: list[_Unit[object]]) -> None:
        if self._observe_batch is not None:
            self._observe_batch(len(batch))
        try:
            results: list[tuple[_Unit[object], object]] = []
            shared = len(batch) > 1  # a unit alone needs no savepoint: its refusal rolls back all
            with self._db.write() as connection:
                for unit in batch:
                    try:
                        with connection.begin_nested() if shared else nullcontext():
                            results.append((unit, unit.work(connection)))
                    except ExchangeError as error:
                        if not shared:
                            raise  # handed to the unit below, after the rollback
                        unit.error = error
                committed = self._run_hook(connection) if results else None
            for unit, result in results:  # only now, after the commit, are they durable
                unit.result = result
            if committed is not None:
                committed()
        except BaseException as error:  # handed to every caller of the batch
            for unit in batch:
                unit.error = unit.error or error
            if not isinstance(error, Exception):
                raise  # KeyboardInterrupt and the like are not swallowed
        finally:
            for unit in batch:
                unit.done.set()

    def _run_hook(self, connection: Connection) -> Callable[[], None] | None:
        if self._on_batch is None:
            return None
        try:
            with connection.begin_nested():
                return self._on_batch(connection)
        except (ExchangeError, SQLAlchemyError):
            log.exception("the batch hook failed; the batch commits without its work")
            return None
