"""Wakes ``Subscribe`` streams when new feed events are committed.

In one process a condition variable is enough.  Hub replicas sharing a PostgreSQL database also
hear each other: every transaction that appends feed events notifies the ``exchange_feed``
channel at its commit (:mod:`exchange.store.feed`), and each replica's :class:`ReplicaListener`
turns what it hears into a local wake-up.  The stream re-reads the database either way, so a
missed wake-up (a listener reconnecting) only delays an event until the next heartbeat, never
loses it.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.engine import URL

from exchange.hub.background import BackgroundThread
from exchange.store.feed import FEED_CHANNEL

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0
"""Pause before a listener whose connection failed connects again."""


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


class ReplicaListener(BackgroundThread):
    """A thread holding one PostgreSQL connection that ``LISTEN``s on the feed channel and
    wakes ``notifier`` for every notification (other replicas' commits, and this one's).

    It looks up from the connection every ``poll_seconds`` to see whether it is asked to stop,
    so stopping the hub waits at most that long for it.
    """

    def __init__(self, url: URL, notifier: FeedNotifier, *, poll_seconds: float = 0.1) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._notifier = notifier
        self._poll_seconds = poll_seconds
        self._listening = threading.Event()
        super().__init__("replica-listener")

    def start(self, *, wait: float = 10.0) -> None:
        """Start listening; returns once the channel is listened to (or after ``wait``)."""
        super().start()
        self._listening.wait(wait)

    def _run(self) -> None:
        import psycopg

        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as connection:
                    connection.execute(f"LISTEN {FEED_CHANNEL}")
                    self._listening.set()
                    while not self._stopping.is_set():
                        for _ in connection.notifies(timeout=self._poll_seconds):
                            self._notifier.notify()
            except psycopg.Error:
                log.exception("listening for other replicas' feed events failed; reconnecting")
                self._notifier.notify()  # re-read now: something may have been missed
                self._stopping.wait(RECONNECT_SECONDS)
