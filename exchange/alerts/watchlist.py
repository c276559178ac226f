"""The precursor watchlist and the flags it raises on shipments.

The project ships a versioned reference list (``data/watchlist.json``): the 1988 Convention
Table I and II substances, with synonyms and known cover descriptions.  Agencies publish additions
as alerts of kind ``WATCHLIST`` (``watchlist_entry`` items); each client merges the updates it has
verified with :meth:`Watchlist.merge`.  An agency's update may add entries or change or withdraw its
own earlier ones, never change or withdraw another's (the shipped list counts as another's): such
changes are ignored and reported in :attr:`Watchlist.ignored_changes`.

Matching a shipment (:meth:`Watchlist.match_shipment`) flags:

- a listed CAS RN, in a ``cas_rn`` field or written in any text of the shipment;
- a listed name or synonym in any text of the shipment, ignoring case, spaces and hyphens;
- a declared description that names none of the listed substances found elsewhere in the same
  shipment - the relabelling case ("declared as cleaning agent; CAS 41661-47-6 is 4-piperidone,
  Table I since 2024");
- a declared description that is a known cover description of a listed substance.

Every flag names the substance, its CAS RN, its control status, the field and text that matched,
and where the list entry came from (the shipped list and its version, or the agency's update).
Flags are warnings for the operator; they never make a draft invalid.
"""

from __future__ import annotations

import enum
import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from exchange.alerts._message_mapping import join_path
from exchange.alerts.identifiers import IdentifierError, validate_agency_id
from exchange.alerts.validate import validate_payload
from exchange.errors import ConfigurationError
from exchange.v1 import payloads_pb2

if TYPE_CHECKING:
    from exchange.alerts.draft import Draft

__all__ = [
    "FlagReason",
    "IgnoredChange",
    "ListedSubstance",
    "Watchlist",
    "WatchlistFlag",
    "WatchlistUpdate",
]

_CONTROL_LABELS = {
    "TABLE_I": "1988 Convention Table I",
    "TABLE_II": "1988 Convention Table II",
    "NATIONAL": "national schedule",
    "UNCONTROLLED": "not controlled",
}
_CONTROL_BY_NUMBER = {
    payloads_pb2.Chemical.TABLE_I: "TABLE_I",
    payloads_pb2.Chemical.TABLE_II: "TABLE_II",
    payloads_pb2.Chemical.NATIONAL: "NATIONAL",
    payloads_pb2.Chemical.UNCONTROLLED: "UNCONTROLLED",
}
_CONTROL_BY_NAME = {name: number for number, name in _CONTROL_BY_NUMBER.items()}

# Hyphen-like characters ignored by name matching, beside whitespace: hyphen-minus, soft hyphen,
# the Unicode hyphens and dashes, and the minus sign.
_HYPHENS = frozenset("-\u00ad\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d")
_CAS_IN_TEXT_RE = re.compile(r"(?<![0-9-])([1-9][0-9]{1,6}-[0-9]{2}-[0-9])(?![0-9-])")


class FlagReason(enum.Enum):
    """Why a shipment was flagged."""

    LISTED_CAS = "listed_cas"
    LISTED_NAME = "listed_name"
    RELABELLED = "relabelled"
    COVER_DESCRIPTION = "cover_description"


