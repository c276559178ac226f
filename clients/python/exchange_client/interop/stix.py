"""Opened alerts as STIX 2.1 bundles, and STIX 2.1 bundles back into drafts.

Every bundle is built with the OASIS ``stix2`` library.  The mapping (``docs/INTEROP.md`` has the
table) in short:

- the alert is a ``report`` (title, publication time, the strictest TLP of what it carries);
- each agency (the originator and every agency in an exported item's audience) an ``identity``;
- each payload message one object: a party an ``identity``, an address a ``location``, an
  account a ``bank-account`` (or a ``cryptocurrency-wallet`` when it is only a wallet), a note a
  ``note``, an attachment an ``artifact``, and shipments, chemicals (with their CAS RN as an
  external reference) and transactions the new object types ``shipment``,
  ``chemical-substance`` and ``financial-transaction``, each defined by an extension definition
  with a fixed id that travels in the bundle; containers and the crypto addresses of a
  transaction are also ``shipping-container`` and ``cryptocurrency-wallet`` observables, gathered
  with the item's accounts and attachments in one ``observed-data``;
- every object of an item carries the item's TLP 2.0 marking definition (the ids OASIS publishes)
  and one marking definition per handling code (``H0``/``H1``/``H2``: a marking extension with an
  id of this project's), and the ``exchange`` property extension: the item id, the object's place
  in the payload and the payload fields its STIX properties cannot give back exactly, so that
  :func:`import_stix` rebuilds the draft.

Only items :func:`~exchange_client.interop._common.exportable_items` lets out are exported; a
withheld, revoked or expired item is absent, not an empty placeholder.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import stix2
import stix2.exceptions
from stix2.properties import (
    BooleanProperty,
    DictionaryProperty,
    ListProperty,
    StringProperty,
)

from exchange.errors import MalformedError, TooLargeError
from exchange.limits import over_limit
from exchange_client._internal.models import OpenedAlert, OpenedItem
from exchange_client.interop._common import (
    ImportResult,
    JsonObject,
    expect_list,
    expect_mapping,
    exportable_items,
    item_mapping,
    parse_json_document,
    strictest_tlp,
    summary_mapping,
)

__all__ = [
    "EXCHANGE_EXTENSION_ID",
    "HANDLING_MARKING_IDS",
    "MAX_BUNDLE_OBJECTS",
    "TLP_MARKING_IDS",
    "bundle_objects",
    "export_stix",
    "import_stix",
]

MAX_BUNDLE_OBJECTS = 10_000
"""The most objects :func:`import_stix` takes from one bundle; a larger one is refused whole."""

# --- markings ----------------------------------------------------------------------------------

_TLP_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP_MARKING_IDS: dict[str, str] = {
    "CLEAR": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "GREEN": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "AMBER": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "AMBER+STRICT": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "RED": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
"""The TLP 2.0 marking definitions as OASIS publishes them (cti-stix-common-objects)."""

# STIX 2.1's predefined TLP 1.0 markings, read on import only (WHITE is 2.0's CLEAR).
_TLP_1_MARKING_IDS = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "CLEAR",
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "GREEN",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "AMBER",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "RED",
}

_FIXED_TIME = "2026-01-01T00:00:00.000Z"
_PRODUCER_ID = "identity--8c0b1f59-3c5e-4b55-9a55-2f3f2d1b6f10"
EXCHANGE_EXTENSION_ID = "extension-definition--4d3c1bb6-6a4a-4d8e-9d0a-6ad1a93e7a51"
"""The ``exchange`` property extension: item id, place in the payload, fields kept for import."""
_HANDLING_EXTENSION_ID = "extension-definition--0b3f7f1e-2f7d-4b0c-8f3e-5c9a4e8d2a61"
HANDLING_MARKING_IDS: dict[str, str] = {
    "H0": "marking-definition--5e1f2c3a-0b4d-4c6e-8f10-3a2b1c0d9e01",
    "H1": "marking-definition--5e1f2c3a-0b4d-4c6e-8f10-3a2b1c0d9e02",
    "H2": "marking-definition--5e1f2c3a-0b4d-4c6e-8f10-3a2b1c0d9e03",
}
"""The handling-code marking definitions of this project (fixed ids, in every bundle that uses
them)."""
_HANDLING_MEANINGS = {
    "H0": "purpose-limited: use only for the purpose it was provided for",
    "H1": "no use in judicial proceedings without the originator's permission",
    "H2": "no onward sharing without the originator's permission",
}
_SCHEMA_TEXT = (
    "Exchange project, docs/INTEROP.md: the interoperability mapping of signed, end-to-end "
    "encrypted precursor-chemical alerts"
)

# New object types, each defined by its own extension definition (STIX 2.1 section 7.3).
_NEW_TYPES: dict[str, tuple[str, str]] = {
    "shipment": ("extension-definition--7a1e0f39-5d52-4c1b-9a1c-0c6b2f0e1a01", "new-sdo"),
    "chemical-substance": ("extension-definition--7a1e0f39-5d52-4c1b-9a1c-0c6b2f0e1a02", "new-sdo"),
    "financial-transaction": (
        "extension-definition--7a1e0f39-5d52-4c1b-9a1c-0c6b2f0e1a03",
        "new-sdo",
    ),
    "shipping-container": ("extension-definition--7a1e0f39-5d52-4c1b-9a1c-0c6b2f0e1a04", "new-sco"),
    "bank-account": ("extension-definition--7a1e0f39-5d52-4c1b-9a1c-0c6b2f0e1a05", "new-sco"),
    "cryptocurrency-wallet": (
        "extension-definition--7a1e0f39-5d52-4c1b-9a1c-0c6b2f0e1a06",
        "new-sco",
    ),
}

_STRINGS = ListProperty(StringProperty)
_SHIPMENT_FIELDS = (
    "declared_description", "suspected_description", "hs_code", "packaging", "containers",
    "bill_of_lading", "air_waybill", "carrier", "voyage", "flight", "origin", "destination",
    "point_of_entry", "route", "dispatch_date", "arrival_date", "status", "quantity",
    "vessel_imo",
)  # fmt: skip
_CHEMICAL_FIELDS = (
    "name", "synonyms", "cas_rn", "control", "national_schedules", "quantity",
    "cover_descriptions", "control_note", "source", "withdrawn",
)  # fmt: skip
_TRANSACTION_FIELDS = (
    "amount", "debtor_agent", "creditor_agent", "value_date", "channel", "uetr",
    "end_to_end_id", "remittance_information", "chain", "from_address", "to_address",
    "transaction_hash", "linked_shipment",
)  # fmt: skip
_LIST_FIELDS = frozenset(
    {"containers", "route", "synonyms", "national_schedules", "cover_descriptions"}
)


def _property_for(name: str) -> Any:
    if name in _LIST_FIELDS:
        return _STRINGS
    if name in ("quantity", "amount"):
        return DictionaryProperty()
    if name == "withdrawn":
        return BooleanProperty()
    return StringProperty()


def _custom_properties(names: Iterable[str]) -> list[tuple[str, Any]]:
    return [(name, _property_for(name)) for name in names]


@stix2.v21.CustomObject(
    "shipment",
    [("name", StringProperty(required=True)), *_custom_properties(_SHIPMENT_FIELDS)],
    extension_name=_NEW_TYPES["shipment"][0],
)
class _Shipment:
    pass


@stix2.v21.CustomObject(
    "chemical-substance",
    _custom_properties(_CHEMICAL_FIELDS),
    extension_name=_NEW_TYPES["chemical-substance"][0],
)
class _ChemicalSubstance:
    pass


@stix2.v21.CustomObject(
    "financial-transaction",
    [("name", StringProperty(required=True)), *_custom_properties(_TRANSACTION_FIELDS)],
    extension_name=_NEW_TYPES["financial-transaction"][0],
)
class _FinancialTransaction:
    pass


@stix2.v21.CustomObservable(
    "shipping-container",
    [("value", StringProperty(required=True))],
    extension_name=_NEW_TYPES["shipping-container"][0],
)
class _ShippingContainer:
    pass


@stix2.v21.CustomObservable(
    "bank-account",
    _custom_properties(("iban", "bic", "account_number", "bank_name", "country")),
    extension_name=_NEW_TYPES["bank-account"][0],
)
class _BankAccount:
    pass


@stix2.v21.CustomObservable(
    "cryptocurrency-wallet",
    [("value", StringProperty(required=True)), ("chain", StringProperty())],
    extension_name=_NEW_TYPES["cryptocurrency-wallet"][0],
)
class _CryptocurrencyWallet:
    pass


_CLASSES: dict[str, Callable[..., Any]] = {
    "shipment": _Shipment,
    "chemical-substance": _ChemicalSubstance,
    "financial-transaction": _FinancialTransaction,
    "shipping-container": _ShippingContainer,
    "bank-account": _BankAccount,
    "cryptocurrency-wallet": _CryptocurrencyWallet,
    "identity": stix2.v21.Identity,
    "location": stix2.v21.Location,
    "note": stix2.v21.Note,
    "artifact": stix2.v21.Artifact,
}
_SCO_TYPES = frozenset({"shipping-container", "bank-account", "cryptocurrency-wallet", "artifact"})


def _tlp_marking(label: str) -> Any:
    return stix2.v21.MarkingDefinition(
        id=TLP_MARKING_IDS[label],
        created="2022-10-01T00:00:00.000Z",
        name=f"TLP:{label}",
        extensions={
            _TLP_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": label.lower()}
        },
    )


def _handling_marking(code: str) -> Any:
    return stix2.v21.MarkingDefinition(
        id=HANDLING_MARKING_IDS[code],
        created=_FIXED_TIME,
        created_by_ref=_PRODUCER_ID,
        name=f"Exchange handling {code}: {_HANDLING_MEANINGS[code]}",
        extensions={
            _HANDLING_EXTENSION_ID: {
                "extension_type": "property-extension",
                "handling_code": code,
            }
        },
    )


def _extension_definition(
    extension_id: str, name: str, extension_type: str, description: str
) -> Any:
    return stix2.v21.ExtensionDefinition(
        id=extension_id,
        created=_FIXED_TIME,
        modified=_FIXED_TIME,
        created_by_ref=_PRODUCER_ID,
        name=name,
        description=description,
        schema=_SCHEMA_TEXT,
        version="1.0",
        extension_types=[extension_type],
    )


def _producer() -> Any:
    return stix2.v21.Identity(
        id=_PRODUCER_ID,
        created=_FIXED_TIME,
        modified=_FIXED_TIME,
        name="Exchange (precursor-chemical intelligence exchange)",
        identity_class="system",
    )


def _definitions_for(used_extensions: Iterable[str]) -> list[Any]:
    """The extension definitions (and their producer) the bundle's objects use."""
    descriptions = {
        EXCHANGE_EXTENSION_ID: (
            "exchange",
            "property-extension",
            ("the alert item an object belongs to, its place in the payload and the payload "
            "fields its STIX properties cannot give back exactly"),
        ),
        _HANDLING_EXTENSION_ID: (
            "exchange-handling",
            "property-extension",
            ("a handling code (H0 purpose-limited, H1 no judicial use, H2 no onward sharing, "
            "each without the originator's permission) as a marking definition"),
        ),
        **{
            extension_id: (type_name, extension_type, f"the {type_name} object type")
            for type_name, (extension_id, extension_type) in _NEW_TYPES.items()
        },
    }
    wanted = set(used_extensions)
    definitions = [
        _extension_definition(extension_id, *descriptions[extension_id])
        for extension_id in descriptions
        if extension_id in wanted
    ]
    return [_producer(), *definitions] if definitions else []


