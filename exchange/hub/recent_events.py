"""The feed events the publish writer committed lately, per agency, kept on the hub's loop.

A live subscription is woken once per committed batch and, before this, read the batch's events
back from the database on the executor: a thread hop and a query per batch and per open stream,
for events the writer had just built. :class:`RecentEvents` keeps the last
:data:`RECENT_EVENTS_PER_AGENCY` of them per agency, handed over on the loop after the batch's
durable commit, so a stream that has caught up takes them from memory (a subscription's catch-up
always reads the store).

It answers only when what it holds is certainly the whole answer, and otherwise says nothing,
so the stream reads the database as before:

- it holds a *contiguous* run of an agency's sequences: an event that does not follow the last
  one held (a sequence taken meanwhile by another write path, a release decision or a replica)
  starts a new run;
- it answers ``after(cursor)`` only when the run starts at or before ``cursor + 1`` and goes past
  ``cursor``. Sequences are unique per agency, so those events are exactly the ones the
  database holds after ``cursor`` up to the run's end. Events committed later by another
  path are not in the run; their commit wakes the stream again, and the run then has nothing
  past the cursor, so the stream reads them from the database.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable

from exchange.v1 import alerts_pb2

RECENT_EVENTS_PER_AGENCY = 1024
"""Most events kept per agency (a few hundred bytes each)."""


class RecentEvents:
    """Per agency, the latest contiguous run of committed feed events (loop thread only)."""

    def __init__(self, limit: int = RECENT_EVENTS_PER_AGENCY) -> None:
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        self._limit = limit
        self._runs: dict[str, deque[alerts_pb2.FeedEvent]] = {}

    def add(self, agency_id: str, events: Iterable[alerts_pb2.FeedEvent]) -> None:
        """Take committed events of ``agency_id``, in ascending sequence order."""
        run = self._runs.get(agency_id)
        for event in events:
            if run is None or (run and event.sequence != run[-1].sequence + 1):
                run = self._runs[agency_id] = deque(maxlen=self._limit)
            run.append(event)

    def after(
        self, agency_id: str, cursor: int, limit: int
    ) -> tuple[list[alerts_pb2.FeedEvent], int] | None:
        """The agency's events with sequence > ``cursor`` (at most ``limit``) and the last
        sequence held, when the run held is certain to contain them; ``None`` otherwise."""
        run = self._runs.get(agency_id)
        if not run or run[-1].sequence <= cursor or run[0].sequence > cursor + 1:
            return None
        first = cursor + 1 - run[0].sequence
        return list(itertools.islice(run, first, first + limit)), run[-1].sequence
