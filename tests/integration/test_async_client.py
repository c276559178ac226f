"""``AsyncClient`` and ``Client`` through the same scenarios on a real hub (mTLS, SQLite and
PostgreSQL): each scenario is parametrized over the kind of client taking its steps, and must
come out the same — the two run the same operations, on the same state files.

Alerts are published and opened with ``Client`` (``AsyncClient`` does not publish yet); the
release controls, the directory and the audit calls are taken by the client under test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exchange_client import (
    AsyncClient,
    Client,
    ClientClosedError,
    ConflictError,
    Draft,
    NotFoundError,
    Profile,
    ReleaseRequest,
    StatementResult,
)
from tests.conftest import FrozenClock
from tests.integration.test_release_client import DRAFT

KINDS = ["blocking", "asyncio"]


class Agency:
    """One agency's client of either kind; a coroutine's result is awaited on the agency's own
    event loop, so that the test reads the same for both kinds."""

    def __init__(self, kind: str, profile: Profile, target: str, clock: FrozenClock) -> None:
        self.kind = kind
        self._runner = asyncio.Runner()
        self.client: Client | AsyncClient
        if kind == "blocking":
            self.client = Client(profile, hub=target, clock=clock)
        else:

            async def connect() -> AsyncClient:  # grpc.aio channels belong to a running loop
                return AsyncClient(profile, hub=target, clock=clock)

            self.client = self._runner.run(connect())

    def _done(self, result: Any) -> Any:
        return self._runner.run(result) if inspect.iscoroutine(result) else result

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._done(getattr(self.client, method)(*args, **kwargs))

    def audit(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._done(getattr(self.client.auditor, method)(*args, **kwargs))

    def close(self) -> None:
        self._done(self.client.close())
        self._runner.close()


@pytest.fixture
def profiles(exchange_dir: Path, tmp_path: Path) -> Callable[[str], Profile]:
    def profile_of(agency: str) -> Profile:
        return dataclasses.replace(
            Profile.load(exchange_dir / "agencies" / agency), state_dir=tmp_path / agency
        )

    return profile_of


@pytest.fixture
def connect(
    hub: object, profiles: Callable[[str], Profile], clock: FrozenClock
) -> Iterator[Callable[[str, str], Agency]]:
    target = f"127.0.0.1:{hub.port}"  # type: ignore[attr-defined]
    opened: list[Agency] = []

    def agency(name: str, kind: str) -> Agency:
        opened.append(Agency(kind, profiles(name), target, clock))
        return opened[-1]

    yield agency
    for party in opened:
        party.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_release_request_is_granted_and_the_item_opens(
    kind: str, connect: Callable[[str, str], Agency]
) -> None:
    publisher, reader = connect("agency-a", "blocking"), connect("agency-b", "blocking")
    a, b = connect("agency-a", kind), connect("agency-b", kind)
    alert_id = publisher.call("publish", Draft.from_dict(DRAFT)).alert_id
    assert reader.call("open", alert_id).item("bank").status == "WITHHELD"

    directory = {info.agency_id: info for info in b.call("agencies")}
    assert directory["agency-a"].verified and directory["agency-a"].problem == ""

    first = b.call("request_release", alert_id, "bank", reason="asset freeze")
    assert isinstance(first, ReleaseRequest) and first.status == "PENDING"
    (pending,) = a.call("release_requests")
    assert (pending.request_id, pending.requester, pending.reason) == (
        first.request_id, "agency-b", "asset freeze"
    )
    denied = a.call("deny", first.request_id, reason="source protection")
    assert isinstance(denied, StatementResult) and denied.outcome == "DENIED"
    with pytest.raises(ConflictError) as twice:
        a.call("approve", first.request_id)
    assert twice.value.reason == "ALREADY_DECIDED"

    second = b.call("request_release", alert_id, "bank", reason="court order 2026/114")
    approved = a.call("approve", second.request_id)
    assert (approved.outcome, approved.agency, approved.item_id) == ("APPROVED", "agency-b", "bank")
    bank = reader.call("open", alert_id).item("bank")
    assert bank.status == "VISIBLE" and bank.payload is not None
    assert "DE89" in bank.payload.note.text
    mine = b.call("release_requests", mine=True, include_decided=True)
    assert [(r.request_id, r.status) for r in mine] == [
        (first.request_id, "DENIED"), (second.request_id, "APPROVED")
    ]

    revoked = a.call("revoke", alert_id, "bank", from_agency="agency-b", reason="case closed")
    assert (revoked.kind, revoked.grants_deleted) == ("REVOCATION", 1)
    retracted = a.call("retract", alert_id, reason="superseded by a court filing")
    assert retracted.kind == "RETRACTION" and retracted.log_index > revoked.log_index
    with pytest.raises(NotFoundError):
        a.call("approve", "no-such-request")


@pytest.mark.parametrize("kind", KINDS)
def test_the_audit_calls_verify_the_log_and_share_the_trusted_checkpoint(
    kind: str,
    connect: Callable[[str, str], Agency],
    profiles: Callable[[str], Profile],
    hub: object,
) -> None:
    publisher = connect("agency-a", "blocking")
    alert_id = publisher.call("publish", Draft.from_dict(DRAFT)).alert_id
    b = connect("agency-b", kind)
    request = b.call("request_release", alert_id, "bank", reason="asset freeze")
    hub.checkpoint_now()  # type: ignore[attr-defined]  # the log stays at this size now

    report = b.audit("verify")
    assert report.ok, report.failures
    assert report.size > request.log_index and report.bodies_verified >= 2
    summary = b.audit("summary")
    assert summary.size == report.size
    # The trusted checkpoint is the profile's state file, the same for both kinds of client.
    saved = json.loads((profiles("agency-b").state_dir / "checkpoint.json").read_text())
    assert saved["size"] == summary.size
    history = b.audit("history", alert_id)
    assert (history[0].index, history[0].kind, history[0].version) == (0, "publication", 1)
    assert request.log_index in [entry.index for entry in history]
    other = connect("agency-b", "blocking" if kind == "asyncio" else "asyncio")
    assert other.audit("summary").size == summary.size


def test_a_closed_async_client_refuses_before_sending(
    connect: Callable[[str, str], Agency],
) -> None:
    b = connect("agency-b", "asyncio")
    b.call("close")
    b.call("close")  # idempotent
    with pytest.raises(ClientClosedError):
        b.call("agencies")
    with pytest.raises(ClientClosedError):
        b.audit("verify")
