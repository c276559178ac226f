"""MISP export and import: events PyMISP loads, typed attributes, tags, distribution, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pymisp import MISPEvent

from exchange.alerts.draft import Draft
from exchange.errors import MalformedError, TooLargeError
from exchange_client.interop import MAX_EVENT_ATTRIBUTES, export_misp, import_misp
from tests.unit.interop.conftest import NOW, opened_alert, with_status
from tests.unit.interop.test_stix import EXAMPLE_FILES, EXAMPLES, drafts


def event_of(draft: Draft) -> dict[str, Any]:
    return export_misp(opened_alert(draft), now=NOW)


def loaded(event: dict[str, Any]) -> MISPEvent:
    misp_event = MISPEvent()
    misp_event.load(json.dumps(event))
    return misp_event


def attributes(event: MISPEvent) -> dict[str, tuple[str, str]]:
    """``item id/path`` -> (MISP type, value) for every attribute of every object."""
    found = {}
    for obj in event.objects:
        item_id = next(a.value for a in obj.attributes if a.object_relation == "id")
        for attribute in obj.attributes:
            found[f"{item_id}/{attribute.object_relation}"] = (attribute.type, attribute.value)
    return found


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_example_loads_in_pymisp_and_imports_back(path: Path) -> None:
    draft = Draft.from_file(path)
    event = event_of(draft)
    misp_event = loaded(event)
    assert misp_event.info == draft.title
    assert len(misp_event.objects) == len(draft.items)
    result = import_misp(json.dumps(event).encode())
    assert result.warnings == ()
    assert Draft.from_dict(result.draft).to_dict() == draft.to_dict()


def test_attributes_are_typed_as_misp_expects() -> None:
    wire = attributes(loaded(event_of(Draft.from_file(EXAMPLES / "bank-wire-iban.yaml"))))
    assert wire["w1/transaction.debtor_account.iban"] == ("iban", "DE55370400440532014000")
    assert wire["w1/transaction.debtor_agent"] == ("bic", "COBADEFFXXX")
    assert wire["w1/transaction.creditor_account.domestic_number"] == ("bank-account-nr", "4563 6330 0129")
    assert wire["w1/policy.tlp"] == ("text", "AMBER")
    shipment = attributes(loaded(event_of(Draft.from_file(EXAMPLES / "mislabelled-piperidone-shipment.yaml"))))
    assert shipment["s1/shipment.exporter.contacts[0].email"] == ("email", "sales@chenghong-chem.example.cn")
    assert shipment["s1/shipment.exporter.contacts[0].phone"] == ("phone-number", "+8613912345678")
    assert shipment["s1/shipment.chemicals[0].cas_rn"] == ("text", "41661-47-6")
    usdt = attributes(loaded(event_of(Draft.from_file(EXAMPLES / "usdt-tron-fund-flow.json"))))
    assert usdt["a1/account.holder.names[0].value"] == ("full-name", "Jorge Alberto Ramírez Soto")
    assert usdt["a1/account.holder.date_of_birth"] == ("date-of-birth", "1984-07-12")


def test_bitcoin_addresses_are_btc_attributes() -> None:
    draft = Draft.from_dict({"kind": "FUND_FLOW", "title": "BTC wallet", "items": [{
        "id": "a", "policy": {"audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "GREEN"},
        "account": {"wallet": {"chain": "BITCOIN", "address": "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"}}}]})
    found = attributes(loaded(event_of(draft)))
    assert found["a/account.wallet.address"][0] == "btc"


def test_tags_and_distribution_follow_the_policy() -> None:
    event = event_of(Draft.from_file(EXAMPLES / "mislabelled-piperidone-shipment.yaml"))["Event"]
    tags = [tag["name"] for tag in event["Tag"]]
    assert tags == ["tlp:red", 'admiralty-scale:source-reliability="b"',
                    'admiralty-scale:information-credibility="2"', 'exchange:kind="SHIPMENT"',
                    'exchange:operator="op-cn-0417"']
    by_item = {obj["comment"]: obj for obj in event["Object"]}
    # s1: one agency and H2 -> this organisation only; p1: two agencies, AMBER, H1 H2 -> also 0
    assert by_item["item s1"]["distribution"] == "0"
    first = by_item["item s1"]["Attribute"][0]
    assert [t["name"] for t in first["Tag"]] == ["tlp:amber", 'exchange:handling="H2"']
    two_agencies = Draft.from_dict({"kind": "GENERAL", "title": "t", "items": [{
        "id": "n", "policy": {"audience": ["agency-b", "agency-c"], "release": "IMMEDIATE", "tlp": "GREEN"},
        "note": {"text": "x"}}]})
    assert event_of(two_agencies)["Event"]["Object"][0]["distribution"] == "1"


def test_withheld_items_are_absent() -> None:
    draft = Draft.from_file(EXAMPLES / "mislabelled-piperidone-shipment.yaml")
    event = export_misp(with_status(opened_alert(draft), "n1", "WITHHELD"), now=NOW)
    assert [obj["comment"] for obj in event["Event"]["Object"]] == ["item s1", "item p1"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(drafts())
def test_export_then_import_gives_back_the_draft(draft: Draft) -> None:
    result = import_misp(json.dumps(event_of(draft)).encode())
    assert Draft.from_dict(result.draft).to_dict() == draft.to_dict()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{", "not valid JSON"),
        (b'{"Event": []}', "expected a JSON object"),
        (b'{"Event": {"uuid": "x"}}', "not a MISP event"),
        (b'{"Event": {"info": "t", "Object": [{"name": "exchange-note", "Attribute": [{"object_relation": "../x", "value": "v"}]}]}}', "not a field path"),
        (b'{"Event": {"info": "t", "Attribute": [{"type": "text", "value": 5}]}}', "not a string"),
    ],
)
def test_malformed_events_are_refused_with_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(MalformedError, match=message):
        import_misp(data)


def test_an_event_with_too_many_attributes_is_refused() -> None:
    event = {"Event": {"info": "t", "Attribute": [{"type": "text", "value": "x"}] * (MAX_EVENT_ATTRIBUTES + 1)}}
    with pytest.raises(TooLargeError):
        import_misp(json.dumps(event).encode())


def test_a_foreign_event_maps_what_fits_and_warns_about_the_rest() -> None:
    event = {"Event": {"info": "Mule accounts", "Tag": [{"name": "tlp:amber"}], "Attribute": [
        {"type": "iban", "value": "DE55370400440532014000", "Tag": [{"name": "tlp:amber"}]},
        {"type": "ip-dst", "value": "192.0.2.1"},
    ]}}
    result = import_misp(json.dumps(event).encode())
    assert result.draft["title"] == "Mule accounts"
    assert result.draft["items"] == [{"id": "account-1", "policy": {"release": "IMMEDIATE", "tlp": "AMBER"},
                                      "account": {"iban": "DE55370400440532014000"}}]
    assert len(result.warnings) == 1 and "ip-dst" in result.warnings[0]
