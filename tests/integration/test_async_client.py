"""``AsyncClient`` and ``Client`` through the same scenarios on a real hub (mTLS, SQLite and
PostgreSQL): each scenario is parametrized over the kind of client taking its steps, and must
come out the same — the two run the same operations, on the same state files.

Publishing (with the outbox and its resends), the inbox, opening, feedback, the release
controls, the directory and the audit calls are taken by the client under test; a blocking
``Client`` checks what the other agency sees.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exchange.crypto.notes import Checkpoint
from exchange_client import (
    AsyncClient,
    Client,
    ClientClosedError,
    ConflictError,
    Draft,
    ExchangeError,
    FeedEvent,
    NotFoundError,
    Profile,
    ReleaseRequest,
    StatementResult,
    UnavailableError,
)
from exchange_client._internal.audit import CheckpointStore, checkpoint_text
from tests.conftest import FrozenClock
from tests.integration.tcp_proxy import TcpProxy
from tests.integration.test_release_client import DRAFT

KINDS = ["blocking", "asyncio"]


class Agency:
    """One agency's client of either kind; a coroutine's result is awaited on the agency's own
    event loop, so that the test reads the same for both kinds."""

    def __init__(
        self, kind: str, profile: Profile, target: str, clock: FrozenClock, **options: Any
    ) -> None:
        self.kind = kind
        self._runner = asyncio.Runner()
        self.client: Client | AsyncClient
        if kind == "blocking":
            self.client = Client(profile, hub=target, clock=clock, **options)
        else:

            async def connect() -> AsyncClient:  # grpc.aio channels belong to a running loop
                return AsyncClient(profile, hub=target, clock=clock, **options)

            self.client = self._runner.run(connect())

    def _done(self, result: Any) -> Any:
        return self._runner.run(result) if inspect.iscoroutine(result) else result

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._done(getattr(self.client, method)(*args, **kwargs))

    def audit(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._done(getattr(self.client.auditor, method)(*args, **kwargs))

    def watch(self, count: int, **options: Any) -> list[FeedEvent]:
        """The next ``count`` events of the feed subscription (``Client.subscribe``,
        ``AsyncClient.watch``), the cursor saved on a clean exit."""
        if isinstance(self.client, Client):
            with self.client.subscribe(**options) as subscription:
                return [next(subscription) for _ in range(count)]
        client = self.client

        async def take() -> list[FeedEvent]:
            taken: list[FeedEvent] = []
            async with client.watch(**options) as subscription:
                async for event in subscription:
                    taken.append(event)
                    if len(taken) == count:
                        break
            return taken

        return self._runner.run(take())

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

    def agency(name: str, kind: str, *, hub: str | None = None, **options: Any) -> Agency:
        opened.append(Agency(kind, profiles(name), hub or target, clock, **options))
        return opened[-1]

    yield agency
    for party in opened:
        party.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_published_alert_is_in_the_inbox_and_opens_with_its_receipt_sent(
    kind: str, connect: Callable[[str, str], Agency]
) -> None:
    publisher, b = connect("agency-a", kind), connect("agency-b", kind)
    assert b.call("inbox") == []
    receipt = publisher.call("publish", Draft.from_dict(DRAFT))
    assert (receipt.originator, receipt.version, receipt.notified) == ("agency-a", 1, ("agency-b",))
    assert list((publisher.client.profile.state_dir / "outbox").iterdir()) == []

    (entry,) = b.call("inbox")
    assert (entry.originator, entry.alert_id, entry.version) == ("agency-a", receipt.alert_id, 1)
    assert (entry.title, entry.kind, entry.problem) == (DRAFT["title"], "FUND_FLOW", "")
    opened = b.call("open", receipt.alert_id, originator="agency-a")
    assert opened.manifest_hash == receipt.manifest_hash
    consignee, bank = opened.item("consignee"), opened.item("bank")
    assert consignee.status == "VISIBLE" and consignee.payload is not None
    assert consignee.payload.note.text == "Consignee: Acme Trading"
    assert (bank.status, bank.payload) == ("WITHHELD", None)
    # Opening sent the receipt, once: the originator lists it, verified.
    receipts = [r for r in publisher.call("receipts", receipt.alert_id) if r.kind == "RECEIPT"]
    assert [(r.agency, r.withheld) for r in receipts] == [("agency-b", ("bank",))]

    feedback = b.call("feedback", receipt.alert_id, "SEIZED", note="12 drums held at the port")
    assert (feedback.kind, feedback.outcome) == ("FEEDBACK", "SEIZED")
    records = publisher.call("receipts", receipt.alert_id)
    assert [r.note for r in records if r.kind == "FEEDBACK"] == ["12 drums held at the port"]
    with pytest.raises(NotFoundError):
        b.call("open", str(uuid.uuid4()))


@pytest.mark.parametrize("kind", KINDS)
def test_a_release_request_is_granted_and_the_item_opens(
    kind: str, connect: Callable[[str, str], Agency]
) -> None:
    publisher, reader = connect("agency-a", kind), connect("agency-b", "blocking")
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
    # The trusted checkpoint is the profile's state (its journal, folded into checkpoint.json
    # at a clean close), the same for both kinds of client.
    saved = CheckpointStore(profiles("agency-b").state_dir).load()
    assert saved is not None and Checkpoint.from_text(checkpoint_text(saved)).size == summary.size
    history = b.audit("history", alert_id)
    assert (history[0].index, history[0].kind, history[0].version) == (0, "publication", 1)
    assert request.log_index in [entry.index for entry in history]
    other = connect("agency-b", "blocking" if kind == "asyncio" else "asyncio")
    assert other.audit("summary").size == summary.size


@pytest.mark.parametrize("kind", KINDS)
def test_a_publish_the_hub_missed_stays_in_the_outbox_for_either_client_to_resend(
    kind: str, connect: Callable[..., Agency], hub: object
) -> None:
    proxy = TcpProxy(("127.0.0.1", hub.port))  # type: ignore[attr-defined]
    retries: list[float] = []
    offline = connect(
        "agency-a",
        kind,
        hub=f"127.0.0.1:{proxy.port}",
        retry_seconds=0.2,
        on_retry=lambda seconds, error: retries.append(seconds),
    )
    offline.call("agencies")  # partner keys held: the publish seals without asking the hub
    proxy.cut()
    with pytest.raises(UnavailableError) as unavailable:
        offline.call("publish", Draft.from_dict(DRAFT))
    assert "exchange resend" in unavailable.value.message
    assert retries and all(0 < seconds <= 0.2 for seconds in retries)
    (kept,) = (offline.client.profile.state_dir / "outbox").iterdir()

    other = "blocking" if kind == "asyncio" else "asyncio"
    (receipt,) = connect("agency-a", other).call("flush_outbox")
    assert not kept.exists()
    reader = connect("agency-b", kind)
    assert [e.alert_id for e in reader.call("inbox")] == [receipt.alert_id]
    superseding = connect("agency-a", kind).call(
        "publish", Draft.from_dict(DRAFT), supersedes=receipt.alert_id
    )
    assert (superseding.alert_id, superseding.version) == (receipt.alert_id, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_the_feed_is_watched_and_polled_from_the_saved_cursor(
    kind: str, connect: Callable[[str, str], Agency]
) -> None:
    publisher, b = connect("agency-a", "blocking"), connect("agency-b", kind)
    first = publisher.call("publish", Draft.from_dict(DRAFT)).alert_id
    second = publisher.call("publish", Draft.from_dict(DRAFT)).alert_id

    watched = b.watch(2)
    assert [(e.sequence, e.kind, e.alert_id) for e in watched] == [
        (1, "ALERT_PUBLISHED", first), (2, "ALERT_PUBLISHED", second)
    ]
    assert b.call("cursor") == 2  # saved on leaving the subscription cleanly
    third = publisher.call("publish", Draft.from_dict(DRAFT)).alert_id
    (resumed,) = b.watch(1)
    assert (resumed.sequence, resumed.alert_id) == (3, third)
    polled = b.call("events", 1)
    assert [(e.sequence, e.alert_id) for e in polled] == [(2, second), (3, third)]
    b.call("commit_cursor", 3)
    assert b.call("events") == []

    # One reader of a profile's feed at a time, whichever kind of client holds it.
    other = connect("agency-b", "blocking" if kind == "asyncio" else "asyncio")
    holding = b.client.subscribe() if isinstance(b.client, Client) else b.client.watch()
    try:
        with pytest.raises(ExchangeError) as busy:
            other.watch(1)
        assert busy.value.reason == "PROFILE_BUSY"
    finally:
        holding.abandon()


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
    with pytest.raises(ClientClosedError):
        b.call("publish", Draft.from_dict(DRAFT))
    outbox = b.client.profile.state_dir / "outbox"
    assert not outbox.exists() or list(outbox.iterdir()) == []  # nothing sealed into it
    with pytest.raises(ClientClosedError):
        b.watch(1)
