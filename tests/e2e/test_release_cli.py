"""Release controls as operators use them: the real `exchange` and `exchange-hub` commands."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from tests.e2e.test_cli import GOOD_DRAFT, Exchange, exchange, write_draft  # noqa: F401

EXIT_ERROR = 1
EXIT_NOT_PERMITTED = 4
DIRECTORY_CACHE_SECONDS = 1.0  # the hub's registry view is at most this old (AgencyDirectory)


def items_of(shown: object) -> dict[str, dict[str, object]]:
    assert isinstance(shown, dict)
    return {item["id"]: item for item in shown["items"]}


def test_request_deny_request_approve(exchange: Exchange, tmp_path: Path) -> None:  # noqa: F811
    draft = write_draft(tmp_path / "draft.json", GOOD_DRAFT)
    alert_id = exchange.json("publish", str(draft), agency="agency-a")["alert_id"]  # type: ignore[index]

    made = exchange.json("request", alert_id, "source-note", "--reason", "hearing on Monday",
                         agency="agency-b")
    assert isinstance(made, dict) and made["status"] == "PENDING"
    pending = exchange.json("requests", agency="agency-a")
    assert isinstance(pending, list) and len(pending) == 1
    assert {"request_id", "alert_id", "item_id", "requester", "reason"} <= set(pending[0])
    assert (pending[0]["request_id"], pending[0]["alert_id"], pending[0]["item_id"],
            pending[0]["requester"], pending[0]["reason"]) == (
        made["request_id"], alert_id, "source-note", "agency-b", "hearing on Monday"
    )

    exchange.run("deny", made["request_id"], "--reason", "source protection", agency="agency-a")
    note = items_of(exchange.json("show", alert_id, agency="agency-b"))["source-note"]
    assert note["status"] == "WITHHELD"
    assert "source protection" in str(note["detail"])
    assert exchange.json("requests", agency="agency-a") == []

    again = exchange.json("request", alert_id, "source-note", "--reason", "court order",
                          agency="agency-b")
    approved = exchange.json("approve", again["request_id"], agency="agency-a")  # type: ignore[index]
    assert approved["outcome"] == "APPROVED"  # type: ignore[index]
    note = items_of(exchange.json("show", alert_id, agency="agency-b"))["source-note"]
    assert note["status"] == "VISIBLE"
    assert note["payload"] == {"note": {"text": "Informant inside the forwarder.", "language": "en"}}

    outsider = exchange.run("request", alert_id, "source-note", "--reason", "x",
                            agency="agency-c", expect=EXIT_ERROR)
    assert "that you may see" in outsider.stderr


def test_onward_revoke_acknowledge_feedback_version_retract(
    exchange: Exchange, tmp_path: Path  # noqa: F811
) -> None:
    draft = write_draft(tmp_path / "draft.json", GOOD_DRAFT)
    alert_id = exchange.json("publish", str(draft), agency="agency-a")["alert_id"]  # type: ignore[index]
    exchange.run("show", alert_id, agency="agency-c", expect=EXIT_ERROR)

    onward = exchange.json("request", alert_id, "shipment", "--for", "agency-c", "--reason",
                           "joint investigation", agency="agency-b")
    exchange.run("approve", onward["request_id"], agency="agency-a")  # type: ignore[index]
    shown_c = items_of(exchange.json("show", alert_id, agency="agency-c"))
    assert {k: v["status"] for k, v in shown_c.items()} == {"shipment": "VISIBLE"}

    revoked = exchange.json("revoke", alert_id, "shipment", "--from", "agency-b", agency="agency-a")
    assert revoked["grants_deleted"] == 1  # type: ignore[index]
    assert items_of(exchange.json("show", alert_id, agency="agency-b"))["shipment"]["status"] == (
        "REVOKED"
    )
    exchange.run("feedback", alert_id, "--outcome", "SEIZED", "--note", "1.2 t at Manzanillo",
                 agency="agency-b")
    records = exchange.json("receipts", alert_id, agency="agency-a")
    assert isinstance(records, list)
    kinds = {(r["kind"], r["agency"]) for r in records}
    assert {("PURGE_ACK", "agency-b"), ("FEEDBACK", "agency-b"), ("RECEIPT", "agency-b"),
            ("RECEIPT", "agency-c")} <= kinds
    (fed,) = [r for r in records if r["kind"] == "FEEDBACK"]
    assert (fed["outcome"], fed["note"]) == ("SEIZED", "1.2 t at Manzanillo")
    assert "purge acknowledged by agency-b: shipment" in exchange.run(
        "receipts", alert_id, agency="agency-a"
    ).stdout
    exchange.run("feedback", alert_id, "--outcome", "MAYBE", agency="agency-b", expect=2)

    second = copy.deepcopy(GOOD_DRAFT)
    second["title"] = "Cleaning agent that is 4-piperidone (corrected quantity)"
    draft2 = write_draft(tmp_path / "draft2.json", second)
    receipt = exchange.json("publish", str(draft2), "--supersedes", alert_id, agency="agency-a")
    assert (receipt["alert_id"], receipt["version"]) == (alert_id, 2)  # type: ignore[index]
    shown = exchange.json("show", alert_id, agency="agency-b")
    assert shown["versions"] == [1, 2] and shown["version"] == 2  # type: ignore[index]
    exchange.run("publish", str(draft2), "--supersedes", alert_id, agency="agency-b",
                 expect=EXIT_ERROR)

    exchange.run("retract", alert_id, "--reason", "wrong container", agency="agency-a")
    assert exchange.json("show", alert_id, agency="agency-b")["retracted"] is True  # type: ignore[index]
    exchange.run("retract", alert_id, "--reason", "x", agency="agency-b", expect=EXIT_ERROR)


def test_a_revoked_agency_is_refused(exchange: Exchange) -> None:  # noqa: F811
    exchange.run("inbox", agency="agency-c")
    exchange.run("exchange-hub", "agency", "revoke", "--config",
                 str(exchange.data / "hub.toml"), "--database", exchange.database_url, "agency-c")
    # The hub re-reads the registry at most DIRECTORY_CACHE_SECONDS later.
    deadline = time.monotonic() + 10 * DIRECTORY_CACHE_SECONDS
    while True:
        result = exchange.run("inbox", agency="agency-c", expect=None)
        if result.returncode == EXIT_NOT_PERMITTED or time.monotonic() > deadline:
            break
        time.sleep(DIRECTORY_CACHE_SECONDS / 4)
    assert result.returncode == EXIT_NOT_PERMITTED, result.stderr
    assert "not authenticated" in result.stderr and "revoked" in result.stderr
    listed = json.loads(exchange.run("exchange-hub", "agency", "list", "--config",
                                     str(exchange.data / "hub.toml"), "--database",
                                     exchange.database_url, "--json").stdout)
    assert {a["agency_id"]: a["revoked"] for a in listed}["agency-c"] is True


def test_watch_acknowledges_a_revocation_as_it_arrives(
    exchange: Exchange, tmp_path: Path  # noqa: F811
) -> None:
    draft = write_draft(tmp_path / "draft.json", GOOD_DRAFT)
    alert_id = exchange.json("publish", str(draft), agency="agency-a")["alert_id"]  # type: ignore[index]
    exchange.run("revoke", alert_id, "shipment", agency="agency-a")
    watched = exchange.run("watch", "--after", "1", "--count", "1", "--json", agency="agency-b")
    event = json.loads(watched.stdout.splitlines()[0])
    assert (event["kind"], event["item_id"]) == ("ITEM_REVOKED", "shipment")
    records = exchange.json("receipts", alert_id, agency="agency-a")
    assert [(r["kind"], r["agency"], r["item_id"]) for r in records] == [  # type: ignore[union-attr]
        ("PURGE_ACK", "agency-b", "shipment")
    ]


def test_embargoed_and_expired_items_as_drafted_in_rfc_3339(
    exchange: Exchange, tmp_path: Path  # noqa: F811
) -> None:
    draft = copy.deepcopy(GOOD_DRAFT)
    shipment, note = draft["items"]  # type: ignore[misc]
    shipment["policy"] = {"audience": ["agency-b"], "release": "EMBARGO", "tlp": "AMBER",
                          "embargo_until": "2099-01-01T00:00:00Z"}
    note["policy"] = {"audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "RED",
                      "expires_at": "2020-06-30T12:00:00+02:00"}
    path = write_draft(tmp_path / "draft.json", draft)
    alert_id = exchange.json("publish", str(path), agency="agency-a")["alert_id"]  # type: ignore[index]
    shown = items_of(exchange.json("show", alert_id, agency="agency-b"))
    assert shown["shipment"]["status"] == "EMBARGOED"
    assert shown["shipment"]["policy"]["embargo_until"] == "2099-01-01T00:00:00Z"  # type: ignore[index]
    assert shown["source-note"]["status"] == "EXPIRED"
    assert shown["source-note"]["policy"]["expires_at"] == "2020-06-30T10:00:00Z"  # type: ignore[index]
    assert "payload" not in shown["shipment"] and "payload" not in shown["source-note"]
    text = exchange.run("show", alert_id, agency="agency-b").stdout
    assert "EMBARGOED" in text and "EXPIRED" in text
