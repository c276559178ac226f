"""Backoff between attempts to reach the hub: doubling, capped, jittered, bounded by a budget."""

from __future__ import annotations

import pytest

from exchange_client._internal.retry import Backoff, RetrySchedule
from tests.conftest import FakeTime


@pytest.mark.parametrize(
    ("failures", "draw", "expected"),
    [
        (1, 0.0, 0.5),  # no jitter drawn: the ceiling
        (2, 0.0, 1.0),
        (5, 0.0, 8.0),
        (7, 0.0, 30.0),  # 32 s capped at 30
        (1000, 0.0, 30.0),  # no overflow after days of failures
        (5, 1.0, 4.0),  # the most jitter takes half
        (5, 0.5, 6.0),
    ],
)
def test_a_delay_doubles_up_to_the_cap_less_its_jitter(
    failures: int, draw: float, expected: float
) -> None:
    assert Backoff(first_delay=0.5, max_delay=30.0, jitter=0.5).delay(
        failures, draw=lambda: draw
    ) == pytest.approx(expected)


def test_the_jitter_spreads_the_waits_of_clients_that_failed_together() -> None:
    waits = {Backoff().delay(6) for _ in range(50)}
    assert len(waits) > 40
    assert all(8 <= wait <= 16 for wait in waits)


def test_a_budget_ends_with_an_attempt_at_its_end_and_then_gives_up() -> None:
    time = FakeTime()
    schedule = RetrySchedule(
        Backoff(first_delay=1, max_delay=4, jitter=0),
        give_up_after=10,
        sleep=time.sleep,
        clock=time.monotonic,
    )
    while schedule.wait():
        pass
    assert time.sleeps == [1, 2, 4, 3]  # the last wait shortened to land on 10 s
    assert schedule.failures == 5


def test_no_budget_waits_forever_and_a_success_starts_again_from_the_first_delay() -> None:
    time = FakeTime()
    told: list[float] = []
    schedule = RetrySchedule(
        Backoff(first_delay=1, max_delay=4, jitter=0),
        give_up_after=None,
        sleep=time.sleep,
        clock=time.monotonic,
    )
    assert all(schedule.wait(told.append) for _ in range(100))
    assert told == time.sleeps
    assert time.sleeps[-1] == 4
    schedule.reset()
    assert schedule.failures == 0
    schedule.wait()
    assert time.sleeps[-1] == 1


def test_a_zero_budget_never_waits_and_a_negative_one_is_refused() -> None:
    time = FakeTime()
    schedule = RetrySchedule(Backoff(), give_up_after=0, sleep=time.sleep, clock=time.monotonic)
    assert not schedule.wait()
    assert time.sleeps == []
    with pytest.raises(ValueError, match="zero or more"):
        RetrySchedule(Backoff(), give_up_after=-1)