# --- ids and times -----------------------------------------------------------------------------


def _stable_id(object_type: str, *parts: str) -> str:
    """A deterministic UUIDv4-shaped id: the same alert always exports the same ids, so a TAXII
    consumer sees a new version of an object rather than a new object."""
    digest = hashlib.sha256("\x00".join(("exchange", object_type, *parts)).encode()).digest()
    return f"{object_type}--{uuid.UUID(bytes=digest[:16], version=4)}"


def agency_identity_id(agency_id: str) -> str:
    """The ``identity`` id of an agency, the same in every bundle."""
    return _stable_id("identity", "agency", agency_id)


def _stix_time(moment: datetime | None) -> str:
    if moment is None:
        return _FIXED_TIME
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- the node mapping --------------------------------------------------------------------------
#
# Each payload message that becomes an object is a node: ``to_stix`` gives its object type, its
# STIX properties and the names of its fields that become child objects; ``from_stix`` reads the
# payload fields back from the properties.  The fields ``from_stix`` cannot give back exactly are
# kept in the ``exchange`` extension, so a bundle of ours imports to exactly what was exported.

_CHILDREN: dict[str, dict[str, str]] = {
    "Shipment": {
        "chemicals": "Chemical",
        "exporter": "Party",
        "importer": "Party",
        "consignee": "Party",
        "parties": "Party",
    },
    "Party": {"addresses": "Address"},
    "Account": {"holder": "Party", "wallet": "Wallet"},
    "Transaction": {
        "debtor": "Party",
        "creditor": "Party",
        "debtor_account": "Account",
        "creditor_account": "Account",
    },
}
_ROOT_MESSAGES = {
    "shipment": "Shipment",
    "chemical": "Chemical",
    "party": "Party",
    "account": "Account",
    "transaction": "Transaction",
    "attachment": "Attachment",
    "note": "Note",
    "watchlist_entry": "WatchlistEntry",
}
_IDENTITY_CLASSES = {"COMPANY": "organization", "PERSON": "individual"}
_PARTY_KINDS = {value: key for key, value in _IDENTITY_CLASSES.items()}
_REGISTRATION_SCHEMES = ("CN_USCC", "US_EIN", "LEI", "OTHER")
_BANK_FIELDS = ("iban", "bic", "domestic_number", "bank_name", "country")


