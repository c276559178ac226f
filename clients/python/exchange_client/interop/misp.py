"""Opened alerts as MISP events, and MISP events back into drafts.

One alert is one event (``info`` is the title; the strictest TLP, the Admiralty grading and the
alert's kind are event tags).  Each exported item is one MISP object named ``exchange-<kind>``
whose attributes are the item's fields, one attribute per value: ``object_relation`` is the
field's path inside the item (``shipment.chemicals[0].cas_rn``, ``policy.tlp``), so an import
puts every value back where it came from.  Attributes are typed as MISP expects (``iban``,
``bic``, ``bank-account-nr``, ``btc`` for Bitcoin addresses, ``email``, ``phone-number``,
``date-of-birth``, ``full-name`` for a person's names, ``attachment`` for an attachment's bytes,
``text`` for the rest), tagged with the item's ``tlp:`` tag and ``exchange:handling="H…"`` tags,
and carry a distribution derived from the item's audience and handling (never wider than
"this community"; see :func:`distribution_for`).  ``to_ids`` is off everywhere: these are
leads for investigators, not detection signatures.

Only items :func:`~exchange_client.interop._common.exportable_items` lets out are exported.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from exchange.errors import MalformedError, TooLargeError
from exchange.limits import over_limit
from exchange.v1 import payloads_pb2
from exchange_client._internal.models import OpenedAlert, OpenedItem
from exchange_client.interop._common import (
    TLP_ORDER,
    ImportResult,
    JsonObject,
    expect_list,
    expect_mapping,
    exportable_items,
    grading_mapping,
    item_mapping,
    parse_json_document,
    strictest_tlp,
)

__all__ = ["MAX_EVENT_ATTRIBUTES", "distribution_for", "export_misp", "import_misp"]

MAX_EVENT_ATTRIBUTES = 10_000
"""The most attributes :func:`import_misp` takes from one event; a larger one is refused whole."""

ORGANISATION_ONLY = 0
THIS_COMMUNITY = 1

_HANDLING_TAG = re.compile(r'^exchange:handling="(H[0-2])"$')
_KIND_TAG = re.compile(r'^exchange:kind="([A-Z_]+)"$')
_OPERATOR_TAG = re.compile(r'^exchange:operator="([^"]*)"$')
_SOURCE_TAG = re.compile(r'^admiralty-scale:source-reliability="([a-f])"$')
_INFORMATION_TAG = re.compile(r'^admiralty-scale:information-credibility="([1-6])"$')
_PATH = re.compile(r"^[a-z_]+(\[\d{1,4}\])?(\.[a-z_]+(\[\d{1,4}\])?){0,9}$")
_STEP = re.compile(r"^([a-z_]+)(?:\[(\d{1,4})\])?$")

# Attribute type and category by the last field name of a path.
_TYPED_FIELDS: dict[str, tuple[str, str]] = {
    "iban": ("iban", "Financial fraud"),
    "bic": ("bic", "Financial fraud"),
    "debtor_agent": ("bic", "Financial fraud"),
    "creditor_agent": ("bic", "Financial fraud"),
    "domestic_number": ("bank-account-nr", "Financial fraud"),
    "email": ("email", "Person"),
    "phone": ("phone-number", "Person"),
    "date_of_birth": ("date-of-birth", "Person"),
}
_INTERNAL = ("text", "Internal reference")
_OTHER = ("text", "Other")


def tlp_tag(label: str) -> str:
    """The MISP ``tlp`` taxonomy tag of a TLP 2.0 label (``tlp:amber+strict``)."""
    return f"tlp:{label.lower()}"


def distribution_for(item: OpenedItem) -> int:
    """The MISP distribution level of an exported item, from its audience and handling.

    ``0`` ("your organisation only") when the originator shared the item with one agency at
    most, or marked it ``H2`` (no onward sharing), ``TLP:AMBER+STRICT`` or ``TLP:RED``; ``1``
    ("this community only") otherwise.  Never wider: the exchange shared it with named agencies,
    not with connected MISP communities.
    """
    policy = item.policy
    if len(policy.audience) <= 1 or "H2" in policy.handling:
        return ORGANISATION_ONLY
    if policy.tlp in ("AMBER+STRICT", "RED"):
        return ORGANISATION_ONLY
    return THIS_COMMUNITY


def _stable_uuid(*parts: str) -> str:
    digest = hashlib.sha256("\x00".join(("exchange-misp", *parts)).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _flatten(value: Any, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _flatten(inner, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _flatten(inner, f"{path}[{index}]")
    elif isinstance(value, bool):
        yield path, "true" if value else "false"
    else:
        yield path, str(value)


def _last_field(path: str) -> str:
    return path.rsplit(".", 1)[-1].split("[", 1)[0]


def _attribute_type(path: str, mapping: Mapping[str, Any]) -> tuple[str, str]:
    if path == "id" or path.startswith("policy."):
        return _INTERNAL
    name = _last_field(path)
    if name in _TYPED_FIELDS:
        return _TYPED_FIELDS[name]
    if name in ("address", "from_address", "to_address") and _chain_of(path, mapping) == "BITCOIN":
        return ("btc", "Financial fraud")
    if name == "value" and ".names[" in path and _parent(path, mapping).get("kind") == "PERSON":
        return ("full-name", "Person")
    return _OTHER


def _resolve(mapping: Any, path: str) -> Any:
    current = mapping
    for step in path.split("."):
        match = _STEP.match(step)
        if match is None or not isinstance(current, Mapping):
            return None
        current = current.get(match.group(1))
        if match.group(2) is not None:
            if not isinstance(current, list) or int(match.group(2)) >= len(current):
                return None
            current = current[int(match.group(2))]
    return current


def _parent(path: str, mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """The party a ``….names[i].value`` path belongs to."""
    owner = _resolve(mapping, path.rsplit(".names[", 1)[0])
    return owner if isinstance(owner, Mapping) else {}


def _chain_of(path: str, mapping: Mapping[str, Any]) -> Any:
    parent_path = path.rsplit(".", 1)[0]
    parent = _resolve(mapping, parent_path)
    return parent.get("chain") if isinstance(parent, Mapping) else None


def _item_object(alert: OpenedAlert, item: OpenedItem) -> JsonObject:
    mapping = item_mapping(item)
    kind = next(key for key in mapping if key not in ("id", "policy"))
    distribution = distribution_for(item)
    tags = [{"name": tlp_tag(item.policy.tlp)}] if item.policy.tlp else []
    tags += [{"name": f'exchange:handling="{code}"'} for code in item.policy.handling]
    attributes = []
    for path, value in _flatten(mapping, ""):
        attribute_type, category = _attribute_type(path, mapping)
        attribute: JsonObject = {
            "uuid": _stable_uuid(alert.originator, alert.alert_id, item.id, path),
            "type": attribute_type,
            "category": category,
            "object_relation": path,
            "value": value,
            "to_ids": False,
            "distribution": str(distribution),
            "disable_correlation": category == "Internal reference",
            "Tag": tags,
        }
        if path == f"{kind}.content" and kind == "attachment":
            attribute.update(type="attachment", category="External analysis",
                             value=mapping[kind].get("name", "attachment"), data=value)
        attributes.append(attribute)
    return {
        "uuid": _stable_uuid(alert.originator, alert.alert_id, item.id),
        "name": f"exchange-{kind.replace('_', '-')}",
        "meta-category": "financial" if kind in ("account", "transaction") else "misc",
        "description": f"Exchange alert item {item.id} ({kind})",
        "comment": f"item {item.id}",
        "distribution": str(distribution),
        "Attribute": attributes,
    }


def export_misp(alert: OpenedAlert, *, now: datetime) -> JsonObject:
    """The MISP event (``{"Event": {...}}``) of ``alert``, with the items that may leave at
    ``now``."""
    items = exportable_items(alert, now=now)
    published = alert.published_at or alert.created_at or now
    tags: list[JsonObject] = []
    tlp = strictest_tlp(items)
    if tlp:
        tags.append({"name": tlp_tag(tlp)})
    grading = grading_mapping(alert.grading) or {}
    if "source" in grading:
        tags.append({"name": f'admiralty-scale:source-reliability="{grading["source"].lower()}"'})
    if "information" in grading:
        tags.append(
            {"name": f'admiralty-scale:information-credibility="{grading["information"]}"'}
        )
    if alert.kind:
        tags.append({"name": f'exchange:kind="{alert.kind}"'})
    if alert.operator:
        tags.append({"name": f'exchange:operator="{alert.operator}"'})
    distributions = [distribution_for(item) for item in items] or [ORGANISATION_ONLY]
    event: JsonObject = {
        "uuid": _stable_uuid(alert.originator, alert.alert_id),
        "info": alert.title or f"Exchange alert {alert.alert_id}",
        "date": published.date().isoformat(),
        "timestamp": str(int(published.timestamp())),
        "published": False,
        "analysis": "2",
        "threat_level_id": "2",
        "distribution": str(max(distributions)),
        "Orgc": {"name": alert.originator},
        "Tag": tags,
        "Attribute": [],
        "Object": [_item_object(alert, item) for item in items],
    }
    return {"Event": event}


# --- import ------------------------------------------------------------------------------------

_ROOT_KINDS = {
    field.name: field.message_type
    for field in payloads_pb2.ItemPayload.DESCRIPTOR.fields
    if field.name != "summary"
}


def _field_at(path: str) -> FieldDescriptor | None:
    """The protobuf field a payload path names (``shipment.chemicals[0].cas_rn``), if any."""
    steps = path.split(".")
    descriptor: Descriptor | None = payloads_pb2.ItemPayload.DESCRIPTOR
    found: FieldDescriptor | None = None
    for step in steps:
        match = _STEP.match(step)
        if match is None or descriptor is None:
            return None
        found = descriptor.fields_by_name.get(match.group(1))
        if found is None or (match.group(2) is not None) != found.is_repeated:
            return None
        descriptor = found.message_type
    return found


def _typed_value(path: str, value: str) -> object:
    if path.startswith("policy.") or path == "id":
        return value
    found = _field_at(path)
    if found is not None and found.type == FieldDescriptor.TYPE_BOOL:
        return value == "true"
    return value


def _set_path(root: JsonObject, path: str, value: object) -> None:
    current: Any = root
    steps = path.split(".")
    for position, step in enumerate(steps):
        match = _STEP.match(step)
        assert match is not None
        name, index = match.group(1), match.group(2)
        last = position == len(steps) - 1
        if index is None:
            if last:
                current[name] = value
            else:
                current = current.setdefault(name, {})
            continue
        values = current.setdefault(name, [])
        position_in_list = int(index)
        while len(values) <= position_in_list:
            values.append(None)
        if last:
            values[position_in_list] = value
        else:
            if values[position_in_list] is None:
                values[position_in_list] = {}
            current = values[position_in_list]


def _without_holes(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_holes(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_without_holes(inner) for inner in value if inner is not None]
    return value


def _tag_names(value: Mapping[str, Any], where: str) -> list[str]:
    names = []
    for index, tag in enumerate(expect_list(value.get("Tag", []), f"{where}.Tag")):
        name = expect_mapping(tag, f"{where}.Tag[{index}]").get("name")
        if isinstance(name, str):
            names.append(name)
    return names


def _event_summary(event: Mapping[str, Any]) -> JsonObject:
    summary: JsonObject = {"kind": "GENERAL"}
    if isinstance(event.get("info"), str):
        summary["title"] = event["info"]
    grading: JsonObject = {}
    for name in _tag_names(event, "Event"):
        for pattern, key in ((_KIND_TAG, "kind"), (_OPERATOR_TAG, "operator")):
            match = pattern.match(name)
            if match:
                summary[key] = match.group(1)
        source = _SOURCE_TAG.match(name)
        if source:
            grading["source"] = source.group(1).upper()
        information = _INFORMATION_TAG.match(name)
        if information:
            grading["information"] = information.group(1)
    if grading:
        summary["grading"] = grading
    return summary


def _string_value(attribute: Mapping[str, Any], where: str) -> str:
    value = attribute.get("data") if attribute.get("type") == "attachment" else attribute.get("value")
    if not isinstance(value, str):
        raise MalformedError(f"{where}: the attribute's value is not a string")
    return value


def _exchange_item(obj: Mapping[str, Any], where: str) -> JsonObject:
    item: JsonObject = {}
    attributes = expect_list(obj.get("Attribute", []), f"{where}.Attribute")
    for index, value in enumerate(attributes):
        attribute_where = f"{where}.Attribute[{index}]"
        attribute = expect_mapping(value, attribute_where)
        path = attribute.get("object_relation")
        if not isinstance(path, str) or not _PATH.match(path):
            raise MalformedError(f"{attribute_where}: object_relation {path!r} is not a field path")
        text = _string_value(attribute, attribute_where)
        if attribute.get("type") == "attachment":
            _set_path(item, path, text)
        else:
            _set_path(item, path, _typed_value(path, text))
    cleaned: JsonObject = _without_holes(item)
    return cleaned


def _policy_from_tags(names: Iterable[str]) -> JsonObject:
    policy: JsonObject = {"release": "IMMEDIATE"}
    handling = []
    for name in names:
        label = name.removeprefix("tlp:").upper().replace("WHITE", "CLEAR")
        if name.startswith("tlp:") and label in TLP_ORDER:
            policy["tlp"] = label
        match = _HANDLING_TAG.match(name)
        if match:
            handling.append(match.group(1))
    if handling:
        policy["handling"] = sorted(handling)
    return policy


def _foreign_item(
    attribute: Mapping[str, Any], where: str, counts: dict[str, int]
) -> JsonObject | None:
    """An item for one attribute of a MISP event of another origin, where a payload fits."""
    attribute_type = attribute.get("type")
    value = _string_value(attribute, where)
    payload: JsonObject
    if attribute_type == "iban":
        kind, payload = "account", {"iban": value}
    elif attribute_type == "bic":
        kind, payload = "account", {"bic": value}
    elif attribute_type == "bank-account-nr":
        kind, payload = "account", {"domestic_number": value}
    elif attribute_type == "btc":
        kind, payload = "account", {"wallet": {"chain": "BITCOIN", "address": value}}
    elif attribute_type == "email":
        kind, payload = "party", {"contacts": [{"email": value}]}
    elif attribute_type == "phone-number":
        kind, payload = "party", {"contacts": [{"phone": value}]}
    elif attribute_type in ("text", "comment", "other"):
        kind, payload = "note", {"text": value}
    else:
        return None
    count = counts[kind] = counts.get(kind, 0) + 1
    return {
        "id": f"{kind}-{count}",
        "policy": _policy_from_tags(_tag_names(attribute, where)),
        kind: payload,
    }


def import_misp(data: bytes) -> ImportResult:
    """A draft from a MISP event (the bytes of its JSON, ``{"Event": {...}}``).

    Objects exported by :func:`export_misp` come back as the items they were made from; the
    attributes of other events become items where a payload kind fits (an IBAN, BIC, account
    number or Bitcoin address an account, an e-mail address or phone number a party, a text a
    note), and every other attribute or object is listed in the warnings.  An event of more than
    :data:`MAX_EVENT_ATTRIBUTES` attributes is refused.
    """
    document = parse_json_document(data, what="MISP event")
    event = expect_mapping(document.get("Event", document), "Event")
    if "info" not in event and "Attribute" not in event and "Object" not in event:
        raise MalformedError("the file is not a MISP event: it has no Event with info or Attribute")
    objects = expect_list(event.get("Object", []), "Event.Object")
    loose = expect_list(event.get("Attribute", []), "Event.Attribute")
    total = len(loose) + sum(
        len(expect_list(expect_mapping(obj, f"Event.Object[{i}]").get("Attribute", []),
                        f"Event.Object[{i}].Attribute"))
        for i, obj in enumerate(objects)
    )
    if total > MAX_EVENT_ATTRIBUTES:
        raise TooLargeError(
            over_limit(total, MAX_EVENT_ATTRIBUTES, "attributes", what="the event", verb="has")
            + " at once: split it"
        )
    warnings: list[str] = []
    items: list[JsonObject] = []
    counts: dict[str, int] = {}
    attributes = [(f"Event.Attribute[{index}]", value) for index, value in enumerate(loose)]
    for index, value in enumerate(objects):
        where = f"Event.Object[{index}]"
        obj = expect_mapping(value, where)
        name = obj.get("name")
        if isinstance(name, str) and name.startswith("exchange-"):
            items.append(_exchange_item(obj, where))
            continue
        attributes += [
            (f"{where}.Attribute[{position}]", attribute)
            for position, attribute in enumerate(expect_list(obj.get("Attribute", []), where))
        ]
    for where, value in attributes:
        attribute = expect_mapping(value, where)
        item = _foreign_item(attribute, where, counts)
        if item is None:
            warnings.append(
                f"{where}: MISP type {attribute.get('type')!r} has no place in an alert draft; "
                "not imported"
            )
            continue
        items.append(item)
    draft = _event_summary(event)
    draft["items"] = items
    return ImportResult(draft=draft, warnings=tuple(warnings))
