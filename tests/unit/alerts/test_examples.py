"""Every example draft parses, validates clean and behaves as its story says."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.alerts import Draft, FlagReason, Watchlist, WatchlistUpdate, validate_draft

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NAMES = [
    "mislabelled-piperidone-shipment.yaml",
    "usdt-tron-fund-flow.json",
    "bank-wire-iban.yaml",
    "watchlist-update.yaml",
]


@pytest.mark.parametrize("name", NAMES)
def test_example_parses_and_validates_clean(name: str) -> None:
    draft = Draft.from_file(EXAMPLES / name)
    assert validate_draft(draft) == []
    assert Draft.from_dict(draft.to_dict()) == draft
    for item in draft.items:
        assert set(item.policy.audience) <= {"agency-b", "agency-c"}


# Identifiers the examples write as documents print them, each signed in its canonical form.
NOTICES = {
    "mislabelled-piperidone-shipment.yaml": [
        'items[0].shipment.hs_code: normalised "3402.90" to "340290"'
    ],
    "usdt-tron-fund-flow.json": [],
    "bank-wire-iban.yaml": [
        (
            'items[0].transaction.debtor_account.iban: normalised "DE55 3704 0044 0532 0140 00" '
            'to "DE55370400440532014000"'
        )
    ],
    "watchlist-update.yaml": [],
}


@pytest.mark.parametrize("name", NAMES)
def test_example_notices(name: str) -> None:
    draft = Draft.from_file(EXAMPLES / name)
    assert [str(notice) for notice in draft.normalisations] == NOTICES[name]


def test_every_example_is_tested() -> None:
    assert sorted(
        p.name for p in EXAMPLES.iterdir() if p.suffix in (".json", ".yaml", ".yml")
    ) == sorted(NAMES)


def test_mislabelled_shipment_raises_the_4_piperidone_flag() -> None:
    draft = Draft.from_file(EXAMPLES / "mislabelled-piperidone-shipment.yaml")
    flags = Watchlist.shipped().match_draft(draft)
    relabelled = [f for f in flags if f.reason is FlagReason.RELABELLED]
    assert [(f.substance, f.cas_rn, f.field) for f in relabelled] == [
        ("4-piperidone", "41661-47-6", "items[0].shipment.declared_description")
    ]
    assert (
        "declared as 'Industrial cleaning agent'; CAS 41661-47-6 is 4-piperidone"
        in relabelled[0].message
    )
    kinds = [item.payload_kind for item in draft.items]
    assert kinds == ["shipment", "party", "note"]
    assert draft.items[1].payload.party.role == draft.items[1].payload.party.FORWARDER


def test_fund_flow_is_usdt_on_tron() -> None:
    draft = Draft.from_file(EXAMPLES / "usdt-tron-fund-flow.json")
    transaction = draft.items[0].payload.transaction
    assert transaction.amount.currency == "USDT"
    assert transaction.from_address.startswith("T") and transaction.to_address.startswith("T")


def test_watchlist_update_adds_a_precursor_that_then_flags() -> None:
    draft = Draft.from_file(EXAMPLES / "watchlist-update.yaml")
    entries = tuple(item.payload.watchlist_entry for item in draft.items)
    merged = Watchlist.shipped().merge([WatchlistUpdate("agency-b", 1, entries)])
    assert merged.ignored_changes == ()
    shipment_draft = Draft.from_dict(
        {
            "kind": "SHIPMENT",
            "title": "t",
            "items": [
                {
                    "id": "s1",
                    "policy": {"release": "IMMEDIATE", "tlp": "GREEN"},
                    "shipment": {"declared_description": "N-Benzyl 4-Piperidone, 200 kg"},
                }
            ],
        }
    )
    flags = merged.match_draft(shipment_draft)
    assert [(f.cas_rn, f.list_source) for f in flags] == [("3612-20-2", "update 1 from agency-b")]