@dataclass(frozen=True)
class ListedSubstance:
    """One watchlist entry, with where it came from.

    ``listed_by`` is the agency whose update added the entry, or empty for the shipped list;
    ``list_source`` says the same for a reader ("shipped watchlist 2026.11", "update 12 from
    agency-b").  ``reference`` is the entry's own documentary source (a CND decision, ...).
    """

    name: str
    cas_rn: str
    synonyms: tuple[str, ...]
    cover_descriptions: tuple[str, ...]
    control: str
    control_note: str
    reference: str
    listed_by: str
    list_source: str

    @property
    def control_status(self) -> str:
        """Readable control status: the entry's note ("Table I since 2024") or its table."""
        return self.control_note or _CONTROL_LABELS.get(self.control, self.control)

    def to_entry(self) -> payloads_pb2.WatchlistEntry:
        """The entry as the payload an agency would publish."""
        return payloads_pb2.WatchlistEntry(
            name=self.name,
            cas_rn=self.cas_rn,
            synonyms=self.synonyms,
            cover_descriptions=self.cover_descriptions,
            control=_CONTROL_BY_NAME.get(self.control, payloads_pb2.Chemical.CONTROL_UNSPECIFIED),
            control_note=self.control_note,
            source=self.reference,
        )

    def to_dict(self) -> dict[str, object]:
        """Plain data for ``--json`` output (snake_case keys)."""
        return {
            "name": self.name,
            "cas_rn": self.cas_rn,
            "synonyms": list(self.synonyms),
            "cover_descriptions": list(self.cover_descriptions),
            "control": self.control,
            "control_note": self.control_note,
            "source": self.reference,
            "listed_by": self.listed_by,
            "list_source": self.list_source,
        }

    def _same_content(self, other: ListedSubstance) -> bool:
        return (
            self.name,
            self.synonyms,
            self.cover_descriptions,
            self.control,
            self.control_note,
        ) == (
            other.name,
            other.synonyms,
            other.cover_descriptions,
            other.control,
            other.control_note,
        )


@dataclass(frozen=True)
class WatchlistFlag:
    """A watchlist match in a shipment: a warning for the operator, never an error."""

    reason: FlagReason
    substance: str
    cas_rn: str
    control: str
    control_status: str
    field: str
    matched_text: str
    list_source: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """Plain data for ``--json`` output (snake_case keys)."""
        return {
            "reason": self.reason.value,
            "substance": self.substance,
            "cas_rn": self.cas_rn,
            "control": self.control,
            "control_status": self.control_status,
            "field": self.field,
            "matched_text": self.matched_text,
            "list_source": self.list_source,
            "message": self.message,
        }


@dataclass(frozen=True)
class WatchlistUpdate:
    """The watchlist entries one agency published in one verified alert.

    ``sequence`` orders one agency's updates (later wins): the feed sequence number or log index
    at which the client received it.  ``reference`` (optional) names the alert, for readers.
    """

    agency_id: str
    sequence: int
    entries: tuple[payloads_pb2.WatchlistEntry, ...]
    reference: str = ""

    @property
    def list_source(self) -> str:
        base = f"update {self.sequence} from {self.agency_id}"
        return f"{base} ({self.reference})" if self.reference else base


@dataclass(frozen=True)
class IgnoredChange:
    """An entry of an update that :meth:`Watchlist.merge` did not apply, and why."""

    agency_id: str
    sequence: int
    cas_rn: str
    name: str
    reason: str

    @property
    def message(self) -> str:
        subject = f"{self.name} ({self.cas_rn})" if self.cas_rn else self.name or "entry"
        return f"update {self.sequence} from {self.agency_id}: {subject}: {self.reason}"

    def to_dict(self) -> dict[str, object]:
        return {
            "agency_id": self.agency_id,
            "sequence": self.sequence,
            "cas_rn": self.cas_rn,
            "name": self.name,
            "reason": self.reason,
            "message": self.message,
        }


@dataclass(frozen=True)
class _Term:
    """One searchable spelling of a listed substance, normalised."""

    normalised: str
    substance: ListedSubstance