def _picked(mapping: Mapping[str, Any], names: Iterable[str]) -> JsonObject:
    return {name: mapping[name] for name in names if name in mapping}


def _party_name(mapping: Mapping[str, Any]) -> str:
    names = mapping.get("names") or []
    return str(names[0].get("value", "")) if names else ""


def _contact_text(mapping: Mapping[str, Any]) -> str:
    parts = [
        str(value)
        for contact in mapping.get("contacts") or []
        for value in (contact.get("phone"), contact.get("email"), contact.get("website"))
        if value
    ]
    return "; ".join(parts)


def _to_stix(message: str, mapping: Mapping[str, Any]) -> tuple[str, JsonObject, set[str]]:
    """The object type, STIX properties and child-field names of one payload message."""
    children = set(_CHILDREN.get(message, {}))
    if message == "Shipment":
        name = mapping.get("declared_description") or mapping.get("bill_of_lading") or "shipment"
        return "shipment", {"name": name, **_picked(mapping, _SHIPMENT_FIELDS)}, children
    if message in ("Chemical", "WatchlistEntry"):
        properties = _picked(mapping, _CHEMICAL_FIELDS)
        properties.setdefault("name", mapping.get("cas_rn") or "chemical")
        cas_rn = mapping.get("cas_rn")
        if cas_rn:
            properties["external_references"] = [{"source_name": "cas", "external_id": cas_rn}]
        return "chemical-substance", properties, children
    if message == "Transaction":
        amount = mapping.get("amount") or {}
        name = " ".join(str(amount[k]) for k in ("value", "currency") if k in amount)
        properties = {"name": name or "transaction", **_picked(mapping, _TRANSACTION_FIELDS)}
        return "financial-transaction", properties, children
    if message == "Party":
        properties = {
            "name": _party_name(mapping) or "(unnamed party)",
            "identity_class": _IDENTITY_CLASSES.get(str(mapping.get("kind")), "unknown"),
        }
        if mapping.get("role"):
            properties["roles"] = [str(mapping["role"]).lower()]
        references = [
            {"source_name": number.get("scheme", "OTHER"), "external_id": number["value"]}
            for number in mapping.get("registration_numbers") or []
            if number.get("value")
        ]
        if references:
            properties["external_references"] = references
        contact = _contact_text(mapping)
        if contact:
            properties["contact_information"] = contact
        if not all(address.get("country") for address in mapping.get("addresses") or []):
            children.discard("addresses")  # a location needs a country; keep them inline
        return "identity", properties, children
    if message == "Address":
        lines = mapping.get("lines") or []
        properties = {
            "name": ", ".join(str(p) for p in (*lines, mapping.get("city")) if p) or "address",
            "country": mapping.get("country", ""),
        }
        if lines:
            properties["street_address"] = "\n".join(lines)
        properties.update(_picked(mapping, ("city", "postal_code")))
        return "location", properties, children
    if message == "Account":
        bank = _picked(mapping, _BANK_FIELDS)
        wallet = mapping.get("wallet") or {}
        if not bank and wallet.get("address"):
            children.discard("wallet")  # the account is its wallet
            return "cryptocurrency-wallet", _wallet_properties(wallet), children
        if "domestic_number" in bank:
            bank["account_number"] = bank.pop("domestic_number")
        if not wallet.get("address"):
            children.discard("wallet")
        return "bank-account", bank, children
    if message == "Wallet":
        return "cryptocurrency-wallet", _wallet_properties(mapping), children
    if message == "Note":
        properties = {"content": mapping.get("text") or "(empty note)"}
        if mapping.get("language"):
            properties["lang"] = mapping["language"]
        return "note", properties, children
    if message == "Attachment":
        properties = {"payload_bin": mapping.get("content", "")}
        if mapping.get("media_type"):
            properties["mime_type"] = mapping["media_type"]
        return "artifact", properties, children
    raise ValueError(f"no STIX mapping for {message}")


