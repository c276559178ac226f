"""The hub's background threads (checkpointer, release sweeper, replica listener) share one shape:
a daemon thread running until it is asked to stop."""

from __future__ import annotations

import threading


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
