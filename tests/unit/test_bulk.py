"""The garbage collector's pause for bulk work: counted across threads, state restored."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from exchange.bulk import gc_paused


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_off_inside_and_back_on_after() -> None:
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_error_inside_still_turns_the_collector_back_on() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("bulk work failed")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_nested_pauses_end_with_the_outermost() -> None:
    gc.enable()
    with gc_paused():
        with gc_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_two_threads_overlapping_turn_it_on_only_when_both_are_done() -> None:
    gc.enable()
    first_in, second_done, states = threading.Event(), threading.Event(), []

    def first() -> None:
        with gc_paused():
            first_in.set()
            second_done.wait(timeout=30)
            states.append(("first, after the second left", gc.isenabled()))

    def second() -> None:
        first_in.wait(timeout=30)
        with gc_paused():
            pass
        states.append(("second, after it left", gc.isenabled()))
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(states) == [
        ("first, after the second left", False),
        ("second, after it left", False),
    ]
    assert gc.isenabled()
