"""The JSON the CLI prints: policies (TLP spellings, RFC 3339 times) and ``show --json``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from exchange.alerts.draft import Draft
from exchange.alerts.watchlist import Watchlist
from exchange.config.profile import load_profile
from exchange.statements.sealing import (
    PlainItem,
    SealedAlert,
    open_version,
    seal_alert,
    summary_item,
)
from exchange.v1 import alerts_pb2, payloads_pb2, statements_pb2
from exchange_client import OpenedAlert, OpenedItem
from exchange_client._internal.models import ItemPolicy
from exchange_client._internal.opening import opened_alert

Policy = statements_pb2.ReleasePolicy
STATUSES = {"VISIBLE", "WITHHELD", "EMBARGOED", "REVOKED", "EXPIRED", "INVALID"}


def _timestamp(text: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromJsonString(text)
    return stamp


@pytest.mark.parametrize(
    ("tlp", "spelling"),
    [
        (Policy.TLP_CLEAR, "CLEAR"),
        (Policy.TLP_GREEN, "GREEN"),
        (Policy.TLP_AMBER, "AMBER"),
        (Policy.TLP_AMBER_STRICT, "AMBER+STRICT"),
        (Policy.TLP_RED, "RED"),
        (Policy.TLP_UNSPECIFIED, None),
    ],
)
def test_tlp_is_spelled_as_tlp_2_0_writes_it(tlp: int, spelling: str | None) -> None:
    assert ItemPolicy.from_proto(Policy(tlp=tlp)).to_json()["tlp"] == spelling  # type: ignore[arg-type]


def test_policy_json_is_snake_case_with_names_and_rfc3339_times() -> None:
    policy = Policy(
        audience=["agency-b", "agency-c"],
        release=Policy.EMBARGO,
        embargo_until=_timestamp("2025-03-01T12:00:00Z"),
        tlp=Policy.TLP_AMBER_STRICT,
        handling=[Policy.H1, Policy.H2],
        expires_at=_timestamp("2025-06-01T00:00:00.500Z"),
    )
    assert ItemPolicy.from_proto(policy).to_json() == {
        "audience": ["agency-b", "agency-c"],
        "release": "EMBARGO",
        "tlp": "AMBER+STRICT",
        "handling": ["H1", "H2"],
        "embargo_until": "2025-03-01T12:00:00Z",
        "expires_at": "2025-06-01T00:00:00.500000Z",
    }


def test_an_unset_policy_has_every_key_with_empty_values() -> None:
    assert ItemPolicy.from_proto(Policy()).to_json() == {
        "audience": [],
        "release": None,
        "tlp": None,
        "handling": [],
        "embargo_until": None,
        "expires_at": None,
    }


def test_payload_is_printed_only_for_visible_items() -> None:
    payload = payloads_pb2.ItemPayload(note=payloads_pb2.Note(text="seen", language="en"))
    policy = ItemPolicy.from_proto(Policy(audience=["agency-b"], release=Policy.IMMEDIATE))
    visible = OpenedItem(id="n", status="VISIBLE", policy=policy, payload=payload)
    invalid = OpenedItem(id="n", status="INVALID", policy=policy, payload=payload, detail="bad")
    withheld = OpenedItem(id="n", status="WITHHELD", policy=policy)
    assert visible.to_json()["payload"] == {"note": {"text": "seen", "language": "en"}}
    assert "payload" not in invalid.to_json()
    assert invalid.to_json()["detail"] == "bad"
    assert "payload" not in withheld.to_json()


# --- show --json of a real sealed alert, opened as its recipient ------------------------------

DRAFT = {
    "kind": "SHIPMENT",
    "grading": {"source": "B", "information": "2"},
    "title": "Mislabelled precursor",
    "operator": "op-17",
    "items": [
        {
            "id": "shipment-1",
            "policy": {
                "audience": ["agency-b"],
                "release": "IMMEDIATE",
                "tlp": "TLP:AMBER+STRICT",
                "handling": ["H2"],
            },
            "shipment": {
                "declared_description": "industrial cleaning agent",
                "hs_code": "2933.39",
                "chemicals": [{"name": "4-piperidone", "cas_rn": "41661-47-6"}],
            },
        },
        {
            "id": "informant",
            "policy": {"audience": ["agency-b"], "release": "ON_REQUEST", "tlp": "RED"},
            "note": {"text": "source says the container was relabelled", "language": "en"},
        },
        {
            "id": "bank-records",
            "policy": {
                "audience": ["agency-b"],
                "release": "EMBARGO",
                "embargo_until": "2099-01-01T00:00:00Z",
                "tlp": "AMBER",
            },
            "note": {"text": "records follow", "language": "en"},
        },
    ],
}


def _view_for(request: alerts_pb2.PublishRequest, recipient: str) -> alerts_pb2.AlertView:
    """The AlertView a hub serves ``recipient``: grants and ciphertexts only where granted."""
    view = alerts_pb2.AlertView(manifest=request.manifest, versions=[1])
    view.published_at.FromDatetime(datetime(2025, 3, 1, 12, 0, tzinfo=UTC))
    grants = {g.item_id: g for g in request.grants if g.recipient == recipient}
    for item in request.items:
        header = statements_pb2.ItemHeader.FromString(item.header)
        item_view = alerts_pb2.ItemView(header=item.header)
        if header.policy.release == Policy.EMBARGO:
            item_view.state = alerts_pb2.ItemView.EMBARGOED
        elif header.item_id in grants:
            item_view.state = alerts_pb2.ItemView.GRANTED
            item_view.ciphertext = item.ciphertext
            item_view.grant.CopyFrom(grants[header.item_id])
        else:
            item_view.state = alerts_pb2.ItemView.WITHHELD
        view.items.append(item_view)
    return view


def _sealed_draft(exchange_dir: Path) -> SealedAlert:
    """The draft sealed by agency-a for agency-b."""
    originator = load_profile(exchange_dir / "agencies" / "agency-a")
    recipient = load_profile(exchange_dir / "agencies" / "agency-b")
    draft = Draft.from_dict(DRAFT)
    items = [PlainItem(item.id, item.policy, item.payload) for item in draft.items]
    return seal_alert(
        originator="agency-a",
        alert_id=str(uuid.uuid4()),
        version=1,
        items=[summary_item(draft.summary(), items), *items],
        signing_key=originator.signing_key,
        own_key=originator.encryption_key.public_key,
        recipient_keys={"agency-b": recipient.encryption_key.public_key},
        created_at=datetime(2025, 3, 1, 11, 59, tzinfo=UTC),
    )


@pytest.fixture(scope="module")
def opened(exchange_dir: Path) -> OpenedAlert:
    originator = load_profile(exchange_dir / "agencies" / "agency-a")
    recipient = load_profile(exchange_dir / "agencies" / "agency-b")
    sealed = _sealed_draft(exchange_dir)
    verify_key = originator.signing_key.public_key
    version = open_version(
        _view_for(sealed.request, "agency-b"),
        recipient="agency-b",
        decryption_key=recipient.encryption_key,
        originator_keys={verify_key.key_id: verify_key},
        now=datetime(2025, 3, 1, 12, 5, tzinfo=UTC),
    )
    return opened_alert(version, Watchlist.shipped())


def test_show_json_has_the_documented_shape(opened: OpenedAlert) -> None:
    printed = json.loads(json.dumps(opened.to_json()))
    assert {"alert_id", "originator", "version", "kind", "items"} <= set(printed)
    assert printed["originator"] == "agency-a"
    assert printed["version"] == 1
    assert printed["kind"] == "SHIPMENT"
    assert printed["title"] == "Mislabelled precursor"
    assert printed["grading"] == "B2"
    assert printed["operator"] == "op-17"
    assert [item["id"] for item in printed["items"]] == ["shipment-1", "informant", "bank-records"]
    for item in printed["items"]:
        assert {"id", "status", "policy"} <= set(item)
        assert item["status"] in STATUSES
        assert ("payload" in item) == (item["status"] == "VISIBLE")


def test_show_json_items_carry_status_policy_and_snake_case_payload(opened: OpenedAlert) -> None:
    shipment, informant, records = opened.to_json()["items"]
    assert shipment["status"] == "VISIBLE"
    assert shipment["policy"]["tlp"] == "AMBER+STRICT"
    assert shipment["policy"]["handling"] == ["H2"]
    assert shipment["payload"]["shipment"]["declared_description"] == "industrial cleaning agent"
    assert shipment["payload"]["shipment"]["chemicals"][0]["cas_rn"] == "41661-47-6"
    assert shipment["flags"], "4-piperidone declared as a cleaning agent is flagged"
    assert informant["status"] == "WITHHELD"
    assert informant["policy"]["release"] == "ON_REQUEST"
    assert records["status"] == "EMBARGOED"
    assert records["policy"]["embargo_until"] == "2099-01-01T00:00:00Z"


def test_the_summary_item_is_not_listed_among_the_items(opened: OpenedAlert) -> None:
    assert all(not item.id.startswith("_") for item in opened.items)
    assert opened.manifest_hash.hex() == opened.to_json()["manifest_hash"]


def test_the_logged_manifest_in_hand_is_the_one_in_the_sealed_bytes(exchange_dir: Path) -> None:
    """A publish proves its manifest with the bytes taken from the sealed request in hand;
    they are the bytes read back from the request as sent (what a resend proves with)."""
    from exchange.statements.codec import encode
    from exchange_client._internal.audit import logged_envelope, logged_manifest

    sealed = _sealed_draft(exchange_dir)
    in_hand = encode(sealed.request.manifest)  # as the publish takes it
    assert in_hand == logged_manifest(encode(sealed.request))
    assert in_hand == logged_envelope(sealed.request.manifest)
    assert sealed.manifest.envelope.payload in in_hand
