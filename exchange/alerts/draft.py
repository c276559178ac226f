"""Drafts: what an operator writes before an alert is sealed and signed.

A draft is a JSON or YAML document::

    kind: SHIPMENT                 # SHIPMENT, FUND_FLOW, WATCHLIST, ENTITY or GENERAL
    grading: {source: A, information: "2"}   # Admiralty grading, both strings
    title: ...
    operator: op-7f3a              # optional pseudonymous operator id
    items:
      - id: s1                     # [A-Za-z0-9][A-Za-z0-9._-]{0,63}, unique; the hub sees it
        policy:
          audience: [agency-b]     # agency ids; empty: the originator only
          release: IMMEDIATE       # IMMEDIATE, ON_REQUEST or EMBARGO
          tlp: AMBER               # CLEAR, GREEN, AMBER, AMBER+STRICT, RED, each may be TLP:...
          handling: [H2]           # H0, H1, H2
          embargo_until: 2026-12-01T08:00:00Z   # RFC 3339 with offset; EMBARGO only
          expires_at: 2027-06-01T00:00:00Z
        shipment: {...}            # exactly one payload kind per item

The payload kinds are the fields of ``ItemPayload`` except ``summary`` (``shipment``,
``chemical``, ``party``, ``account``, ``transaction``, ``attachment``, ``note``,
``watchlist_entry``), with the proto field names.  ``attachment.content`` is standard base64.
Grading ``information`` is the string ``"1"`` to ``"6"``: a number there is an error like any
number where the format says string (TRAPS.md), so quote it in YAML.

Parsing goes through the project's own strict mapping (:mod:`exchange.alerts._message_mapping`),
never ``json_format``, and then through :func:`~exchange.alerts.validate.normalise_draft`: every
problem is reported at once in one :class:`~exchange.errors.DraftError`, each named by its path.
An empty or whitespace-only string is a problem (``cas_rn: is empty``); an optional field that
does not apply is left out.

Identifiers may be written as documents print them (an IBAN in groups of four, a BIC in lower
case, a container number as ``MSCU 123456-5``; each kind's forms are listed in
:mod:`exchange.alerts.identifiers`).  The draft holds their canonical electronic form, which is
what gets signed, and lists each change in :attr:`Draft.normalisations`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from exchange.alerts._draft_files import load_draft_file
from exchange.alerts._message_mapping import (
    MappingContext,
    enum_spelling,
    message_to_mapping,
    set_string_at,
    walk,
)
from exchange.alerts.validate import Normalisation, normalise_draft
from exchange.errors import DraftError, FieldViolation
from exchange.v1 import payloads_pb2, statements_pb2

__all__ = ["PAYLOAD_KINDS", "Draft", "DraftItem"]

PAYLOAD_KINDS: tuple[str, ...] = tuple(
    field.name
    for field in payloads_pb2.ItemPayload.DESCRIPTOR.oneofs_by_name["body"].fields
    if field.name != "summary"
)
_ITEM_PATH_RE = re.compile(r"items\[(\d+)\]")
_PAYLOAD_FIELD_RE = re.compile(r"items\[(\d+)\]\.(.+)")
_ITEM_KEYS = frozenset({"id", "policy"})
_CASE_PAYLOAD = "written by `exchange case`, not in a draft"
_REFUSED_ITEM_KEYS = {
    "summary": "not a payload kind: the summary is made from the draft's kind, grading, title "
    "and operator",
    "case_record": _CASE_PAYLOAD,
    "case_entry": _CASE_PAYLOAD,
}
CASE_KINDS = frozenset({payloads_pb2.Summary.CASE, payloads_pb2.Summary.CASE_ENTRY})
"""Kinds of the alerts that carry joint cases: made by ``exchange case``, refused in drafts."""


@dataclass(frozen=True)
class DraftItem:
    """One item of a draft: its id (visible to the hub), release policy and payload."""

    id: str
    policy: statements_pb2.ReleasePolicy
    payload: payloads_pb2.ItemPayload

    @property
    def payload_kind(self) -> str | None:
        """The payload's kind (``shipment``, ``note``, ...), or None when it has none."""
        return self.payload.WhichOneof("body")


