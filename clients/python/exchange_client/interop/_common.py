"""What every format shares: which items may leave, their draft form, files written whole.

Conversion happens on the agency's side only, from what :meth:`Client.open` returned: the hub
never sees plaintext.  An item leaves in any format only while it is ``VISIBLE`` to this agency
and not past its ``expires_at``; withheld, embargoed, revoked, expired and invalid items are
absent (never empty placeholders), and a retracted alert exports no item at all.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from exchange.alerts.draft import Draft, DraftItem
from exchange.errors import InvalidInputError, MalformedError, TooLargeError
from exchange.v1 import payloads_pb2, statements_pb2
from exchange_client._internal.models import ItemPolicy, OpenedAlert, OpenedItem, rfc3339

JsonObject = dict[str, Any]

MAX_IMPORT_FILE_BYTES = 32 * 1024 * 1024
"""The largest STIX bundle or MISP event file ``exchange import`` reads."""

TLP_RED = "RED"
VISIBLE = "VISIBLE"
TLP_ORDER = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
"""TLP 2.0 labels from the least to the most restrictive."""


@dataclass(frozen=True)
class ImportResult:
    """A draft made from a STIX bundle or a MISP event, and what could not be carried over.

    ``draft`` is plain data in the draft format (write it out, then ``exchange validate``);
    ``warnings`` name every object or attribute that was not turned into a draft field, so
    nothing is dropped silently.
    """

    draft: JsonObject
    warnings: tuple[str, ...] = ()


def exportable_items(
    alert: OpenedAlert, *, now: datetime, include_tlp_red: bool = True
) -> tuple[OpenedItem, ...]:
    """The items of ``alert`` that may leave in an export or a feed at ``now``.

    Only ``VISIBLE`` items with a payload, not past ``expires_at``; none of a retracted alert.
    ``include_tlp_red=False`` (the TAXII feed's default) leaves TLP:RED items out as well.
    """
    if alert.retracted:
        return ()
    return tuple(
        item
        for item in alert.items
        if item.status == VISIBLE
        and item.payload is not None
        and item.payload_kind is not None
        and (item.policy.expires_at is None or item.policy.expires_at > now)
        and (include_tlp_red or item.policy.tlp != TLP_RED)
    )


def strictest_tlp(items: Iterable[OpenedItem]) -> str | None:
    """The most restrictive TLP label among ``items`` (None when none carries one)."""
    labels = [item.policy.tlp for item in items if item.policy.tlp in TLP_ORDER]
    return max(labels, key=TLP_ORDER.index) if labels else None


def payload_mapping(payload: payloads_pb2.ItemPayload) -> JsonObject:
    """The payload in the draft format: ``{"shipment": {...}}`` with the draft's spellings."""
    item = DraftItem(id="_", policy=statements_pb2.ReleasePolicy(), payload=payload)
    shell = Draft(
        kind=payloads_pb2.Summary.KIND_UNSPECIFIED,
        grading=payloads_pb2.Grading(),
        title="",
        operator="",
        items=(item,),
    )
    items = shell.to_dict()["items"]
    assert isinstance(items, list)
    mapping = dict(items[0])
    mapping.pop("id")
    mapping.pop("policy")
    return mapping


def policy_mapping(policy: ItemPolicy) -> JsonObject:
    """An opened item's signed policy in the draft format (unset parts left out)."""
    result: JsonObject = {}
    if policy.audience:
        result["audience"] = list(policy.audience)
    if policy.release:
        result["release"] = policy.release
    if policy.tlp:
        result["tlp"] = policy.tlp
    if policy.handling:
        result["handling"] = list(policy.handling)
    if policy.embargo_until is not None:
        result["embargo_until"] = rfc3339(policy.embargo_until)
    if policy.expires_at is not None:
        result["expires_at"] = rfc3339(policy.expires_at)
    return result


def grading_mapping(label: str | None) -> JsonObject | None:
    """``"B2"`` (as :class:`OpenedAlert` gives it) back to ``{"source": "B", "information": "2"}``."""
    if not label:
        return None
    grading: JsonObject = {"source": label[0]}
    if len(label) > 1:
        grading["information"] = label[1:]
    return grading


def summary_mapping(alert: OpenedAlert) -> JsonObject:
    """The draft's top-level fields (kind, grading, title, operator) of an opened alert."""
    result: JsonObject = {}
    if alert.kind:
        result["kind"] = alert.kind
    grading = grading_mapping(alert.grading)
    if grading:
        result["grading"] = grading
    if alert.title:
        result["title"] = alert.title
    if alert.operator:
        result["operator"] = alert.operator
    return result


def item_mapping(item: OpenedItem) -> JsonObject:
    """One exportable item in the draft format: id, policy and payload."""
    assert item.payload is not None
    return {"id": item.id, "policy": policy_mapping(item.policy), **payload_mapping(item.payload)}


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file beside it, flushed to
    disk, then renamed over it.  An interrupted export never leaves half a bundle behind."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as output:
            output.write(data)
            output.flush()
            os.fsync(output.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> JsonObject:
    result: JsonObject = {}
    for key, value in pairs:
        if key in result:
            raise MalformedError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _refuse_constant(name: str) -> None:
    raise MalformedError(f"{name} is not a JSON value")


def parse_json_document(data: bytes, *, what: str) -> JsonObject:
    """Parse a JSON object strictly (no duplicate keys, no NaN); errors name ``what``."""
    if len(data) > MAX_IMPORT_FILE_BYTES:
        raise TooLargeError(f"the {what} is larger than {MAX_IMPORT_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise MalformedError(f"the {what} is not UTF-8 text: byte {e.start} is invalid") from e
    try:
        document = json.loads(
            text, object_pairs_hook=_refuse_duplicate_keys, parse_constant=_refuse_constant
        )
    except json.JSONDecodeError as e:
        raise MalformedError(
            f"the {what} is not valid JSON: line {e.lineno}, column {e.colno}: {e.msg}"
        ) from e
    except MalformedError as e:
        raise MalformedError(f"the {what} is not valid JSON: {e.message}") from e
    except RecursionError as e:
        raise MalformedError(f"the {what} is nested too deeply") from e
    if not isinstance(document, dict):
        raise MalformedError(f"the {what} is a JSON {type(document).__name__}, not an object")
    return document


def read_import_bytes(path: Path) -> bytes:
    """The bytes of a file to import, refusing one over :data:`MAX_IMPORT_FILE_BYTES`."""
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_IMPORT_FILE_BYTES + 1)
    except OSError as e:
        raise InvalidInputError(f"cannot read {path}: {e.strerror or e}") from e
    if len(data) > MAX_IMPORT_FILE_BYTES:
        raise TooLargeError(f"{path} is larger than {MAX_IMPORT_FILE_BYTES} bytes")
    return data


def expect_mapping(value: object, where: str) -> Mapping[str, Any]:
    """``value`` as a JSON object, or a :class:`MalformedError` naming ``where``."""
    if not isinstance(value, Mapping):
        raise MalformedError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def expect_list(value: object, where: str) -> list[Any]:
    """``value`` as a JSON array, or a :class:`MalformedError` naming ``where``."""
    if not isinstance(value, list):
        raise MalformedError(f"{where}: expected a JSON array, got {type(value).__name__}")
    return value
