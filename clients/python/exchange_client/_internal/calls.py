"""Operations written once, run by ``Client`` over grpc and by ``AsyncClient`` over grpc.aio.

Each operation of the client that talks to the hub (publish, open, a release decision, an
audit check, ...) is a generator: it *yields* the steps it needs done — a unary call
(:class:`Rpc`), a publish of sealed bytes (:class:`PublishBytes`), a wait before a retry
(:class:`Sleep`), a lock (:class:`Acquire`), a stream's next response (:class:`Read`), a flush of
state to disk (:class:`Flush`), unary calls side by side (:class:`Together`) — and is
sent back each step's result, or has the step's error thrown in at the ``yield``. Everything between the steps (verification, sealing, opening, the audit log's
rules) runs in the generator and is the same code for both clients. :func:`run` drives an
operation with a blocking :class:`~exchange_client._internal.transport.Transport`;
:func:`run_async` with an :class:`~exchange_client._internal.transport.AsyncTransport`.

Operations compose with ``yield from``; a helper that needs no I/O stays a plain function.

``AsyncClient`` is built on it: a concern's ``*_steps`` method is the operation, its plain
method runs it over the blocking transport (:func:`run_blocking`) for ``Client``, and
``AsyncClient`` awaits the same steps. A lock held across calls is a :class:`SharedLock`, taken
with :class:`Acquire` (a task waiting for it is parked until it is released, so that the event
loop goes on), a feed stream read with :class:`Read`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

if TYPE_CHECKING:
    from exchange_client._internal.transport import AsyncTransport, Metadata, Transport

T = TypeVar("T")


@dataclass(frozen=True)
class Rpc:
    """A unary call: ``service`` names the stub (``alerts``, ``audit``, ``directory``,
    ``release``, ``match``), ``method`` its method."""

    service: str
    method: str
    request: Any
    metadata: Metadata | None = None


@dataclass(frozen=True)
class PublishBytes:
    """Send a sealed ``PublishRequest`` exactly as saved in the outbox."""

    request: bytes
    metadata: Metadata


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` before trying again (a retry's backoff)."""

    seconds: float


class SharedLock:
    """A lock that threads and the tasks of event loops take alike: a thread blocks in
    :meth:`acquire`; a task awaits :meth:`acquire_async`, parked (the event loop goes on) until
    a :meth:`release`, from whichever thread or task, wakes it to try again. Not reentrant."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._guard = threading.Lock()
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock (waiting, if ``blocking``, while another holds it)."""
        return self._lock.acquire(blocking)

    async def acquire_async(self) -> None:
        """Take the lock, the calling task parked while another holds it."""
        loop = asyncio.get_running_loop()
        while not self._lock.acquire(blocking=False):
            woken: asyncio.Future[None] = loop.create_future()
            with self._guard:
                self._waiting.append((loop, woken))
            # A release between the try above and the registration woke nobody: try again
            # before waiting (a wake-up that comes anyway finds the future done or dropped).
            if self._lock.acquire(blocking=False):
                return
            await woken

    def release(self) -> None:
        """Release the lock and wake every task waiting for it (each tries again; one gets
        it, the others wait for the next release)."""
        self._lock.release()
        with self._guard:
            waiting, self._waiting = self._waiting, []
        for loop, woken in waiting:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_wake, woken)

    def locked(self) -> bool:
        """Whether a thread or task holds the lock."""
        return self._lock.locked()

    @property
    def tasks_waiting(self) -> int:
        """How many tasks wait for a release."""
        with self._guard:
            return len(self._waiting)


def _wake(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)


@dataclass(frozen=True)
class Acquire:
    """Take ``lock`` (one the operation releases itself, in a ``finally``): blocking for the
    blocking driver; awaited by the asynchronous one, so that the event loop goes on while
    another thread or task holds it."""

    lock: SharedLock


@dataclass(frozen=True)
class Read:
    """The next response of a server stream (a feed subscription): ``None`` when it ended.

    ``stream`` is an iterator over the responses (blocking) or a ``grpc.aio`` stream call."""

    stream: Any


@dataclass(frozen=True)
class Flush:
    """Wait until state written before this step is on disk (``flush``, a blocking call that
    shares an ``fdatasync`` with other threads): run in place by the blocking driver, in a
    worker thread by the asynchronous one, so that the tasks of one event loop share a flush
    too instead of each blocking the loop for its own."""

    flush: Callable[[], None]


@dataclass(frozen=True)
class Together:
    """Unary calls sent side by side: the result is their answers in order, or, if any failed,
    the error of the first (in order) that did is thrown in once all are answered."""

    calls: tuple[Rpc, ...]


TOGETHER_THREADS = 8
"""Most calls of one :class:`Together` the blocking driver has in flight at once."""

Step = Rpc | PublishBytes | Sleep | Acquire | Read | Flush | Together
Steps = Generator[Step, Any, T]
"""An operation: yields steps, is sent their results, returns a ``T``."""


def call(service: str, method: str, request: Any, *, metadata: Metadata | None = None) -> Steps[Any]:
    """The one-step operation: the hub's answer to one unary call."""
    response = yield Rpc(service, method, request, metadata)
    return response