def _wallet_properties(wallet: Mapping[str, Any]) -> JsonObject:
    properties: JsonObject = {"value": wallet.get("address", "")}
    if wallet.get("chain"):
        properties["chain"] = wallet["chain"]
    return properties


def _wallet_fields(properties: Mapping[str, Any]) -> JsonObject:
    wallet: JsonObject = {}
    if properties.get("chain"):
        wallet["chain"] = properties["chain"]
    if properties.get("value"):
        wallet["address"] = properties["value"]
    return wallet


def _from_stix(message: str, object_type: str, properties: Mapping[str, Any]) -> JsonObject:
    """The payload fields one object's STIX properties give back (see :func:`_to_stix`)."""
    if message == "Shipment":
        return _picked(properties, _SHIPMENT_FIELDS)
    fields: JsonObject
    if message in ("Chemical", "WatchlistEntry"):
        fields = _picked(properties, _CHEMICAL_FIELDS)
        if "cas_rn" not in fields:
            for reference in properties.get("external_references") or []:
                if reference.get("source_name") == "cas" and reference.get("external_id"):
                    fields["cas_rn"] = reference["external_id"]
        return fields
    if message == "Transaction":
        return _picked(properties, _TRANSACTION_FIELDS)
    if message == "Party":
        fields = {}
        if properties.get("roles"):
            fields["role"] = str(properties["roles"][0]).upper()
        kind = _PARTY_KINDS.get(str(properties.get("identity_class")))
        if kind:
            fields["kind"] = kind
        if properties.get("name"):
            fields["names"] = [{"value": properties["name"]}]
        numbers = [
            {"scheme": reference["source_name"], "value": reference["external_id"]}
            for reference in properties.get("external_references") or []
            if reference.get("source_name") in _REGISTRATION_SCHEMES
            and reference.get("external_id")
        ]
        if numbers:
            fields["registration_numbers"] = numbers
        return fields
    if message == "Address":
        fields = _picked(properties, ("city", "postal_code", "country"))
        if properties.get("street_address"):
            fields["lines"] = str(properties["street_address"]).split("\n")
        return fields
    if message == "Account":
        if object_type == "cryptocurrency-wallet":
            return {"wallet": _wallet_fields(properties)}
        fields = _picked(properties, ("iban", "bic", "bank_name", "country"))
        if properties.get("account_number"):
            fields["domestic_number"] = properties["account_number"]
        return fields
    if message == "Wallet":
        return _wallet_fields(properties)
    if message == "Note":
        fields = {"text": properties.get("content", "")}
        if properties.get("lang"):
            fields["language"] = properties["lang"]
        return fields
    if message == "Attachment":
        fields = {"content": properties.get("payload_bin", "")}
        if properties.get("mime_type"):
            fields["media_type"] = properties["mime_type"]
        return fields
    raise ValueError(f"no STIX mapping for {message}")


