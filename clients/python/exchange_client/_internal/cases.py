"""Joint cases for one client: open, link, note, close, list and show (``exchange case``).

The rules are :mod:`exchange.alerts.cases`; a case and its entries are alerts, published,
opened and proven in the log like any other (see there).  Finding a case's entries means
opening the alerts this agency may see: each alert version is classified once (a case, an
entry of which case, or neither) and the classification kept in ``state/cases.json``, which
holds ids only, never a title, note or member list.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from exchange.alerts.cases import (
    CASE_ITEM_ID,
    CaseEntryRecord,
    CaseLink,
    CaseState,
    case_draft,
    entry_draft,
    fold_case,
)
from exchange.alerts.draft import Draft
from exchange.errors import ConfigurationError, ExchangeError, InvalidInputError, NotFoundError
from exchange.v1 import alerts_pb2, payloads_pb2
from exchange_client._internal.audit import HistoryEntry
from exchange_client._internal.calls import call
from exchange_client._internal.context import ClientContext, Concern
from exchange_client._internal.models import JsonObject, OpenedAlert, Receipt, rfc3339
from exchange_client._internal.state import PRIVATE_DIRECTORY_MODE, write_atomically

__all__ = ["CaseView", "JointCases", "LinkedAlert"]

AlertRef = tuple[str, str, int]
"""(originator, alert id, version), as the hub lists alert versions."""

_NOT_A_CASE = "OTHER"


@dataclass(frozen=True)
class LinkedAlert:
    """A linked alert as this agency sees it: the reference, and what it can open of it."""

    link: CaseLink
    linked_by: str
    visible: bool
    kind: str | None = None
    title: str | None = None
    detail: str = ""
    history: tuple[HistoryEntry, ...] = ()

    def to_json(self) -> JsonObject:
        return {
            "originator": self.link.originator,
            "alert_id": self.link.alert_id,
            "version": self.link.version,
            "manifest_hash": self.link.manifest_hash.hex(),
            "linked_by": self.linked_by,
            "visible": self.visible,
            "kind": self.kind,
            "title": self.title,
            "detail": self.detail,
            "history": [entry.to_json() for entry in self.history],
        }


@dataclass(frozen=True)
class CaseView:
    """A case as ``exchange case show`` prints it."""

    case_id: str
    originator: str
    title: str
    members: tuple[str, ...]
    opened_at: datetime | None
    state: CaseState
    linked: tuple[LinkedAlert, ...] = ()

    @property
    def status(self) -> str:
        return self.state.status

    def timeline(self) -> list[JsonObject]:
        """Every dated event of the case, oldest first: its opening, entries and the linked
        alerts' log entries this agency may see."""
        events: list[tuple[str, JsonObject]] = [
            (
                rfc3339(self.opened_at) or "",
                {
                    "time": rfc3339(self.opened_at),
                    "event": "opened",
                    "agency": self.originator,
                    "detail": self.title,
                },
            )
        ]
        for entry in self.state.entries:
            if entry.links:
                detail = "linked " + ", ".join(
                    f"{link.originator}/{link.alert_id} v{link.version}" for link in entry.links
                )
                events.append(_event(entry, "linked", detail))
            if entry.note:
                events.append(_event(entry, "note", entry.note))
            if entry.outcome:
                events.append(_event(entry, "closed", entry.outcome))
        for linked in self.linked:
            for history in linked.history:
                time = rfc3339(history.logged_at) or ""
                events.append(
                    (
                        time,
                        {
                            "time": time,
                            "event": history.kind,
                            "agency": history.agency,
                            "detail": f"{linked.link.originator}/{linked.link.alert_id}: "
                            f"{history.detail or history.entry_type}",
                            "log_index": history.index,
                        },
                    )
                )
        return [event for _, event in sorted(events, key=lambda pair: pair[0])]

    def to_json(self) -> JsonObject:
        state = self.state
        return {
            "case_id": self.case_id,
            "originator": self.originator,
            "title": self.title,
            "members": list(self.members),
            "status": state.status,
            "outcome": state.outcome or None,
            "closed_by": state.closed_by or None,
            "opened_at": rfc3339(self.opened_at),
            "entries": [
                {
                    "author": e.author,
                    "alert_id": e.alert_id,
                    "published_at": rfc3339(e.published_at),
                    "links": [
                        f"{link.originator}/{link.alert_id}/{link.version}" for link in e.links
                    ],
                    "note": e.note,
                    "outcome": e.outcome or None,
                }
                for e in state.entries
            ],
            "linked_alerts": [linked.to_json() for linked in self.linked],
            "timeline": self.timeline(),
        }


def _event(entry: CaseEntryRecord, kind: str, detail: str) -> tuple[str, JsonObject]:
    time = rfc3339(entry.published_at) or ""
    return time, {"time": time, "event": kind, "agency": entry.author, "detail": detail}