@dataclass(frozen=True)
class _TextMatch:
    substance: ListedSubstance
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Watchlist:
    """A merged watchlist: the shipped list plus the verified updates applied to it."""

    version: str
    source: str
    entries: tuple[ListedSubstance, ...]
    ignored_changes: tuple[IgnoredChange, ...] = ()
    _name_terms: tuple[_Term, ...] = field(init=False, repr=False, compare=False)
    _cover_terms: tuple[_Term, ...] = field(init=False, repr=False, compare=False)
    _by_cas: Mapping[str, ListedSubstance] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        name_terms: list[_Term] = []
        cover_terms: list[_Term] = []
        for entry in self.entries:
            for spelling in (entry.name, *entry.synonyms):
                normalised = _normalise(spelling)[0]
                if normalised:
                    name_terms.append(_Term(normalised, entry))
            for description in entry.cover_descriptions:
                normalised = _normalise(description)[0]
                if normalised:
                    cover_terms.append(_Term(normalised, entry))
        object.__setattr__(self, "_name_terms", tuple(name_terms))
        object.__setattr__(self, "_cover_terms", tuple(cover_terms))
        object.__setattr__(self, "_by_cas", {entry.cas_rn: entry for entry in self.entries})

    # --- building ---------------------------------------------------------------------------------

    @classmethod
    def shipped(cls) -> Watchlist:
        """The reference list shipped with the project (``exchange/alerts/data/watchlist.json``)."""
        return _shipped_watchlist()

    @classmethod
    def from_data(cls, data: Mapping[str, object]) -> Watchlist:
        """Build a list from the shipped file's shape: ``{"version", "source", "entries"}``.

        Raises :class:`~exchange.errors.ConfigurationError` when the data is malformed or an
        entry does not validate (its CAS RN check digit included).
        """
        version, source, raw_entries = data.get("version"), data.get("source"), data.get("entries")
        if not isinstance(version, str) or not isinstance(source, str):
            raise ConfigurationError("watchlist data needs string 'version' and 'source'")
        if not isinstance(raw_entries, list):
            raise ConfigurationError("watchlist data needs a list of 'entries'")
        list_source = f"shipped watchlist {version}"
        entries: list[ListedSubstance] = []
        for index, raw in enumerate(raw_entries):
            entry = _entry_from_data(raw, f"entries[{index}]")
            problems = validate_payload(payloads_pb2.ItemPayload(watchlist_entry=entry), "")
            if problems:
                raise ConfigurationError(
                    f"watchlist entries[{index}]: " + "; ".join(str(p) for p in problems)
                )
            entries.append(_listed(entry, listed_by="", list_source=list_source))
        if len({entry.cas_rn for entry in entries}) != len(entries):
            raise ConfigurationError("watchlist data lists a CAS RN twice")
        return cls(version=version, source=source, entries=tuple(entries))

    def merge(self, updates: Iterable[WatchlistUpdate]) -> Watchlist:
        """Apply agencies' verified updates, in ``(sequence, agency_id)`` order.

        An agency may add an entry (keyed by CAS RN), change or withdraw an entry it added, and
        nothing else: a change to the shipped list's entries or another agency's is ignored and
        recorded in ``ignored_changes`` of the result, as is an invalid entry.  Re-publishing
        another's entry unchanged is a no-op, not a conflict.
        """
        current: dict[str, ListedSubstance] = {entry.cas_rn: entry for entry in self.entries}
        ignored: list[IgnoredChange] = list(self.ignored_changes)
        for update in sorted(updates, key=lambda u: (u.sequence, u.agency_id)):
            try:
                validate_agency_id(update.agency_id)
            except IdentifierError as e:
                ignored.append(
                    IgnoredChange(update.agency_id, update.sequence, "", "", f"agency id {e}")
                )
                continue
            for entry in update.entries:
                change = _apply(current, update, entry)
                if change is not None:
                    ignored.append(change)
        return Watchlist(
            version=self.version,
            source=self.source,
            entries=tuple(current.values()),
            ignored_changes=tuple(ignored),
        )

    def find(self, cas_rn: str) -> ListedSubstance | None:
        """The entry listed under ``cas_rn``, if any."""
        return self._by_cas.get(cas_rn)

    def to_dict(self) -> dict[str, object]:
        """Plain data for ``watchlist show --json``."""
        return {
            "version": self.version,
            "source": self.source,
            "entries": [entry.to_dict() for entry in self.entries],
            "ignored_changes": [change.to_dict() for change in self.ignored_changes],
        }

    # --- matching ---------------------------------------------------------------------------------

    def match_shipment(
        self, shipment: payloads_pb2.Shipment, *, path: str = "shipment"
    ) -> list[WatchlistFlag]:
        """Flag listed substances in one shipment; ``path`` prefixes each flag's field."""
        declared_path = join_path(path, "declared_description")
        flags: dict[tuple[FlagReason, str, str], WatchlistFlag] = {}
        present: dict[str, ListedSubstance] = {}
        for text_path, text in _strings(shipment, path):
            for substance, matched in self._cas_matches(text):
                self._add_flag(flags, FlagReason.LISTED_CAS, substance, text_path, matched)
                if text_path != declared_path:
                    present.setdefault(substance.cas_rn, substance)
            for match in self._name_matches(text):
                self._add_flag(
                    flags, FlagReason.LISTED_NAME, match.substance, text_path, match.text
                )
                if text_path != declared_path:
                    present.setdefault(match.substance.cas_rn, match.substance)
        declared = shipment.declared_description
        if declared:
            named = {s.cas_rn for s, _ in self._cas_matches(declared)}
            named |= {m.substance.cas_rn for m in self._name_matches(declared)}
            for substance in present.values():
                if substance.cas_rn not in named:
                    self._add_flag(flags, FlagReason.RELABELLED, substance, declared_path, declared)
            for substance in self._cover_matches(declared):
                self._add_flag(
                    flags, FlagReason.COVER_DESCRIPTION, substance, declared_path, declared
                )
        return list(flags.values())

    def match_payload(
        self, payload: payloads_pb2.ItemPayload, path: str = ""
    ) -> list[WatchlistFlag]:
        """Flag listed substances in an item payload: every shipment in it, wherever nested, and
        a chemical item.  ``path`` is where the payload sits (``items[0]``).  Watchlist entries
        themselves are not flagged: they are the list."""
        kind = payload.WhichOneof("body")
        if kind is None or kind == "watchlist_entry":
            return []
        body = getattr(payload, kind)
        body_path = join_path(path, kind)
        if kind == "chemical":
            return self._match_strings(body, body_path)
        flags: list[WatchlistFlag] = []
        for shipment, shipment_path in _shipments(body, body_path):
            flags.extend(self.match_shipment(shipment, path=shipment_path))
        return flags

    def match_payloads(
        self, payloads: Sequence[tuple[str, payloads_pb2.ItemPayload]]
    ) -> list[WatchlistFlag]:
        """Flag every payload of ``(path, payload)`` pairs, such as a draft's items."""
        flags: list[WatchlistFlag] = []
        for path, payload in payloads:
            flags.extend(self.match_payload(payload, path))
        return flags

    def match_draft(self, draft: Draft) -> list[WatchlistFlag]:
        """Flag every item of a draft, each named ``items[i]...``."""
        return self.match_payloads(
            [(f"items[{index}]", item.payload) for index, item in enumerate(draft.items)]
        )

    def _match_strings(self, message: Message, path: str) -> list[WatchlistFlag]:
        flags: dict[tuple[FlagReason, str, str], WatchlistFlag] = {}
        for text_path, text in _strings(message, path):
            for substance, matched in self._cas_matches(text):
                self._add_flag(flags, FlagReason.LISTED_CAS, substance, text_path, matched)
            for match in self._name_matches(text):
                self._add_flag(
                    flags, FlagReason.LISTED_NAME, match.substance, text_path, match.text
                )
        return list(flags.values())

    def _cas_matches(self, text: str) -> list[tuple[ListedSubstance, str]]:
        # NFKC first, so a CAS RN written in full-width digits in free text is still seen.
        found: list[tuple[ListedSubstance, str]] = []
        for cas_rn in _CAS_IN_TEXT_RE.findall(unicodedata.normalize("NFKC", text)):
            substance = self._by_cas.get(cas_rn)
            if substance is not None:
                found.append((substance, cas_rn))
        return found

    def _name_matches(self, text: str) -> list[_TextMatch]:
        """Listed names and synonyms in ``text``, at word boundaries; a match inside a longer
        match of another substance is dropped (``4-piperidone`` inside
        ``1-boc-4-piperidone``)."""
        matches = _find_terms(text, self._name_terms)
        return [
            match
            for match in matches
            if not any(
                other.substance.cas_rn != match.substance.cas_rn
                and other.start <= match.start
                and match.end <= other.end
                and (other.end - other.start) > (match.end - match.start)
                for other in matches
            )
        ]

    def _cover_matches(self, text: str) -> list[ListedSubstance]:
        seen: dict[str, ListedSubstance] = {}
        for match in _find_terms(text, self._cover_terms):
            seen.setdefault(match.substance.cas_rn, match.substance)
        return list(seen.values())

    @staticmethod
    def _add_flag(
        flags: dict[tuple[FlagReason, str, str], WatchlistFlag],
        reason: FlagReason,
        substance: ListedSubstance,
        path: str,
        matched: str,
    ) -> None:
        key = (reason, substance.cas_rn, path)
        if key in flags:
            return
        flags[key] = WatchlistFlag(
            reason=reason,
            substance=substance.name,
            cas_rn=substance.cas_rn,
            control=substance.control,
            control_status=substance.control_status,
            field=path,
            matched_text=matched,
            list_source=substance.list_source,
            message=_flag_message(reason, substance, matched),
        )