@dataclass(frozen=True)
class Draft:
    """A parsed, validated draft alert.

    ``kind``, ``grading``, ``title`` and ``operator`` travel in the encrypted summary item
    (:meth:`summary`), so the hub never learns them.  Build one with :meth:`from_dict` or
    :meth:`from_file`, which validate and bring printed identifiers to their canonical form,
    listing each in ``normalisations`` (not part of equality: two drafts that sign alike are
    equal); a draft built directly can be checked with
    :func:`~exchange.alerts.validate.validate_draft`.
    """

    kind: payloads_pb2.Summary.Kind.ValueType
    grading: payloads_pb2.Grading
    title: str
    operator: str
    items: tuple[DraftItem, ...]
    normalisations: tuple[Normalisation, ...] = field(default=(), compare=False)

    def summary(self) -> payloads_pb2.Summary:
        """The payload of the encrypted summary item."""
        summary = payloads_pb2.Summary(kind=self.kind, title=self.title, operator=self.operator)
        if self.grading.ListFields():
            summary.grading.CopyFrom(self.grading)
        return summary

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Draft:
        """Parse and validate a draft given as plain data (a parsed JSON or YAML document).

        Raises :class:`~exchange.errors.DraftError` carrying every violation found.
        """
        if not isinstance(data, Mapping):
            raise DraftError(
                "a draft is a mapping with kind, title and items",
                violations=[FieldViolation("", f"expected a mapping, got {type(data).__name__}")],
            )
        context = MappingContext()
        summary = payloads_pb2.Summary()
        walk(summary, data, "", skip_keys=frozenset({"items"}), context=context)
        items = tuple(_parse_items(data.get("items"), "items" in data, context))
        grading = payloads_pb2.Grading()
        grading.CopyFrom(summary.grading)
        draft = cls(
            kind=summary.kind,
            grading=grading,
            title=summary.title,
            operator=summary.operator,
            items=items,
        )
        semantic, normalisations = normalise_draft(draft)
        if summary.kind in CASE_KINDS:
            semantic.append(FieldViolation("kind", _CASE_PAYLOAD))
        violations = _merge(context.violations, semantic)
        if violations:
            count = len(violations)
            raise DraftError(
                f"the draft has {count} problem{'s' if count != 1 else ''}",
                violations=violations,
            )
        _apply(draft.items, normalisations)
        return replace(draft, normalisations=tuple(normalisations))

    @classmethod
    def from_file(cls, path: str | Path) -> Draft:
        """Load a draft from a ``.json`` file or a ``.yaml``/``.yml`` file (YAML 1.2 core
        schema), then parse and validate it as :meth:`from_dict` does."""
        data = load_draft_file(path)
        if not isinstance(data, Mapping):
            raise DraftError(
                f"{Path(path).name}: a draft is a mapping with kind, title and items",
                violations=[FieldViolation("", f"the document is a {type(data).__name__}")],
            )
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, object]:
        """The draft as plain data in the draft format; ``Draft.from_dict(d.to_dict()) == d``."""
        result = message_to_mapping(self.summary())
        result["items"] = [
            {
                "id": item.id,
                "policy": message_to_mapping(item.policy),
                **message_to_mapping(item.payload),
            }
            for item in self.items
        ]
        return result

    @property
    def kind_name(self) -> str:
        """The kind as written in drafts (``SHIPMENT``)."""
        return enum_spelling(payloads_pb2.Summary.Kind.DESCRIPTOR, self.kind)


def _parse_items(value: object, present: bool, context: MappingContext) -> list[DraftItem]:
    if not present:
        return []
    if not isinstance(value, list):
        context.add("items", f"expected a list of items, got {type(value).__name__}")
        return []
    items: list[DraftItem] = []
    for index, item_value in enumerate(value):
        path = f"items[{index}]"
        if not isinstance(item_value, Mapping):
            context.add(path, f"expected a mapping, got {type(item_value).__name__}")
            continue
        item_id = item_value.get("id", "")
        if not isinstance(item_id, str):
            context.add(f"{path}.id", f"expected a string, got {type(item_id).__name__}")
            item_id = ""
        elif "id" in item_value and not item_id.strip():
            context.add(f"{path}.id", "is empty")
        policy = statements_pb2.ReleasePolicy()
        if "policy" in item_value:
            walk(policy, item_value["policy"], f"{path}.policy", context=context)
        payload = payloads_pb2.ItemPayload()
        walk(
            payload,
            item_value,
            path,
            skip_keys=_ITEM_KEYS,
            refused_keys=_REFUSED_ITEM_KEYS,
            context=context,
        )
        items.append(DraftItem(id=item_id, policy=policy, payload=payload))
    return items


def _apply(items: Sequence[DraftItem], normalisations: Sequence[Normalisation]) -> None:
    """Write each canonical form into its item's payload, where every identifier lives."""
    for normalisation in normalisations:
        match = _PAYLOAD_FIELD_RE.fullmatch(normalisation.field)
        if match is None:
            raise ValueError(f"{normalisation.field} is not a field of an item's payload")
        set_string_at(items[int(match.group(1))].payload, match.group(2), normalisation.canonical)


def _is_under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def _merge(
    structural: list[FieldViolation], semantic: list[FieldViolation]
) -> list[FieldViolation]:
    """All violations, leaving out semantic ones at or under a path that already failed to parse:
    a field that could not be read should not also be reported as missing."""
    failed = [violation.field for violation in structural if violation.field]
    merged = structural + [
        violation
        for violation in semantic
        if not any(_is_under(violation.field, prefix) for prefix in failed)
    ]
    return sorted(merged, key=_item_index)


def _item_index(violation: FieldViolation) -> int:
    """Order violations by item (draft-level ones first); stable within an item."""
    match = _ITEM_PATH_RE.match(violation.field)
    return int(match.group(1)) if match else -1