# --- export ------------------------------------------------------------------------------------


@dataclass
class _ItemObjects:
    """The objects made for one item while walking its payload."""

    alert: OpenedAlert
    item: OpenedItem
    index: int
    markings: list[str]
    objects: list[Any] = field(default_factory=list)
    observables: list[str] = field(default_factory=list)

    @property
    def time(self) -> str:
        return _stix_time(self.alert.published_at or self.alert.created_at)

    def object_id(self, object_type: str, *parts: str) -> str:
        alert = self.alert
        return _stable_id(object_type, alert.originator, alert.alert_id, self.item.id, *parts)

    def add(self, object_type: str, path: str, properties: JsonObject, extension: JsonObject) -> str:
        object_id = self.object_id(object_type, path)
        common: JsonObject = {"id": object_id, "object_marking_refs": self.markings}
        if object_type not in _SCO_TYPES:
            common.update(
                created=self.time,
                modified=self.time,
                created_by_ref=agency_identity_id(self.alert.originator),
            )
            if object_type == "note":
                common["object_refs"] = [report_id(self.alert)]
        else:
            self.observables.append(object_id)
        common["extensions"] = {
            EXCHANGE_EXTENSION_ID: {"extension_type": "property-extension", **extension}
        }
        self.objects.append(_CLASSES[object_type](**properties, **common, allow_custom=False))
        return object_id

    def relate(self, source: str, target: str, relationship_type: str, description: str) -> None:
        self.objects.append(
            stix2.v21.Relationship(
                id=self.object_id("relationship", source, target),
                created=self.time,
                modified=self.time,
                created_by_ref=agency_identity_id(self.alert.originator),
                relationship_type=relationship_type,
                source_ref=source,
                target_ref=target,
                description=description,
                object_marking_refs=self.markings,
                extensions=self.mirror_extension(),
            )
        )

    def mirror_extension(self) -> JsonObject:
        """The extension of an object that only mirrors fields kept elsewhere in the bundle."""
        return {
            EXCHANGE_EXTENSION_ID: {
                "extension_type": "property-extension",
                "item_id": self.item.id,
                "mirror": True,
            }
        }

    def mirror(self, object_type: str, path: str, properties: JsonObject) -> None:
        object_id = self.object_id(object_type, path)
        self.observables.append(object_id)
        self.objects.append(
            _CLASSES[object_type](
                id=object_id,
                object_marking_refs=self.markings,
                extensions=self.mirror_extension(),
                **properties,
            )
        )