def _flag_message(reason: FlagReason, substance: ListedSubstance, matched: str) -> str:
    what = f"{substance.name}, {substance.control_status} [{substance.list_source}]"
    shown = matched if len(matched) <= 80 else matched[:77] + "..."
    if reason is FlagReason.LISTED_CAS:
        return f"CAS {substance.cas_rn} is {what}"
    if reason is FlagReason.LISTED_NAME:
        return (
            f"{shown!r} names {substance.name} (CAS {substance.cas_rn}), {what.split(', ', 1)[1]}"
        )
    if reason is FlagReason.RELABELLED:
        return f"declared as {shown!r}; CAS {substance.cas_rn} is {what}"
    return (
        f"declared as {shown!r}, a known cover description for {substance.name} "
        f"(CAS {substance.cas_rn}), {what.split(', ', 1)[1]}"
    )


# --- merging ----------------------------------------------------------------------------------------


def _apply(
    current: dict[str, ListedSubstance],
    update: WatchlistUpdate,
    entry: payloads_pb2.WatchlistEntry,
) -> IgnoredChange | None:
    """Apply one entry of an update to ``current``; return why it was ignored, if it was."""

    def ignored(reason: str) -> IgnoredChange:
        return IgnoredChange(update.agency_id, update.sequence, entry.cas_rn, entry.name, reason)

    problems = validate_payload(payloads_pb2.ItemPayload(watchlist_entry=entry), "")
    if problems:
        return ignored("invalid entry: " + "; ".join(str(p) for p in problems))
    existing = current.get(entry.cas_rn)
    if entry.withdrawn:
        if existing is None:
            return ignored("withdrawal of an entry that is not listed")
        if existing.listed_by != update.agency_id:
            return ignored(f"only {_owner(existing)} may withdraw this entry")
        del current[entry.cas_rn]
        return None
    listed = _listed(entry, listed_by=update.agency_id, list_source=update.list_source)
    if existing is None or existing.listed_by == update.agency_id:
        current[entry.cas_rn] = listed
        return None
    if existing._same_content(listed):
        return None
    return ignored(f"listed by {_owner(existing)}; only {_owner(existing)} may change it")


