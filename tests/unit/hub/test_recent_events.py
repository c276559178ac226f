"""The recent feed events a live subscription takes from memory: answered only when certain."""

from __future__ import annotations

import pytest

from exchange.hub.recent_events import RecentEvents
from exchange.v1 import alerts_pb2


def events(*sequences: int) -> list[alerts_pb2.FeedEvent]:
    return [alerts_pb2.FeedEvent(sequence=s, alert_id=f"alert-{s}") for s in sequences]


def sequences(answer: tuple[list[alerts_pb2.FeedEvent], int] | None) -> tuple[list[int], int]:
    assert answer is not None
    found, latest = answer
    return [e.sequence for e in found], latest


def test_the_events_after_a_cursor_inside_the_run() -> None:
    recent = RecentEvents()
    recent.add("agency-b", events(5, 6, 7))
    assert sequences(recent.after("agency-b", 4, 100)) == ([5, 6, 7], 7)
    assert sequences(recent.after("agency-b", 5, 100)) == ([6, 7], 7)
    assert sequences(recent.after("agency-b", 5, 1)) == ([6], 7)


def test_no_answer_when_the_run_may_miss_events() -> None:
    recent = RecentEvents()
    recent.add("agency-b", events(5, 6, 7))
    assert recent.after("agency-b", 3, 100) is None  # sequence 4 is not held
    assert recent.after("agency-b", 7, 100) is None  # nothing new held: read the database
    assert recent.after("agency-b", 9, 100) is None
    assert recent.after("agency-c", 0, 100) is None  # another agency's run


def test_a_gap_starts_a_new_run() -> None:
    recent = RecentEvents()
    recent.add("agency-b", events(1, 2))
    recent.add("agency-b", events(4, 5))  # 3 came from another write path
    assert recent.after("agency-b", 2, 100) is None
    assert sequences(recent.after("agency-b", 3, 100)) == ([4, 5], 5)
    recent.add("agency-b", events(6))
    assert sequences(recent.after("agency-b", 3, 100)) == ([4, 5, 6], 6)


def test_a_gap_inside_one_hand_over_starts_a_new_run_there() -> None:
    recent = RecentEvents()
    recent.add("agency-b", events(1, 2, 4))
    assert recent.after("agency-b", 0, 100) is None
    assert sequences(recent.after("agency-b", 3, 100)) == ([4], 4)


def test_only_the_latest_events_are_kept() -> None:
    recent = RecentEvents(limit=3)
    recent.add("agency-b", events(1, 2, 3, 4, 5))
    assert recent.after("agency-b", 1, 100) is None  # 2 was dropped
    assert sequences(recent.after("agency-b", 2, 100)) == ([3, 4, 5], 5)


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit must be positive"):
        RecentEvents(limit=0)
