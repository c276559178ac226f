"""Joint cases as alerts: the drafts ``exchange case`` signs, what drafts from files may not do,
and how a case's entries fold into its state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exchange.alerts.cases import (
    CASE_OUTCOMES,
    CaseEntryRecord,
    CaseLink,
    case_draft,
    entry_draft,
    fold_case,
)
from exchange.alerts.draft import Draft
from exchange.errors import DraftError, InvalidInputError
from exchange.v1 import payloads_pb2

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CASE_ID = "0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10"
LINK = CaseLink("agency-b", "1b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10", 1, bytes(32))


def test_a_case_is_addressed_to_the_other_members_and_lists_every_member() -> None:
    draft = case_draft(title="Manzanillo ring", opener="agency-a", partners=["agency-b", "agency-c"])
    (item,) = draft.items
    assert draft.kind == payloads_pb2.Summary.CASE and draft.title == "Manzanillo ring"
    assert list(item.policy.audience) == ["agency-b", "agency-c"]
    assert list(item.payload.case_record.members) == ["agency-a", "agency-b", "agency-c"]
    with pytest.raises(InvalidInputError, match="at least one partner"):
        case_draft(title="alone", opener="agency-a", partners=["agency-a"])


def test_an_entry_names_its_case_and_goes_to_the_other_members() -> None:
    draft = entry_draft(
        case_originator="agency-a", case_id=CASE_ID, case_manifest_hash=bytes(32),
        case_title="Manzanillo ring", members=["agency-a", "agency-b"], author="agency-b",
        links=[LINK], outcome="seized",
    )
    (item,) = draft.items
    entry = item.payload.case_entry
    assert (entry.case_id, entry.outcome) == (CASE_ID, payloads_pb2.CaseEntry.SEIZED)
    assert list(item.policy.audience) == ["agency-a"]
    assert draft.title == "Manzanillo ring — closed: seized"
    with pytest.raises(InvalidInputError, match="unknown outcome"):
        entry_draft(case_originator="agency-a", case_id=CASE_ID, case_manifest_hash=bytes(32),
                    case_title="t", members=["agency-a", "agency-b"], author="agency-b",
                    outcome="MAYBE")
    with pytest.raises(DraftError):  # a link with a short manifest hash does not validate
        entry_draft(case_originator="agency-a", case_id=CASE_ID, case_manifest_hash=bytes(32),
                    case_title="t", members=["agency-a", "agency-b"], author="agency-b",
                    links=[CaseLink("agency-b", CASE_ID, 1, b"short")])
    assert "OUTCOME_UNSPECIFIED" not in CASE_OUTCOMES and "SEIZED" in CASE_OUTCOMES


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"kind": "CASE"}, id="the case kind"),
        pytest.param({"kind": "CASE_ENTRY"}, id="the entry kind"),
        pytest.param({"item": {"case_record": {"members": ["agency-a", "agency-b"]}}},
                     id="a case record item"),
        pytest.param({"item": {"case_entry": {"note": "x"}}}, id="a case entry item"),
    ],
)
def test_drafts_from_files_cannot_write_cases(document: dict[str, object]) -> None:
    item = {"id": "n", "policy": {"audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "AMBER"},
            **document.get("item", {"note": {"text": "x", "language": "en"}})}  # type: ignore[dict-item]
    data = {"kind": document.get("kind", "GENERAL"), "title": "t", "items": [item]}
    with pytest.raises(DraftError) as refused:
        Draft.from_dict(data)
    assert any("exchange case" in v.description for v in refused.value.violations)


def entry(author: str, hours: float, **fields: object) -> CaseEntryRecord:
    return CaseEntryRecord(author=author, alert_id=f"{author}-{hours}",
                           published_at=T0 + timedelta(hours=hours), **fields)  # type: ignore[arg-type]


def test_entries_fold_in_time_order_the_first_closing_closes_and_outsiders_are_ignored() -> None:
    members = ["agency-a", "agency-b"]
    state = fold_case(members, [
        entry("agency-b", 3, outcome="SEIZED"),
        entry("agency-a", 1, links=(LINK,)),
        entry("agency-c", 2, outcome="FALSE_POSITIVE"),   # no member
        entry("agency-b", 2, links=(LINK,), note="same alert again"),
        entry("agency-a", 4, note="after the closing"),
    ])
    assert (state.status, state.outcome, state.closed_by) == ("CLOSED", "SEIZED", "agency-b")
    assert state.links == ((LINK, "agency-a"),)
    assert [e.alert_id for e in state.entries] == ["agency-a-1", "agency-b-2", "agency-b-3"]
    assert fold_case(members, []).status == "OPEN"
