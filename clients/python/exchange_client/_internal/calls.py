"""Operations written once, run by ``Client`` over grpc and by ``AsyncClient`` over grpc.aio.

Each operation of the client that talks to the hub (publish, open, a release decision, an
audit check, ...) is a generator: it *yields* the steps it needs done — a unary call
(:class:`Rpc`), a publish of sealed bytes (:class:`PublishBytes`), a wait before a retry
(:class:`Sleep`) — and is sent back each step's result, or has the step's error thrown in at
the ``yield``. Everything between the steps (verification, sealing, opening, the audit log's
rules) runs in the generator and is the same code for both clients. :func:`run` drives an
operation with a blocking :class:`~exchange_client._internal.transport.Transport`;
:func:`run_async` with an :class:`~exchange_client._internal.transport.AsyncTransport`.

Operations compose with ``yield from``; a helper that needs no I/O stays a plain function.

This is the layer ``AsyncClient`` (issue 9, item 2) is to be built on: the concerns' operations
move onto it one by one, the blocking ``Client`` driving them with :func:`run`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

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


Step = Rpc | PublishBytes | Sleep
Steps = Generator[Step, Any, T]
"""An operation: yields steps, is sent their results, returns a ``T``."""


def call(service: str, method: str, request: Any, *, metadata: Metadata | None = None) -> Steps[Any]:
    """The one-step operation: the hub's answer to one unary call."""
    response = yield Rpc(service, method, request, metadata)
    return response


def done(value: T) -> Steps[T]:
    """The operation of no step: ``value`` at once."""
    yield from ()
    return value


def publish_bytes(request: bytes, *, metadata: Metadata) -> Steps[Any]:
    """The one-step operation: the hub's answer to a sealed ``PublishRequest`` sent as saved."""
    response = yield PublishBytes(request, metadata)
    return response


def sleep(seconds: float) -> Steps[None]:
    """The one-step operation: a wait."""
    yield Sleep(seconds)


def run(
    steps: Steps[T], transport: Transport, *, wait: Callable[[float], None] = time.sleep
) -> T:
    """Drive ``steps`` to its result with the blocking ``transport``."""
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
                result = transport.call(method, step.request, metadata=step.metadata)
            elif isinstance(step, PublishBytes):
                result = transport.publish_bytes(step.request, metadata=step.metadata)
            else:
                wait(step.seconds)
        except Exception as e:  # noqa: BLE001 - thrown into the operation at its yield
            error = e


def run_blocking(
    steps: Steps[T], transport: Transport | AsyncTransport, *, wait: Callable[[float], None] = time.sleep
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
            else:
                await asyncio.sleep(step.seconds)
        except Exception as e:  # noqa: BLE001 - thrown into the operation at its yield
            error = e