def report_id(alert: OpenedAlert) -> str:
    """The ``report`` id of an alert: the same for every version, which are its STIX versions."""
    return _stable_id("report", alert.originator, alert.alert_id)


def _walk(
    target: _ItemObjects, message: str, mapping: Mapping[str, Any], path: str, root: bool
) -> str:
    """Make the object of one node (and of its children); return its id."""
    object_type, properties, children = _to_stix(message, mapping)
    own = {key: value for key, value in mapping.items() if key not in children}
    recovered = _from_stix(message, object_type, properties)
    extension: JsonObject = {"item_id": target.item.id, "path": path, "message": message}
    kept = {key: value for key, value in own.items() if recovered.get(key) != value}
    if kept:
        extension["fields"] = kept
    omitted = sorted(key for key in recovered if key not in own)
    if omitted:
        extension["omit"] = omitted
    if root:
        extension["item_index"] = target.index
        extension["policy"] = item_mapping(target.item)["policy"]
    object_id = target.add(object_type, path, properties, extension)
    for field_name in sorted(children & set(mapping)):
        child_message = _CHILDREN[message][field_name]
        value = mapping[field_name]
        values = value if isinstance(value, list) else [value]
        for index, child in enumerate(values):
            child_path = f"{path}.{field_name}" + (f"[{index}]" if isinstance(value, list) else "")
            child_id = _walk(target, child_message, child, child_path, root=False)
            if child_message == "Address":
                target.relate(object_id, child_id, "located-at", field_name)
            else:
                target.relate(child_id, object_id, "related-to", field_name)
    return object_id


def _item_objects(alert: OpenedAlert, item: OpenedItem, index: int) -> _ItemObjects:
    markings = [TLP_MARKING_IDS[item.policy.tlp]] if item.policy.tlp in TLP_MARKING_IDS else []
    markings += [HANDLING_MARKING_IDS[code] for code in item.policy.handling]
    target = _ItemObjects(alert=alert, item=item, index=index, markings=markings)
    payload = item_mapping(item)
    kind = next((key for key in payload if key in _ROOT_MESSAGES), None)
    if kind is None:
        raise MalformedError(
            f"item {item.id!r} of alert {alert.alert_id} is a joint case's record or entry, "
            "which has no STIX form: export the alerts the case links instead",
            reason="NOT_EXPORTABLE",
        )
    _walk(target, _ROOT_MESSAGES[kind], payload[kind], kind, root=True)
    body = payload[kind]
    if kind == "shipment":
        for position, container in enumerate(body.get("containers") or []):
            target.mirror("shipping-container", f"containers[{position}]", {"value": container})
    if kind == "transaction":
        for name in ("from_address", "to_address"):
            if body.get(name):
                wallet = {"address": body[name], "chain": body.get("chain", "")}
                target.mirror("cryptocurrency-wallet", name, _wallet_properties(wallet))
    if target.observables:
        target.objects.append(
            stix2.v21.ObservedData(
                id=target.object_id("observed-data"),
                created=target.time,
                modified=target.time,
                created_by_ref=agency_identity_id(alert.originator),
                first_observed=target.time,
                last_observed=target.time,
                number_observed=1,
                object_refs=list(target.observables),
                object_marking_refs=markings,
                extensions=target.mirror_extension(),
            )
        )
    return target


def _agency_identity(agency_id: str) -> Any:
    return stix2.v21.Identity(
        id=agency_identity_id(agency_id),
        created=_FIXED_TIME,
        modified=_FIXED_TIME,
        name=agency_id,
        identity_class="organization",
        sectors=["government-national"],
        extensions={
            EXCHANGE_EXTENSION_ID: {"extension_type": "property-extension", "agency": agency_id}
        },
    )


