"""How the client waits before trying the hub again: capped exponential backoff with jitter.

A publish keeps resending its sealed bytes for a time budget (``retry_seconds``, 30 s by
default); a feed subscription reconnects until it is stopped, or until the budget its caller
gave it is spent.  Each wait doubles up to a cap, and is shortened by a random fraction (the
jitter) so that the clients of a hub that restarts do not all come back in the same instant.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Waits of ``first_delay``, doubled after each further failure, capped at ``max_delay``.

    ``jitter`` is the largest fraction taken off a wait at random: with 0.5, a 4 s wait is
    anything from 2 to 4 s.
    """

    first_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5

    def delay(self, failures: int, *, draw: Callable[[], float] = random.random) -> float:
        """The wait after ``failures`` consecutive failures (1 for the first)."""
        ceiling = min(self.max_delay, self.first_delay * 2.0 ** min(failures - 1, 32))
        return ceiling * (1 - self.jitter * draw())


class RetrySchedule:
    """Consecutive failures of one operation, and the waits between its attempts.

    ``give_up_after`` (seconds, measured with ``clock`` from the schedule's start or its last
    :meth:`reset`) bounds the retrying; ``None`` retries until the caller stops.  The last wait
    is shortened so that the final attempt falls at the end of the budget, not past it.
    """

    def __init__(
        self,
        backoff: Backoff,
        *,
        give_up_after: float | None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        draw: Callable[[], float] = random.random,
    ) -> None:
        if give_up_after is not None and give_up_after < 0:
            raise ValueError("give_up_after must be zero or more seconds")
        self._backoff = backoff
        self._give_up_after = give_up_after
        self._sleep = sleep
        self._clock = clock
        self._draw = draw
        self._failures = 0
        self._started = clock()

    @property
    def budget(self) -> float | None:
        """The seconds the schedule retries for; ``None``: until the caller stops."""
        return self._give_up_after

    @property
    def failures(self) -> int:
        """Consecutive failures since the start or the last :meth:`reset`."""
        return self._failures

    def reset(self) -> None:
        """The operation succeeded: the next failure waits the first delay again."""
        self._failures = 0
        self._started = self._clock()

    def wait(self, announce: Callable[[float], None] | None = None) -> bool:
        """Count a failure and sleep before the next attempt; ``False`` when the budget is spent.

        ``announce`` is called with the wait in seconds before sleeping (to tell a person).
        """
        delay = self.next_delay(announce)
        if delay is None:
            return False
        self._sleep(delay)
        return True

    def next_delay(self, announce: Callable[[float], None] | None = None) -> float | None:
        """:meth:`wait` without the sleep: count a failure and return the wait before the next
        attempt (announced), ``None`` when the budget is spent. For an operation written as
        steps, which yields the wait as a step."""
        self._failures += 1
        delay = self._backoff.delay(self._failures, draw=self._draw)
        if self._give_up_after is not None:
            remaining = self._started + self._give_up_after - self._clock()
            if remaining <= 0:
                return None
            delay = min(delay, remaining)
        if announce is not None:
            announce(delay)
        return delay
