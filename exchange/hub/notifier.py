"""Wakes ``Subscribe`` streams when new feed events are committed.

In one process a condition variable is enough.  Hub replicas sharing a PostgreSQL database also
hear each other: every transaction that appends feed events notifies the ``exchange_feed``
channel at its commit (:mod:`exchange.store.feed`), and each replica's
:class:`~exchange.hub.background.ReplicaListener`
turns what it hears into a local wake-up.  The stream re-reads the database either way, so a
missed wake-up (a listener reconnecting) only delays an event until the next heartbeat, never
loses it.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)



class FeedNotifier:
    """A counter that increases with every commit of feed events, and a way to wait for it."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._version = 0
        self._closed = False

    @property
    def version(self) -> int:
        with self._condition:
            return self._version

    def notify(self) -> None:
        with self._condition:
            self._version += 1
            self._condition.notify_all()

    def wait(self, seen_version: int, timeout: float) -> None:
        """Return when the version moved past ``seen_version``, on close, or after ``timeout``."""
        with self._condition:
            self._condition.wait_for(
                lambda: self._version != seen_version or self._closed, timeout=timeout
            )

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