def bundle_objects(alert: OpenedAlert, items: Sequence[OpenedItem]) -> list[Any]:
    """The STIX objects for ``alert`` with exactly ``items`` (already filtered for release).

    Markings, extension definitions and agency identities are included once each; the report
    comes last and refers to everything else.
    """
    per_item = [_item_objects(alert, item, index) for index, item in enumerate(items)]
    item_objects = [obj for target in per_item for obj in target.objects]
    agencies = sorted({alert.originator, *(a for item in items for a in item.policy.audience)})
    identities = [_agency_identity(agency) for agency in agencies]
    tlp = strictest_tlp(items)
    summary = summary_mapping(alert)
    summary_extension: JsonObject = {
        "extension_type": "property-extension",
        "alert": {
            "originator": alert.originator,
            "alert_id": alert.alert_id,
            "version": alert.version,
            **{key: value for key, value in summary.items() if key != "title"},
        },
    }
    time = _stix_time(alert.published_at or alert.created_at)
    refs = [obj.id for obj in item_objects] or [agency_identity_id(alert.originator)]
    report = stix2.v21.Report(
        id=report_id(alert),
        created=_stix_time(alert.created_at or alert.published_at),
        modified=time,
        published=time,
        created_by_ref=agency_identity_id(alert.originator),
        name=alert.title or f"Exchange alert {alert.alert_id}",
        description=(
            f"Exchange alert {alert.originator}/{alert.alert_id} version {alert.version}"
            + (f", kind {alert.kind}" if alert.kind else "")
            + (f", grading {alert.grading}" if alert.grading else "")
        ),
        report_types=["threat-report"],
        object_refs=refs,
        object_marking_refs=[TLP_MARKING_IDS[tlp]] if tlp else [],
        extensions={EXCHANGE_EXTENSION_ID: summary_extension},
    )
    used_tlp = sorted({item.policy.tlp for item in items if item.policy.tlp in TLP_MARKING_IDS})
    used_handling = sorted({code for item in items for code in item.policy.handling})
    markings = [_tlp_marking(label) for label in used_tlp]
    markings += [_handling_marking(code) for code in used_handling]
    extensions_used = {EXCHANGE_EXTENSION_ID}
    if used_handling:
        extensions_used.add(_HANDLING_EXTENSION_ID)
    extensions_used |= {
        _NEW_TYPES[obj["type"]][0] for obj in item_objects if obj["type"] in _NEW_TYPES
    }
    return [
        *markings,
        *_definitions_for(extensions_used),
        *identities,
        *item_objects,
        report,
    ]


def export_stix(alerts: Iterable[OpenedAlert], *, now: datetime) -> JsonObject:
    """One STIX 2.1 bundle (as JSON data) of ``alerts``, with the items that may leave at ``now``.

    Objects shared between alerts (markings, definitions, agency identities) appear once.
    """
    objects: dict[str, Any] = {}
    for alert in alerts:
        for obj in bundle_objects(alert, exportable_items(alert, now=now)):
            objects.setdefault(obj.id, obj)
    bundle = stix2.v21.Bundle(objects=list(objects.values()), allow_custom=True)
    result: JsonObject = json.loads(bundle.serialize())
    return result


# --- import ------------------------------------------------------------------------------------

_FOREIGN_MESSAGES = {
    "identity": ("party", "Party"),
    "bank-account": ("account", "Account"),
    "cryptocurrency-wallet": ("account", "Account"),
    "note": ("note", "Note"),
    "artifact": ("attachment", "Attachment"),
    "shipment": ("shipment", "Shipment"),
    "chemical-substance": ("chemical", "Chemical"),
    "financial-transaction": ("transaction", "Transaction"),
}
_STRUCTURAL_TYPES = frozenset({"marking-definition", "extension-definition", "language-content"})


def _check_object(value: object, index: int) -> Mapping[str, Any]:
    where = f"objects[{index}]"
    obj = expect_mapping(value, where)
    object_type, object_id = obj.get("type"), obj.get("id")
    if not isinstance(object_type, str) or not isinstance(object_id, str):
        raise MalformedError(f"{where}: a STIX object needs a string type and id")
    try:
        stix2.parse(dict(obj), allow_custom=True, version="2.1")
    except (stix2.exceptions.STIXError, ValueError, TypeError, KeyError) as e:
        raise MalformedError(f"{where} ({object_id}): not a valid STIX 2.1 object: {e}") from e
    return obj