class _CaseIndex:
    """``state/cases.json``: which alert version is a case, an entry of which case, or neither."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "cases.json"
        self._alerts: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._alerts is None:
            try:
                document = json.loads(self.path.read_text(encoding="utf-8"))
                self._alerts = {str(k): str(v) for k, v in document["alerts"].items()}
            except FileNotFoundError:
                self._alerts = {}
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                raise ConfigurationError(
                    f"{self.path} is damaged ({e}); delete it: the cases are found again"
                ) from e
        return self._alerts

    def get(self, ref: AlertRef) -> str | None:
        return self._load().get("/".join(map(str, ref)))

    def put(self, ref: AlertRef, value: str) -> None:
        self._load()["/".join(map(str, ref))] = value

    def save(self) -> None:
        self.path.parent.mkdir(mode=PRIVATE_DIRECTORY_MODE, parents=True, exist_ok=True)
        document = {"alerts": self._load()}
        write_atomically(self.path, json.dumps(document, indent=1).encode() + b"\n", durable=False)


class JointCases(Concern):
    """The ``exchange case`` operations of one agency, over its client's alert calls:
    ``open_alert(alert_id, originator, version)`` opens as ``Client.open`` does ("" and 0 for
    any), and ``publish`` publishes a draft as ``Client.publish`` does."""

    def __init__(
        self,
        context: ClientContext,
        *,
        open_alert: Callable[[str, str, int], OpenedAlert],
        publish: Callable[[Draft], Receipt],
    ) -> None:
        super().__init__(context)
        self._agency = context.profile.agency_id
        self._index = _CaseIndex(context.profile.state_dir)
        self._open = open_alert
        self._publish = publish

    def _list_alerts(self) -> list[AlertRef]:
        """Every alert version this agency may see, its own included (newest first, 1000 at
        most: the hub's limit)."""
        response = self._run(
            call("alerts", "ListAlerts", alerts_pb2.ListAlertsRequest(include_own=True, limit=1000))
        )
        return [(a.originator, a.alert_id, a.version) for a in response.alerts]

    def _histories(self, alert_ids: Iterable[str]) -> dict[str, list[HistoryEntry]]:
        return {alert_id: self._auditor.history(alert_id) for alert_id in alert_ids}

    # --- writing --------------------------------------------------------------------------------

    def open_case(self, title: str, partners: Sequence[str]) -> Receipt:
        """Open a case with ``partners``: a signed, encrypted record only the members can read."""
        receipt = self._publish(case_draft(title=title, opener=self._agency, partners=partners))
        self._index.put((receipt.originator, receipt.alert_id, receipt.version), "CASE")
        self._index.save()
        return receipt

    def link(self, case_id: str, alert_ids: Sequence[str]) -> Receipt:
        """Link alerts this agency can see (its own or received) to the case, by reference."""
        if not alert_ids:
            raise InvalidInputError("name at least one alert to link", reason="NO_ALERT")
        links = []
        for alert_id in alert_ids:
            try:
                alert = self._open(alert_id, "", 0)
            except NotFoundError as e:
                raise NotFoundError(
                    f"no alert {alert_id} that this agency may see: a member links only alerts "
                    "it published or received",
                    reason=e.reason,
                ) from e
            links.append(
                CaseLink(alert.originator, alert.alert_id, alert.version, alert.manifest_hash)
            )
        return self._write(case_id, links=links)

    def note(self, case_id: str, text: str) -> Receipt:
        """Add a note to the case, for every member."""
        if not text.strip():
            raise InvalidInputError("the note is empty", reason="EMPTY_NOTE")
        return self._write(case_id, note=text)

    def close(self, case_id: str, outcome: str, note: str = "") -> Receipt:
        """Close the case with an outcome (and a note), for every member."""
        return self._write(case_id, note=note, outcome=outcome)

    def _write(
        self,
        case_id: str,
        *,
        links: Sequence[CaseLink] = (),
        note: str = "",
        outcome: str | None = None,
    ) -> Receipt:
        case = self._case_alert(case_id)
        members = _members(case)
        state = fold_case(members, self._entries(case))
        if state.status == "CLOSED":
            raise InvalidInputError(
                f"case {case_id} was closed by {state.closed_by} ({state.outcome})",
                reason="CASE_CLOSED",
            )
        draft = entry_draft(
            case_originator=case.originator,
            case_id=case.alert_id,
            case_manifest_hash=case.manifest_hash,
            case_title=case.title or "",
            members=members,
            author=self._agency,
            links=links,
            note=note,
            outcome=outcome,
        )
        receipt = self._publish(draft)
        self._index.put(
            (receipt.originator, receipt.alert_id, receipt.version),
            f"CASE_ENTRY {case.originator}/{case.alert_id}",
        )
        self._index.save()
        return receipt

    # --- reading ----------------------------------------------------------------------------

    def _case_alert(self, case_id: str) -> OpenedAlert:
        try:
            alert = self._open(case_id, "", 1)
        except NotFoundError as e:
            raise NotFoundError(
                f"no case {case_id} that {self._agency} is a member of", reason=e.reason
            ) from e
        if _record(alert) is None:
            raise InvalidInputError(f"alert {case_id} is not a joint case", reason="NOT_A_CASE")
        return alert

    def _classify(self) -> dict[AlertRef, str]:
        """Every alert version this agency may see, classified (opened once, then remembered)."""
        classes: dict[AlertRef, str] = {}
        for ref in self._list_alerts():
            if ref[2] != 1:
                continue  # cases and entries are never superseded
            known = self._index.get(ref)
            if known is None:
                try:
                    alert = self._open(ref[1], ref[0], ref[2])
                except ExchangeError:
                    continue  # not readable now: classified on a later call
                known = _classification(alert)
                self._index.put(ref, known)
            classes[ref] = known
        self._index.save()
        return classes

    def _entries(self, case: OpenedAlert) -> list[CaseEntryRecord]:
        wanted = f"CASE_ENTRY {case.originator}/{case.alert_id}"
        entries = []
        for ref, kind in self._classify().items():
            if kind != wanted:
                continue
            alert = self._open(ref[1], ref[0], ref[2])
            entry = _entry(alert)
            if (
                entry is not None
                and (entry.case_originator, entry.case_id)
                == (
                    case.originator,
                    case.alert_id,
                )
                and bytes(entry.case_manifest_hash) == case.manifest_hash
            ):
                entries.append(
                    CaseEntryRecord(
                        author=alert.originator,
                        alert_id=alert.alert_id,
                        published_at=alert.published_at,
                        links=tuple(CaseLink.from_proto(link) for link in entry.links),
                        note=entry.note,
                        outcome=payloads_pb2.CaseEntry.Outcome.Name(entry.outcome)
                        if entry.outcome
                        else "",
                    )
                )
        return entries

    def list_cases(self) -> list[CaseView]:
        """Every case this agency is a member of, with its status."""
        views = []
        for ref, kind in sorted(self._classify().items()):
            if kind == "CASE":
                views.append(self._view(self._open(ref[1], ref[0], ref[2]), with_links=False))
        return sorted(views, key=lambda v: (v.opened_at is None, v.opened_at or datetime.max))

    def show(self, case_id: str) -> CaseView:
        """One case: its members, entries, and each linked alert as far as this agency can see
        it, with the log entries about it that this agency may read."""
        return self._view(self._case_alert(case_id), with_links=True)

    def _view(self, case: OpenedAlert, *, with_links: bool) -> CaseView:
        members = _members(case)
        state = fold_case(members, self._entries(case))
        linked: list[LinkedAlert] = []
        if with_links:
            visible: dict[str, LinkedAlert] = {}
            for link, author in state.links:
                visible[link.alert_id] = self._linked(link, author)
            histories = self._histories(
                [alert_id for alert_id, seen in visible.items() if seen.visible]
            )
            for alert_id, seen in visible.items():
                history = tuple(histories.get(alert_id, ()))
                linked.append(
                    LinkedAlert(
                        seen.link,
                        seen.linked_by,
                        seen.visible,
                        seen.kind,
                        seen.title,
                        seen.detail,
                        tuple(h for h in history if h.version in (0, seen.link.version)),
                    )
                )
        return CaseView(
            case_id=case.alert_id,
            originator=case.originator,
            title=case.title or "",
            members=tuple(members),
            opened_at=case.published_at,
            state=state,
            linked=tuple(linked),
        )

    def _linked(self, link: CaseLink, author: str) -> LinkedAlert:
        """What this agency can open of a linked alert itself: nothing is released by a link."""
        try:
            alert = self._open(link.alert_id, link.originator, link.version)
        except NotFoundError:
            return LinkedAlert(link, author, False, detail="not visible to this agency")
        if alert.manifest_hash != link.manifest_hash:
            return LinkedAlert(
                link, author, False, detail="the link names another manifest than the hub's"
            )
        withheld = [item.id for item in alert.items if item.status != "VISIBLE"]
        detail = f"withheld from us: {', '.join(withheld)}" if withheld else ""
        return LinkedAlert(link, author, True, alert.kind, alert.title, detail)


def _case_payload(alert: OpenedAlert, kind: str, body: str) -> payloads_pb2.ItemPayload | None:
    """The visible case item of an alert of ``kind`` holding a ``body`` payload, if any."""
    if alert.kind != kind:
        return None
    for item in alert.items:
        visible = item.id == CASE_ITEM_ID and item.status == "VISIBLE"
        if visible and item.payload is not None and item.payload.WhichOneof("body") == body:
            return item.payload
    return None


def _record(alert: OpenedAlert) -> payloads_pb2.CaseRecord | None:
    payload = _case_payload(alert, "CASE", "case_record")
    return None if payload is None else payload.case_record


def _entry(alert: OpenedAlert) -> payloads_pb2.CaseEntry | None:
    payload = _case_payload(alert, "CASE_ENTRY", "case_entry")
    return None if payload is None else payload.case_entry


def _members(case: OpenedAlert) -> list[str]:
    record = _record(case)
    return sorted(record.members) if record is not None else [case.originator]


def _classification(alert: OpenedAlert) -> str:
    if _record(alert) is not None:
        return "CASE"
    entry = _entry(alert)
    if entry is not None:
        return f"CASE_ENTRY {entry.case_originator}/{entry.case_id}"
    return _NOT_A_CASE