def together(calls: Iterable[Rpc]) -> Steps[list[Any]]:
    """The one-step operation: the hub's answers to ``calls``, sent side by side, in order."""
    responses = yield Together(tuple(calls))
    return responses  # type: ignore[no-any-return]


def done(value: T) -> Steps[T]:
    """The operation of no step: ``value`` at once."""
    yield from ()
    return value


def publish_bytes(request: bytes, *, metadata: Metadata) -> Steps[Any]:
    """The one-step operation: the hub's answer to a sealed ``PublishRequest`` sent as saved."""
    response = yield PublishBytes(request, metadata)
    return response


def acquire(lock: SharedLock) -> Steps[None]:
    """The one-step operation: ``lock`` taken (the caller releases it)."""
    yield Acquire(lock)


def read(stream: Any) -> Steps[Any]:
    """The one-step operation: the next response of ``stream``, ``None`` at its end."""
    response = yield Read(stream)
    return response


def sleep(seconds: float) -> Steps[None]:
    """The one-step operation: a wait."""
    yield Sleep(seconds)


def run(
    steps: Steps[T], transport: Transport | None, *, wait: Callable[[float], None] = time.sleep
) -> T:
    """Drive ``steps`` to its result with the blocking ``transport`` (``None``: for steps that
    call no method of the hub, such as reading a stream already open)."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(result)
        except StopIteration as finished:
            return finished.value  # type: ignore[no-any-return]
        result, error = None, None
        try:
            if isinstance(step, Read):
                result = next(step.stream, None)
            elif isinstance(step, Acquire):
                step.lock.acquire()
            elif isinstance(step, Sleep):
                wait(step.seconds)
            elif isinstance(step, Flush):
                step.flush()
            elif transport is None:
                raise TypeError(f"{step!r} needs a transport")
            elif isinstance(step, Rpc):
                method = getattr(getattr(transport, step.service), step.method)
                result = transport.call(method, step.request, metadata=step.metadata)
            elif isinstance(step, Together):
                result = _call_together(transport, step.calls)
            else:
                result = transport.publish_bytes(step.request, metadata=step.metadata)
        except Exception as e:  # noqa: BLE001 - thrown into the operation at its yield
            error = e
        except BaseException:
            steps.close()  # interrupted: its ``finally`` blocks run (a lock taken is released)
            raise


def _call_together(transport: Transport, calls: tuple[Rpc, ...]) -> list[Any]:
    """Make ``calls`` side by side on threads (a blocking channel is safe to share), answers in
    order; the first failed call's error (in order) is raised once all have ended."""

    def answer(rpc: Rpc) -> Any:
        method = getattr(getattr(transport, rpc.service), rpc.method)
        return transport.call(method, rpc.request, metadata=rpc.metadata)

    if len(calls) <= 1:
        return [answer(rpc) for rpc in calls]
    with ThreadPoolExecutor(max_workers=min(len(calls), TOGETHER_THREADS)) as pool:
        futures = [pool.submit(answer, rpc) for rpc in calls]
    return [future.result() for future in futures]


def run_blocking(
    steps: Steps[T],
    transport: Transport | AsyncTransport,
    *,
    wait: Callable[[float], None] = time.sleep,
) -> T:
    """:func:`run`, for a part shared by both clients that was handed either transport: only a
    blocking one can drive a blocking call (an ``AsyncClient`` awaits the steps instead)."""
    from exchange_client._internal.transport import Transport

    if not isinstance(transport, Transport):
        steps.close()
        raise TypeError(
            "a blocking call on an asynchronous transport: await the operation's steps "
            "with run_async"
        )
    return run(steps, transport, wait=wait)


async def run_async(steps: Steps[T], transport: AsyncTransport) -> T:
    """Drive ``steps`` to its result with the asynchronous ``transport``."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(result)
        except StopIteration as finished:
            return finished.value  # type: ignore[no-any-return]
        result, error = None, None
        try:
            if isinstance(step, Rpc):
                method = getattr(getattr(transport, step.service), step.method)
                result = await transport.call(method, step.request, metadata=step.metadata)
            elif isinstance(step, PublishBytes):
                result = await transport.publish_bytes(step.request, metadata=step.metadata)
            elif isinstance(step, Acquire):
                await step.lock.acquire_async()
            elif isinstance(step, Read):
                response = await step.stream.read()
                result = None if response is grpc.aio.EOF else response  # type: ignore[attr-defined]
            elif isinstance(step, Flush):
                await asyncio.to_thread(step.flush)
            elif isinstance(step, Together):
                answers = await asyncio.gather(
                    *(
                        transport.call(
                            getattr(getattr(transport, rpc.service), rpc.method),
                            rpc.request,
                            metadata=rpc.metadata,
                        )
                        for rpc in step.calls
                    ),
                    return_exceptions=True,
                )
                failed = next((a for a in answers if isinstance(a, BaseException)), None)
                if failed is not None:
                    raise failed
                result = answers
            else:
                await asyncio.sleep(step.seconds)
        except Exception as e:  # noqa: BLE001 - thrown into the operation at its yield
            error = e
        except BaseException:
            steps.close()  # cancelled or interrupted: its ``finally`` blocks run
            raise