def _exchange_extension(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    extensions = obj.get("extensions")
    if not isinstance(extensions, Mapping):
        return None
    extension = extensions.get(EXCHANGE_EXTENSION_ID)
    return extension if isinstance(extension, Mapping) else None


def _policy_from_markings(obj: Mapping[str, Any]) -> JsonObject:
    policy: JsonObject = {"release": "IMMEDIATE"}
    tlp_by_id = {marking: label for label, marking in TLP_MARKING_IDS.items()}
    handling_by_id = {marking: code for code, marking in HANDLING_MARKING_IDS.items()}
    handling = []
    for marking in obj.get("object_marking_refs") or []:
        label = tlp_by_id.get(marking) or _TLP_1_MARKING_IDS.get(marking)
        if label:
            policy["tlp"] = label
        if marking in handling_by_id:
            handling.append(handling_by_id[marking])
    if handling:
        policy["handling"] = sorted(handling)
    return policy


def _place(root: JsonObject, path: str, value: JsonObject) -> None:
    """Set ``value`` at ``path`` (``shipment.parties[1].addresses[0]``) inside ``root``."""
    steps = path.split(".")
    current: Any = root
    for position, step in enumerate(steps):
        name, _, rest = step.partition("[")
        last = position == len(steps) - 1
        if rest:
            index = int(rest.rstrip("]"))
            values = current.setdefault(name, [])
            while len(values) <= index:
                values.append({})
            if last:
                values[index].update(value)
            current = values[index]
        else:
            if last:
                current.setdefault(name, {}).update(value)
            current = current.setdefault(name, {})


_PATH_STEP = r"[a-z_]+(\[\d{1,4}\])?"


def _checked_path(path: object, where: str) -> str:
    if not isinstance(path, str) or not re.fullmatch(rf"{_PATH_STEP}(\.{_PATH_STEP}){{0,8}}", path):
        raise MalformedError(f"{where}: the exchange extension's path {path!r} is not a field path")
    return path


def import_stix(data: bytes) -> ImportResult:
    """A draft from a STIX 2.1 bundle (the bytes of its JSON).

    Objects exported by :func:`export_stix` come back as the items they were made from; other
    objects are mapped by type where a payload kind fits (an identity to a party, a bank
    account or wallet to an account, a note, an artifact), and everything else is listed in the
    warnings.  A bundle of more than :data:`MAX_BUNDLE_OBJECTS` objects is refused.
    """
    document = parse_json_document(data, what="STIX bundle")
    if document.get("type") != "bundle":
        raise MalformedError("the file is not a STIX bundle: its type is not \"bundle\"")
    objects = expect_list(document.get("objects", []), "objects")
    if len(objects) > MAX_BUNDLE_OBJECTS:
        raise TooLargeError(
            over_limit(len(objects), MAX_BUNDLE_OBJECTS, "objects", what="the bundle", verb="has")
            + " at once: split it"
        )
    checked = [_check_object(value, index) for index, value in enumerate(objects)]
    warnings: list[str] = []
    summary: JsonObject = {}
    items: dict[str, tuple[int, JsonObject]] = {}
    foreign_count: dict[str, int] = {}
    for index, obj in enumerate(checked):
        object_type, object_id = obj["type"], obj["id"]
        extension = _exchange_extension(obj)
        where = f"objects[{index}] ({object_id})"
        if object_type in _STRUCTURAL_TYPES:
            continue
        if extension is not None and (extension.get("mirror") or "agency" in extension):
            continue  # a projection of fields the bundle keeps elsewhere
        if object_type == "identity" and obj["id"] == _PRODUCER_ID:
            continue
        if object_type == "report":
            if summary:
                warnings.append(f"{where}: a second report; only the first one's title is used")
                continue
            alert = (extension or {}).get("alert")
            summary = {"title": obj.get("name", "")}
            if isinstance(alert, Mapping):
                summary.update(
                    {
                        key: alert[key]
                        for key in ("kind", "grading", "operator")
                        if key in alert
                    }
                )
            continue
        if extension is not None and "item_id" in extension:
            _import_node(obj, extension, where, items)
            continue
        if object_type in _FOREIGN_MESSAGES:
            kind, message = _FOREIGN_MESSAGES[object_type]
            count = foreign_count[kind] = foreign_count.get(kind, 0) + 1
            fields = _from_stix(message, object_type, obj)
            items[f"{kind}-{count}"] = (
                len(checked) + index,
                {"id": f"{kind}-{count}", "policy": _policy_from_markings(obj), kind: fields},
            )
            continue
        warnings.append(f"{where}: {object_type} objects have no place in an alert draft; not imported")
    draft: JsonObject = {"kind": summary.pop("kind", "GENERAL"), **summary}
    draft["items"] = [item for _, item in sorted(items.values(), key=lambda pair: pair[0])]
    return ImportResult(draft=draft, warnings=tuple(warnings))


def _import_node(
    obj: Mapping[str, Any],
    extension: Mapping[str, Any],
    where: str,
    items: dict[str, tuple[int, JsonObject]],
) -> None:
    item_id = extension.get("item_id")
    message = extension.get("message")
    if not isinstance(item_id, str) or message not in {*_ROOT_MESSAGES.values(), "Address", "Wallet"}:
        raise MalformedError(f"{where}: the exchange extension names no item or message")
    path = _checked_path(extension.get("path"), where)
    fields = _from_stix(str(message), obj["type"], obj)
    for key in extension.get("omit") or []:
        fields.pop(key, None)
    kept = extension.get("fields") or {}
    fields.update(expect_mapping(kept, f"{where}: fields"))
    index, item = items.get(item_id, (0, {"id": item_id}))
    if "policy" in extension:
        item["policy"] = dict(expect_mapping(extension["policy"], f"{where}: policy"))
        position = extension.get("item_index")
        index = position if isinstance(position, int) else index
    _place(item, path, fields)
    items[item_id] = (index, item)