def _owner(substance: ListedSubstance) -> str:
    return substance.listed_by or substance.list_source


def _listed(
    entry: payloads_pb2.WatchlistEntry, *, listed_by: str, list_source: str
) -> ListedSubstance:
    return ListedSubstance(
        name=entry.name,
        cas_rn=entry.cas_rn,
        synonyms=tuple(entry.synonyms),
        cover_descriptions=tuple(entry.cover_descriptions),
        control=_CONTROL_BY_NUMBER.get(entry.control, "CONTROL_UNSPECIFIED"),
        control_note=entry.control_note,
        reference=entry.source,
        listed_by=listed_by,
        list_source=list_source,
    )


def _entry_from_data(raw: object, path: str) -> payloads_pb2.WatchlistEntry:
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"watchlist {path} is not a mapping")

    def text(key: str) -> str:
        value = raw.get(key, "")
        if not isinstance(value, str):
            raise ConfigurationError(f"watchlist {path}.{key} is not a string")
        return value

    def texts(key: str) -> list[str]:
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigurationError(f"watchlist {path}.{key} is not a list of strings")
        return list(value)

    control = text("control")
    if control not in _CONTROL_BY_NAME:
        raise ConfigurationError(
            f"watchlist {path}.control is {control!r}, expected one of {', '.join(_CONTROL_BY_NAME)}"
        )
    return payloads_pb2.WatchlistEntry(
        name=text("name"),
        cas_rn=text("cas_rn"),
        synonyms=texts("synonyms"),
        cover_descriptions=texts("cover_descriptions"),
        control=_CONTROL_BY_NAME[control],
        control_note=text("control_note"),
        source=text("source"),
    )


