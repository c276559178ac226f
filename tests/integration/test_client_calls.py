"""One operation, written once as steps, driven over grpc and over grpc.aio with the same result.

The operations of :mod:`exchange_client._internal.calls` yield the calls they need; the blocking
driver and the asynchronous one must give the same answers and the same domain errors (the
hub's refusal as ``NotFoundError`` with its reason, a closed transport as ``ClientClosedError``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exchange.errors import NotFoundError
from exchange.v1 import alerts_pb2, directory_pb2
from exchange_client import ClientClosedError, Profile
from exchange_client._internal.calls import Steps, call, run, run_async, sleep
from exchange_client._internal.transport import AsyncTransport, Transport
from tests.conftest import fresh_exchange, wall_clock_hub


@pytest.fixture
def exchange_dir(tmp_path: Path) -> Path:
    return fresh_exchange(tmp_path)


@pytest.fixture
def target(exchange_dir: Path, tmp_path: Path) -> Iterator[str]:
    with wall_clock_hub(exchange_dir, tmp_path, heartbeat_seconds=1.0) as hub:
        yield f"127.0.0.1:{hub.port}"  # type: ignore[attr-defined]


def directory_and_a_refusal() -> Steps[dict[str, Any]]:
    """Lists the agencies, waits a moment, and asks for an alert that does not exist."""
    listed = yield from call("directory", "ListAgencies", directory_pb2.ListAgenciesRequest())
    yield from sleep(0.01)
    try:
        yield from call("alerts", "GetAlert", alerts_pb2.GetAlertRequest(alert_id=str(uuid.uuid4())))
    except NotFoundError as e:
        refusal = (type(e).__name__, e.reason)
    else:
        refusal = ("answered", "")
    return {"agencies": sorted(r.agency_id for r in listed.agencies), "refusal": refusal}


def test_the_same_steps_give_the_same_result_over_grpc_and_grpc_aio(
    exchange_dir: Path, target: str
) -> None:
    profile = Profile.load(exchange_dir / "agencies" / "agency-a")
    blocking = Transport.secure(profile, target=target, timeout=10)
    try:
        over_grpc = run(directory_and_a_refusal(), blocking)
    finally:
        blocking.close()

    async def over_aio() -> dict[str, Any]:
        transport = AsyncTransport.secure(profile, target=target, timeout=10)
        try:
            return await run_async(directory_and_a_refusal(), transport)
        finally:
            await transport.close()

    assert over_grpc == asyncio.run(over_aio())
    assert over_grpc["agencies"] == ["agency-a", "agency-b"]
    assert over_grpc["refusal"][0] == "NotFoundError"


def test_a_closed_transport_refuses_in_both_drivers(exchange_dir: Path, target: str) -> None:
    profile = Profile.load(exchange_dir / "agencies" / "agency-a")
    blocking = Transport.secure(profile, target=target, timeout=10)
    blocking.close()
    with pytest.raises(ClientClosedError):
        run(directory_and_a_refusal(), blocking)

    async def closed_aio() -> None:
        transport = AsyncTransport.secure(profile, target=target, timeout=10)
        await transport.close()
        await transport.close()  # idempotent
        await run_async(directory_and_a_refusal(), transport)

    with pytest.raises(ClientClosedError):
        asyncio.run(closed_aio())
