"""Budgets and usage per partner and day, bursts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from exchange.errors import MalformedError
from exchange.match.blinding import pack_tokens, unpack_tokens
from exchange.match.budget import Budgets, QueryCount, day_of, usage_by_day

NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_budgets_default_and_per_partner() -> None:
    budgets = Budgets(default=100, partners={"agency-a": 10})
    assert budgets.for_partner("agency-a") == 10
    assert budgets.for_partner("agency-c") == 100
    assert budgets.allows("agency-a", 7, 3)
    assert not budgets.allows("agency-a", 7, 4)
    assert budgets.left("agency-a", 12) == 0


def test_the_day_is_the_utc_day() -> None:
    late_in_beijing = datetime(2026, 12, 2, 1, 30, tzinfo=timezone(timedelta(hours=8)))
    assert day_of(late_in_beijing) == date(2026, 12, 1)
    with pytest.raises(ValueError):
        day_of(datetime(2026, 12, 1))


def test_usage_per_partner_direction_and_day_with_bursts() -> None:
    counts = [
        QueryCount("agency-a", "agency-b", NOON, 5, 1),
        QueryCount("agency-a", "agency-b", NOON + timedelta(seconds=30), 8, 0),
        QueryCount("agency-a", "agency-b", NOON + timedelta(minutes=5), 2, 2),
        QueryCount("agency-b", "agency-a", NOON, 1, 0),
        QueryCount("agency-a", "agency-b", NOON + timedelta(days=1), 1, 0),
        QueryCount("agency-c", "agency-b", NOON, 50, 0),  # not agency-a's business
    ]
    budgets = {"agency-b": Budgets(default=1000, partners={"agency-a": 100})}
    usage = usage_by_day("agency-a", counts, budgets)
    assert [(u.day.isoformat(), u.direction, u.partner) for u in usage] == [
        ("2026-12-02", "made", "agency-b"),
        ("2026-12-01", "made", "agency-b"),
        ("2026-12-01", "received", "agency-b"),
    ]
    made = usage[1]
    assert (made.queries, made.selectors, made.hits) == (3, 15, 3)
    assert (made.daily_budget, made.budget_left, made.peak_minute_selectors) == (100, 85, 13)
    assert made.burst  # 13 of 100 in one minute
    received = usage[2]
    assert received.daily_budget == 10_000  # agency-a signed no policy: the default
    assert not received.burst


def test_packed_tokens_round_trip_and_refuse_partial_values() -> None:
    tokens = [bytes([i]) * 32 for i in range(3)]
    assert unpack_tokens(pack_tokens(tokens)) == tokens
    with pytest.raises(MalformedError, match="not a whole number"):
        unpack_tokens(b"x" * 33)