@functools.cache
def _shipped_watchlist() -> Watchlist:
    raw = resources.files("exchange.alerts").joinpath("data", "watchlist.json").read_text("utf-8")
    return Watchlist.from_data(json.loads(raw))


# --- text search ------------------------------------------------------------------------------------


def _normalise(text: str) -> tuple[str, list[int]]:
    """Case-folded NFKC text without whitespace or hyphens, and for each of its characters the
    index of the original character it came from."""
    normalised: list[str] = []
    origins: list[int] = []
    for index, char in enumerate(text):
        if char.isspace() or char in _HYPHENS:
            continue
        for folded in unicodedata.normalize("NFKC", char).casefold():
            if folded.isspace() or folded in _HYPHENS:
                continue
            normalised.append(folded)
            origins.append(index)
    return "".join(normalised), origins


def _find_terms(text: str, terms: Sequence[_Term]) -> list[_TextMatch]:
    """Occurrences of ``terms`` in ``text`` that start and end at word boundaries of the
    original text (the characters around them are not letters or digits)."""
    normalised, origins = _normalise(text)
    found: list[_TextMatch] = []
    for term in terms:
        start = normalised.find(term.normalised)
        while start != -1:
            end = start + len(term.normalised)
            first, last = origins[start], origins[end - 1]
            before_ok = first == 0 or not text[first - 1].isalnum()
            after_ok = last + 1 >= len(text) or not text[last + 1].isalnum()
            if before_ok and after_ok:
                found.append(_TextMatch(term.substance, first, last + 1, text[first : last + 1]))
            start = normalised.find(term.normalised, start + 1)
    return found


def _strings(message: Message, path: str) -> Iterable[tuple[str, str]]:
    """Every non-empty string field of ``message``, recursively, with its path."""
    for field_descriptor, value in message.ListFields():
        field_path = join_path(path, field_descriptor.name)
        if field_descriptor.type == FieldDescriptor.TYPE_MESSAGE:
            if field_descriptor.is_repeated:
                for index, element in enumerate(value):
                    yield from _strings(element, f"{field_path}[{index}]")
            else:
                yield from _strings(value, field_path)
        elif field_descriptor.type == FieldDescriptor.TYPE_STRING:
            if field_descriptor.is_repeated:
                for index, element in enumerate(value):
                    if element:
                        yield f"{field_path}[{index}]", element
            elif value:
                yield field_path, value


def _shipments(message: Message, path: str) -> Iterable[tuple[payloads_pb2.Shipment, str]]:
    """Every Shipment in ``message`` (itself included), wherever nested, with its path."""
    if isinstance(message, payloads_pb2.Shipment):
        yield message, path
        return
    for field_descriptor, value in message.ListFields():
        if field_descriptor.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        field_path = join_path(path, field_descriptor.name)
        if field_descriptor.is_repeated:
            for index, element in enumerate(value):
                yield from _shipments(element, f"{field_path}[{index}]")
        else:
            yield from _shipments(value, field_path)
