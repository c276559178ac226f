"""Joint cases, built on alerts (DESIGN §6a): pure drafts and the rule that folds entries.

A case is an alert of kind ``CASE`` that its opener publishes to the other members; its one
item holds the :class:`CaseRecord` (the member list) and its summary the title.  The case id is
that alert's id.  Every link, note and closing is the author's own alert of kind
``CASE_ENTRY``, published to the other members, whose one item holds a :class:`CaseEntry`
naming the case.  Sealing, signatures, delivery, receipts and the audit log are the alerts'
own; the hub learns ids, audiences and timing, never a title, a member list as such, a note or
which alert a case links.  A link is a reference (originator, alert id, version, manifest
hash): it releases nothing, and a member sees a linked alert only if it could open it anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from exchange.alerts.draft import Draft, DraftItem
from exchange.alerts.validate import validate_draft
from exchange.errors import DraftError, InvalidInputError
from exchange.v1 import payloads_pb2, statements_pb2

__all__ = [
    "CASE_ITEM_ID",
    "CASE_OUTCOMES",
    "CaseEntryRecord",
    "CaseLink",
    "CaseState",
    "case_draft",
    "entry_draft",
    "fold_case",
]

CASE_ITEM_ID = "item-1"
"""The id of the one item of a case alert or case entry: neutral, since the hub sees item ids."""

CASE_OUTCOMES = tuple(
    name
    for name in payloads_pb2.CaseEntry.Outcome.keys()  # noqa: SIM118 (an enum wrapper)
    if name != "OUTCOME_UNSPECIFIED"
)
"""How a case can be closed: ``SEIZED``, ``ARRESTS``, ``NOTHING_FOUND``, ``FALSE_POSITIVE``,
``NO_FURTHER_ACTION``."""

Policy = statements_pb2.ReleasePolicy


def _policy(audience: Iterable[str]) -> statements_pb2.ReleasePolicy:
    return Policy(audience=sorted(audience), release=Policy.IMMEDIATE, tlp=Policy.TLP_AMBER)


def _checked(draft: Draft) -> Draft:
    violations = validate_draft(draft)
    if violations:
        raise DraftError("the case statement is not valid", violations=violations)
    return draft


def case_draft(*, title: str, opener: str, partners: Sequence[str], operator: str = "") -> Draft:
    """The draft of a new case: its record, addressed to every partner (the other members)."""
    others = sorted(set(partners) - {opener})
    if not others:
        raise InvalidInputError(
            "a joint case needs at least one partner agency: --partner AGENCY",
            reason="NO_PARTNER",
        )
    record = payloads_pb2.CaseRecord(members=sorted({opener, *others}))
    return _checked(
        Draft(
            kind=payloads_pb2.Summary.CASE,
            grading=payloads_pb2.Grading(),
            title=title,
            operator=operator,
            items=(
                DraftItem(
                    id=CASE_ITEM_ID,
                    policy=_policy(others),
                    payload=payloads_pb2.ItemPayload(case_record=record),
                ),
            ),
        )
    )


@dataclass(frozen=True)
class CaseLink:
    """A linked alert version, by what identifies it."""

    originator: str
    alert_id: str
    version: int
    manifest_hash: bytes

    def to_proto(self) -> payloads_pb2.AlertLink:
        return payloads_pb2.AlertLink(
            originator=self.originator,
            alert_id=self.alert_id,
            version=self.version,
            manifest_hash=self.manifest_hash,
        )

    @classmethod
    def from_proto(cls, link: payloads_pb2.AlertLink) -> CaseLink:
        return cls(link.originator, link.alert_id, link.version, bytes(link.manifest_hash))


def entry_draft(
    *,
    case_originator: str,
    case_id: str,
    case_manifest_hash: bytes,
    case_title: str,
    members: Sequence[str],
    author: str,
    links: Sequence[CaseLink] = (),
    note: str = "",
    outcome: str | None = None,
    operator: str = "",
) -> Draft:
    """The draft of one member's entry in a case, addressed to the other members."""
    entry = payloads_pb2.CaseEntry(
        case_originator=case_originator,
        case_id=case_id,
        case_manifest_hash=case_manifest_hash,
        links=[link.to_proto() for link in links],
        note=note,
    )
    what = "note"
    if outcome is not None:
        try:
            entry.outcome = payloads_pb2.CaseEntry.Outcome.Value(outcome.upper())
        except ValueError as e:
            raise InvalidInputError(
                f"unknown outcome {outcome!r}: one of {', '.join(CASE_OUTCOMES)}",
                reason="INVALID_OUTCOME",
            ) from e
        what = f"closed: {outcome.upper().replace('_', ' ').lower()}"
    elif links:
        what = f"{len(links)} alert{'s' if len(links) != 1 else ''} linked"
    return _checked(
        Draft(
            kind=payloads_pb2.Summary.CASE_ENTRY,
            grading=payloads_pb2.Grading(),
            title=f"{case_title[:250]} — {what}",
            operator=operator,
            items=(
                DraftItem(
                    id=CASE_ITEM_ID,
                    policy=_policy(set(members) - {author}),
                    payload=payloads_pb2.ItemPayload(case_entry=entry),
                ),
            ),
        )
    )


@dataclass(frozen=True)
class CaseEntryRecord:
    """One verified entry of a case: who wrote it, when, where it is in the log, what it says."""

    author: str
    alert_id: str
    published_at: datetime | None
    links: tuple[CaseLink, ...] = ()
    note: str = ""
    outcome: str = ""


@dataclass(frozen=True)
class CaseState:
    """A case as its entries leave it: open or closed, and every alert linked (once each)."""

    status: str
    """``OPEN`` or ``CLOSED``."""
    outcome: str = ""
    closed_by: str = ""
    links: tuple[tuple[CaseLink, str], ...] = field(default=())
    """Each linked alert version with the member who first linked it."""
    entries: tuple[CaseEntryRecord, ...] = ()


def fold_case(members: Iterable[str], entries: Iterable[CaseEntryRecord]) -> CaseState:
    """Apply the entries by members, oldest first: links accumulate, the first closing closes.

    Entries by an agency that is not a member are ignored (a member list is the opener's, signed
    in the case record), as are entries after the case was closed.
    """
    allowed = set(members)
    kept: list[CaseEntryRecord] = []
    links: dict[tuple[str, str, int], tuple[CaseLink, str]] = {}
    outcome = closed_by = ""
    ordered = sorted(
        (e for e in entries if e.author in allowed),
        key=lambda e: (e.published_at is None, e.published_at or datetime.min, e.alert_id),
    )
    for entry in ordered:
        if closed_by:
            break
        kept.append(entry)
        for link in entry.links:
            links.setdefault((link.originator, link.alert_id, link.version), (link, entry.author))
        if entry.outcome:
            outcome, closed_by = entry.outcome, entry.author
    return CaseState(
        status="CLOSED" if closed_by else "OPEN",
        outcome=outcome,
        closed_by=closed_by,
        links=tuple(links.values()),
        entries=tuple(kept),
    )
