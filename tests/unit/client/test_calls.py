"""The drivers of operations written as steps: a lock taken by one operation holds back another
in either driver without stopping the event loop, and is released when an operation is
interrupted or cancelled while holding it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from exchange_client._internal.calls import Steps, acquire, run, run_async, sleep


def holding(lock: threading.Lock, order: list[str], name: str, seconds: float) -> Steps[str]:
    yield from acquire(lock)
    try:
        order.append(f"{name} in")
        yield from sleep(seconds)
        order.append(f"{name} out")
    finally:
        lock.release()
    return name


def test_two_tasks_taking_one_lock_take_turns_and_the_loop_goes_on() -> None:
    lock = threading.Lock()
    order: list[str] = []

    async def both() -> list[str]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while len(order) < 4:
                ticks += 1
                await asyncio.sleep(0)

        results = await asyncio.gather(
            run_async(holding(lock, order, "first", 0.05), None),  # type: ignore[arg-type]
            run_async(holding(lock, order, "second", 0.0), None),  # type: ignore[arg-type]
            ticker(),
        )
        assert ticks > 1  # the loop ran other tasks while the second waited for the lock
        return [r for r in results if r is not None]

    assert asyncio.run(both()) == ["first", "second"]
    assert order == ["first in", "first out", "second in", "second out"]
    assert not lock.locked()


def test_a_cancelled_operation_releases_the_lock_it_holds() -> None:
    lock = threading.Lock()
    order: list[str] = []

    async def cancelled() -> None:
        task = asyncio.create_task(
            run_async(holding(lock, order, "slow", 60.0), None)  # type: ignore[arg-type]
        )
        while not order:
            await asyncio.sleep(0)
        assert lock.locked()
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as stopped:
            await task
        # Released at once, while the traceback still holds the operation's frame.
        assert stopped.traceback and not lock.locked()

    asyncio.run(cancelled())
    assert order == ["slow in"] and not lock.locked()


def test_an_interrupted_blocking_operation_releases_the_lock_it_holds() -> None:
    lock = threading.Lock()
    order: list[str] = []

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as stopped:
        run(holding(lock, order, "interrupted", 1.0), None, wait=interrupt)
    assert stopped.traceback and order == ["interrupted in"] and not lock.locked()
    assert run(holding(lock, order, "next", 0.0), None) == "next"
