"""The client library's release controls against a real hub: each method returns domain objects,
and opening an alert sends receipts and purge acknowledgements by itself."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exchange_client import (
    Client,
    Draft,
    NotFoundError,
    Profile,
    ReleaseRequest,
    StatementResult,
)
from exchange_client._internal.state import ClientState, journal_record, journal_records
from tests.conftest import FrozenClock

DRAFT = {
    "kind": "FUND_FLOW",
    "title": "Payments for a 4-piperidone shipment",
    "items": [
        {
            "id": "consignee",
            "policy": {"audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "AMBER"},
            "note": {"text": "Consignee: Acme Trading", "language": "en"},
        },
        {
            "id": "bank",
            "policy": {"audience": ["agency-b"], "release": "ON_REQUEST", "tlp": "RED",
                       "handling": ["H2"]},
            "note": {"text": "IBAN DE89 3704 0044 0532 0130 00", "language": "en"},
        },
    ],
}


@pytest.fixture
def clients(
    hub: object, exchange_dir: Path, tmp_path: Path, clock: FrozenClock
) -> Iterator[Callable[[str], Client]]:
    opened: list[Client] = []

    def client_for(agency: str) -> Client:
        profile = dataclasses.replace(
            Profile.load(exchange_dir / "agencies" / agency), state_dir=tmp_path / agency
        )
        client = Client(profile, hub=f"127.0.0.1:{hub.port}", clock=clock)  # type: ignore[attr-defined]
        opened.append(client)
        return client

    yield client_for
    for client in opened:
        client.close()


def statuses(client: Client, alert_id: str) -> dict[str, tuple[str, str]]:
    return {item.id: (item.status, item.detail) for item in client.open(alert_id).items}


def test_request_deny_request_approve_and_the_receipts_that_follow(
    clients: Callable[[str], Client],
) -> None:
    a, b = clients("agency-a"), clients("agency-b")
    alert_id = a.publish(Draft.from_dict(DRAFT)).alert_id
    assert statuses(b, alert_id)["bank"] == ("WITHHELD", "")

    first = b.request_release(alert_id, "bank", reason="asset freeze")
    assert isinstance(first, ReleaseRequest) and first.status == "PENDING"
    assert statuses(b, alert_id)["bank"] == ("WITHHELD", "requested; waiting for agency-a")
    (pending,) = a.release_requests()
    assert (pending.request_id, pending.requester, pending.reason) == (
        first.request_id, "agency-b", "asset freeze"
    )
    denied = a.deny(first.request_id, reason="source protection")
    assert isinstance(denied, StatementResult) and denied.outcome == "DENIED"
    assert statuses(b, alert_id)["bank"] == (
        "WITHHELD", "request denied by agency-a: source protection"
    )

    second = b.request_release(alert_id, "bank", reason="court order 2026/114")
    approved = a.approve(second.request_id)
    assert (approved.outcome, approved.agency) == ("APPROVED", "agency-b")
    opened = b.open(alert_id)
    bank = opened.item("bank")
    assert bank.status == "VISIBLE" and bank.payload is not None
    assert "DE89" in bank.payload.note.text

    records = a.receipts(alert_id)
    receipts = [r for r in records if r.kind == "RECEIPT" and r.agency == "agency-b"]
    assert receipts[0].withheld == ("bank",)  # the first receipt complains of the held item
    assert "bank" in receipts[-1].opened  # and a later one says it opened
    assert [r.status for r in b.release_requests(mine=True, include_decided=True)] == ["DENIED", "APPROVED"]


def test_onward_request_needs_the_originator_and_agency_c_sees_only_that_item(
    clients: Callable[[str], Client],
) -> None:
    a, b, c = clients("agency-a"), clients("agency-b"), clients("agency-c")
    alert_id = a.publish(Draft.from_dict(DRAFT)).alert_id
    with pytest.raises(NotFoundError):
        c.open(alert_id)
    with pytest.raises(NotFoundError):
        c.request_release(alert_id, "bank", reason="we want it too")
    onward = b.request_release(alert_id, "consignee", reason="joint case", for_agency="agency-c")
    assert onward.target == "agency-c"
    with pytest.raises(NotFoundError):
        b.approve(onward.request_id)  # not a request made of agency-b
    a.approve(onward.request_id)
    opened = c.open(alert_id)
    assert {item.id: item.status for item in opened.items} == {"consignee": "VISIBLE"}
    # The item arrives with its alert's summary, as an item received directly does.
    assert (opened.title, opened.kind) == ("Payments for a 4-piperidone shipment", "FUND_FLOW")
    [entry] = [e for e in c.inbox() if e.alert_id == alert_id]
    assert (entry.title, entry.kind, entry.problem) == (
        "Payments for a 4-piperidone shipment", "FUND_FLOW", ""
    )
    # The summary was asked for and granted as its own signed request, decided with the item.
    decided = a.release_requests(include_decided=True)
    assert sorted((r.item_id, r.target, r.status) for r in decided) == [
        ("_summary", "agency-c", "APPROVED"),
        ("consignee", "agency-c", "APPROVED"),
    ]
    assert a.release_requests() == []


def test_a_second_onward_item_to_the_same_agency_needs_no_second_summary(
    clients: Callable[[str], Client],
) -> None:
    a, b, c = clients("agency-a"), clients("agency-b"), clients("agency-c")
    alert_id = a.publish(Draft.from_dict(DRAFT)).alert_id
    first = b.request_release(alert_id, "consignee", reason="joint case", for_agency="agency-c")
    a.approve(first.request_id)
    second = b.request_release(alert_id, "bank", reason="joint case", for_agency="agency-c")
    assert [r.item_id for r in a.release_requests()] == ["bank"]  # the summary is released
    a.approve(second.request_id)
    opened = c.open(alert_id)
    assert {item.id: item.status for item in opened.items} == {
        "consignee": "VISIBLE", "bank": "VISIBLE"
    }
    assert opened.kind == "FUND_FLOW"


def test_a_denied_onward_item_takes_its_summary_request_with_it(
    clients: Callable[[str], Client],
) -> None:
    a, b, c = clients("agency-a"), clients("agency-b"), clients("agency-c")
    alert_id = a.publish(Draft.from_dict(DRAFT)).alert_id
    onward = b.request_release(alert_id, "consignee", reason="joint case", for_agency="agency-c")
    a.deny(onward.request_id, reason="not to agency-c")
    assert a.release_requests() == []
    with pytest.raises(NotFoundError):
        c.open(alert_id)


def test_revocation_is_acknowledged_by_the_recipient_on_its_next_open(
    clients: Callable[[str], Client],
) -> None:
    a, b = clients("agency-a"), clients("agency-b")
    alert_id = a.publish(Draft.from_dict(DRAFT)).alert_id
    assert statuses(b, alert_id)["consignee"][0] == "VISIBLE"
    revoked = a.revoke(alert_id, "consignee", from_agency="agency-b")
    assert revoked.grants_deleted == 1
    assert statuses(b, alert_id)["consignee"][0] == "REVOKED"
    statuses(b, alert_id)  # a second open acknowledges nothing new
    acks = [r for r in a.receipts(alert_id) if r.kind == "PURGE_ACK"]
    assert [(r.agency, r.item_id) for r in acks] == [("agency-b", "consignee")]
    with pytest.raises(NotFoundError):
        b.revoke(alert_id, "consignee")  # not its alert: there is no such alert of agency-b's


def test_a_lost_record_of_the_latest_version_is_recovered_from_the_hub(
    clients: Callable[[str], Client], tmp_path: Path
) -> None:
    a = clients("agency-a")
    alert_id = a.publish(Draft.from_dict(DRAFT)).alert_id
    assert a.publish(Draft.from_dict(DRAFT), supersedes=alert_id).version == 2
    a.close()  # its journal written out: version 2 is a published/ file now
    # The record of version 2 is lost (it is not flushed to disk: a crash of the machine):
    # the profile still knows version 1, and the hub refuses a second version 2.
    (tmp_path / "agency-a" / "published" / f"{alert_id}.v2.json").unlink()
    journals = list((tmp_path / "agency-a" / "journal").glob("*.wal"))
    for journal in journals:  # and its journal record, never flushed since, with it
        records = [r for r in journal_records(journal.read_bytes())[0] if r["kind"] != "published"]
        journal.write_bytes(b"".join(journal_record(r) for r in records))
    known = ClientState(tmp_path / "agency-a").latest_published(alert_id)
    assert known is not None and known.version == 1
    a = clients("agency-a")
    third = a.publish(Draft.from_dict(DRAFT), supersedes=alert_id)
    assert third.version == 3
    b = clients("agency-b")
    assert b.open(alert_id).version == 3
