"""The shipped watchlist, agency updates and the flags raised on shipments."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from exchange.alerts import FlagReason, Watchlist, WatchlistUpdate
from exchange.alerts.identifiers import validate_cas_rn
from exchange.v1 import payloads_pb2

P = payloads_pb2

# precursors.md, the project's reference facts.
REFERENCE_PRECURSORS = {
    "39742-60-4": "NPP",
    "21409-26-7": "ANPP",
    "23056-29-3": "4-AP",
    "125541-22-2": "1-boc-4-AP",
    "1609-66-1": "norfentanyl",
    "41661-47-6": "4-piperidone",
    "79099-07-3": "1-boc-4-piperidone",
}


@pytest.fixture(scope="module")
def shipped() -> Watchlist:
    return Watchlist.shipped()


def test_shipped_file_is_versioned_and_sourced() -> None:
    raw = json.loads(
        resources.files("exchange.alerts").joinpath("data", "watchlist.json").read_text("utf-8")
    )
    assert raw["version"] and raw["source"]
    for entry in raw["entries"]:
        assert set(entry) == {
            "name",
            "cas_rn",
            "synonyms",
            "cover_descriptions",
            "control",
            "control_note",
            "source",
        }
        assert entry["control"] in ("TABLE_I", "TABLE_II")
        assert entry["source"] and entry["control_note"]


def test_every_shipped_cas_passes_the_check_digit(shipped: Watchlist) -> None:
    for entry in shipped.entries:
        validate_cas_rn(entry.cas_rn)


def test_shipped_list_has_every_reference_precursor(shipped: Watchlist) -> None:
    for cas_rn, name in REFERENCE_PRECURSORS.items():
        entry = shipped.find(cas_rn)
        assert entry is not None and entry.name == name
        assert entry.control == "TABLE_I"


def test_shipped_list_has_tables_i_and_ii(shipped: Watchlist) -> None:
    controls = [entry.control for entry in shipped.entries]
    assert controls.count("TABLE_I") >= 25
    assert controls.count("TABLE_II") == 8
    assert shipped.find("1609-66-5") is None  # the wrong CAS of a public dataset


def relabelled_shipment() -> payloads_pb2.Shipment:
    return P.Shipment(
        declared_description="Industrial cleaning agent",
        chemicals=[P.Chemical(name="cleaning agent", cas_rn="41661-47-6")],
    )


def test_relabelled_shipment_is_flagged(shipped: Watchlist) -> None:
    flags = shipped.match_shipment(relabelled_shipment(), path="items[0].shipment")
    relabelled = [f for f in flags if f.reason is FlagReason.RELABELLED]
    assert len(relabelled) == 1
    flag = relabelled[0]
    assert flag.substance == "4-piperidone"
    assert flag.cas_rn == "41661-47-6"
    assert flag.control == "TABLE_I"
    assert flag.control_status.startswith("Table I since 2024")
    assert flag.field == "items[0].shipment.declared_description"
    assert flag.matched_text == "Industrial cleaning agent"
    assert flag.list_source == f"shipped watchlist {shipped.version}"
    assert flag.message.startswith(
        "declared as 'Industrial cleaning agent'; CAS 41661-47-6 is 4-piperidone, Table I since 2024"
    )
    cas_flags = [f for f in flags if f.reason is FlagReason.LISTED_CAS]
    assert [f.field for f in cas_flags] == ["items[0].shipment.chemicals[0].cas_rn"]


def test_honest_declaration_is_not_relabelled(shipped: Watchlist) -> None:
    shipment = P.Shipment(
        declared_description="Piperidin-4-one, 25 kg drums",
        chemicals=[P.Chemical(cas_rn="41661-47-6")],
    )
    reasons = {f.reason for f in shipped.match_shipment(shipment)}
    assert FlagReason.RELABELLED not in reasons
    assert FlagReason.LISTED_NAME in reasons


@pytest.mark.parametrize(
    "text",
    [
        "4-piperidone",
        "4-Piperidone",
        "4 PIPERIDONE",
        "4piperidone",
        "4 - piperidone",
        "4‐piperidone",  # U+2010 HYPHEN
        "ＰＩＰＥＲＩＤＩＮ-4-ＯＮＥ",  # full-width letters
        "drums of Piperidin 4 one, technical grade",
    ],
)
def test_name_match_ignores_case_spaces_and_hyphens(shipped: Watchlist, text: str) -> None:
    flags = shipped.match_shipment(P.Shipment(packaging=text))
    assert [(f.reason, f.cas_rn) for f in flags] == [(FlagReason.LISTED_NAME, "41661-47-6")]


@pytest.mark.parametrize("text", ["24-piperidones", "pre4-piperidone", "piperidonex"])
def test_name_match_respects_word_boundaries(shipped: Watchlist, text: str) -> None:
    assert shipped.match_shipment(P.Shipment(packaging=text)) == []


def test_longer_listed_name_wins(shipped: Watchlist) -> None:
    flags = shipped.match_shipment(P.Shipment(packaging="1-Boc-4-piperidone"))
    assert [f.substance for f in flags] == ["1-boc-4-piperidone"]


def test_cas_in_free_text_is_flagged(shipped: Watchlist) -> None:
    flags = shipped.match_shipment(
        P.Shipment(suspected_description="lab report: CAS ４１６６１-47-6")
    )
    assert [(f.reason, f.cas_rn) for f in flags] == [(FlagReason.LISTED_CAS, "41661-47-6")]


def test_cover_description_is_flagged(shipped: Watchlist) -> None:
    flags = shipped.match_shipment(P.Shipment(declared_description="Industrial Cleaning-Agent"))
    assert [(f.reason, f.substance) for f in flags] == [
        (FlagReason.COVER_DESCRIPTION, "4-piperidone")
    ]


def test_unlisted_shipment_has_no_flags(shipped: Watchlist) -> None:
    shipment = P.Shipment(
        declared_description="Ceramic tiles", chemicals=[P.Chemical(cas_rn="7732-18-5")]
    )
    assert shipped.match_shipment(shipment) == []


def entry(cas_rn: str, name: str, **fields: object) -> payloads_pb2.WatchlistEntry:
    return P.WatchlistEntry(name=name, cas_rn=cas_rn, control=P.Chemical.NATIONAL, **fields)  # type: ignore[arg-type]


BENZYL = "3612-20-2"


def test_agency_adds_an_entry_and_flags_name_it(shipped: Watchlist) -> None:
    merged = shipped.merge(
        [WatchlistUpdate("agency-b", 7, (entry(BENZYL, "1-benzyl-4-piperidone"),), "alert 9d68")]
    )
    added = merged.find(BENZYL)
    assert added is not None and added.listed_by == "agency-b"
    flags = merged.match_shipment(P.Shipment(chemicals=[P.Chemical(cas_rn=BENZYL)]))
    assert [f.list_source for f in flags] == ["update 7 from agency-b (alert 9d68)"]
    assert merged.ignored_changes == ()


def test_agency_changes_and_withdraws_its_own_entry(shipped: Watchlist) -> None:
    first = WatchlistUpdate("agency-b", 1, (entry(BENZYL, "benzylpiperidone"),))
    second = WatchlistUpdate("agency-b", 2, (entry(BENZYL, "1-benzyl-4-piperidone"),))
    merged = shipped.merge([second, first])  # applied in sequence order
    changed = merged.find(BENZYL)
    assert changed is not None and changed.name == "1-benzyl-4-piperidone"
    withdrawn = merged.merge(
        [WatchlistUpdate("agency-b", 3, (entry(BENZYL, "x", withdrawn=True),))]
    )
    assert withdrawn.find(BENZYL) is None
    assert withdrawn.ignored_changes == ()


def test_agency_may_not_change_another_agencys_entry(shipped: Watchlist) -> None:
    merged = shipped.merge(
        [
            WatchlistUpdate("agency-b", 1, (entry(BENZYL, "1-benzyl-4-piperidone"),)),
            WatchlistUpdate("agency-c", 2, (entry(BENZYL, "harmless solvent"),)),
            WatchlistUpdate("agency-c", 3, (entry(BENZYL, "x", withdrawn=True),)),
        ]
    )
    kept = merged.find(BENZYL)
    assert (
        kept is not None and kept.name == "1-benzyl-4-piperidone" and kept.listed_by == "agency-b"
    )
    assert [(c.agency_id, c.sequence, c.cas_rn) for c in merged.ignored_changes] == [
        ("agency-c", 2, BENZYL),
        ("agency-c", 3, BENZYL),
    ]
    assert "only agency-b may change it" in merged.ignored_changes[0].message
    assert "only agency-b may withdraw" in merged.ignored_changes[1].message


def test_agency_may_not_change_or_remove_the_shipped_entries(shipped: Watchlist) -> None:
    change = entry("41661-47-6", "4-piperidone", control_note="declassified")
    removal = entry("41661-47-6", "4-piperidone", withdrawn=True)
    merged = shipped.merge([WatchlistUpdate("agency-c", 1, (change, removal))])
    assert merged.find("41661-47-6") == shipped.find("41661-47-6")
    assert len(merged.ignored_changes) == 2
    assert "shipped watchlist" in merged.ignored_changes[0].reason


def test_republishing_a_shipped_entry_unchanged_is_not_a_conflict(shipped: Watchlist) -> None:
    listed = shipped.find("41661-47-6")
    assert listed is not None
    merged = shipped.merge([WatchlistUpdate("agency-b", 1, (listed.to_entry(),))])
    assert merged.ignored_changes == ()


def test_invalid_entry_is_ignored_and_reported(shipped: Watchlist) -> None:
    merged = shipped.merge(
        [WatchlistUpdate("agency-b", 1, (entry("3612-20-3", "bad check digit"),))]
    )
    assert merged.find("3612-20-3") is None
    assert "check digit is 3, expected 2" in merged.ignored_changes[0].reason


def test_match_payload_covers_shipments_and_chemicals_not_the_list_itself(
    shipped: Watchlist,
) -> None:
    shipment = P.ItemPayload(shipment=relabelled_shipment())
    assert {f.field.split(".")[1] for f in shipped.match_payload(shipment, "items[3]")} == {
        "shipment"
    }
    chemical = P.ItemPayload(chemical=P.Chemical(name="NPP"))
    assert [f.field for f in shipped.match_payload(chemical, "items[1]")] == [
        "items[1].chemical.name"
    ]
    listed = P.ItemPayload(watchlist_entry=entry("41661-47-6", "4-piperidone"))
    assert shipped.match_payload(listed, "items[0]") == []
    assert shipped.match_payload(P.ItemPayload(note=P.Note(text="4-piperidone")), "items[0]") == []


def test_flags_serialise_with_snake_case_keys(shipped: Watchlist) -> None:
    flag = shipped.match_shipment(relabelled_shipment())[0]
    assert set(flag.to_dict()) == {
        "reason",
        "substance",
        "cas_rn",
        "control",
        "control_status",
        "field",
        "matched_text",
        "list_source",
        "message",
    }
