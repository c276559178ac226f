"""The drivers of operations written as steps: a lock taken by one operation holds back another
in either driver without stopping the event loop, a task waiting for a lock a thread holds is
parked until the release wakes it, and a lock is released when an operation is interrupted or
cancelled while holding it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from exchange_client._internal.calls import SharedLock, Steps, acquire, run, run_async, sleep


def holding(lock: SharedLock, order: list[str], name: str, seconds: float) -> Steps[str]:
    yield from acquire(lock)
    try:
        order.append(f"{name} in")
        yield from sleep(seconds)
        order.append(f"{name} out")
    finally:
        lock.release()
    return name


def test_two_tasks_taking_one_lock_take_turns_and_the_loop_goes_on() -> None:
    lock = SharedLock()
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
    lock = SharedLock()
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
    lock = SharedLock()
    order: list[str] = []

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as stopped:
        run(holding(lock, order, "interrupted", 1.0), None, wait=interrupt)
    assert stopped.traceback and order == ["interrupted in"] and not lock.locked()
    assert run(holding(lock, order, "next", 0.0), None) == "next"


def test_tasks_waiting_for_a_lock_a_thread_holds_are_parked_until_its_release() -> None:
    lock = SharedLock()
    lock.acquire()  # this thread holds it
    order: list[str] = []

    async def waiters() -> list[str]:
        tasks = [
            asyncio.create_task(run_async(holding(lock, order, name, 0.0), None))  # type: ignore[arg-type]
            for name in ("a", "b", "c")
        ]
        for _ in range(50):  # however often the loop turns, they stay parked: nobody polls
            await asyncio.sleep(0)
        assert lock.tasks_waiting == 3 and not order
        released = threading.Thread(target=lock.release)
        released.start()
        released.join()
        return list(await asyncio.gather(*tasks))

    assert asyncio.run(waiters()) == ["a", "b", "c"]
    assert sorted(order) == sorted(f"{n} {s}" for n in "abc" for s in ("in", "out"))
    assert all(order[i].split()[0] == order[i + 1].split()[0] for i in range(0, 6, 2))  # in turn
    assert not lock.locked() and lock.tasks_waiting == 0
