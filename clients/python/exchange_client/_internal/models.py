"""The domain objects the client returns: frozen, typed, and free of protobuf except payloads.

Each has ``to_json()``, the snake_case form the CLI prints with ``--json`` (DESIGN §12), so a
script reading the CLI and a program using the library see the same names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, timestamp_pb2

from exchange.v1 import alerts_pb2, payloads_pb2, statements_pb2

JsonObject = dict[str, Any]

_Policy = statements_pb2.ReleasePolicy

TLP_NAMES: dict[int, str] = {
    _Policy.TLP_CLEAR: "CLEAR",
    _Policy.TLP_GREEN: "GREEN",
    _Policy.TLP_AMBER: "AMBER",
    _Policy.TLP_AMBER_STRICT: "AMBER+STRICT",
    _Policy.TLP_RED: "RED",
}
"""TLP 2.0 labels as people write them (``AMBER+STRICT``), by protobuf enum value."""

HEARTBEAT = "HEARTBEAT"
"""The ``FeedEvent.kind`` of a heartbeat, which :meth:`Client.subscribe` yields on request."""


def rfc3339(moment: datetime | None) -> str | None:
    """``2025-03-01T12:00:00Z``: a UTC timestamp in the form RFC 3339 and protobuf JSON use."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def timestamp_or_none(message: Any, name: str) -> datetime | None:
    """The aware UTC datetime of timestamp field ``name`` of ``message``, or None when unset."""
    if not message.HasField(name):
        return None
    value: timestamp_pb2.Timestamp = getattr(message, name)
    return value.ToDatetime(tzinfo=UTC)


def grading_label(grading: payloads_pb2.Grading) -> str | None:
    """The Admiralty grading as one label, source letter then information digit (``B2``)."""
    if grading.source == payloads_pb2.Grading.SOURCE_UNSPECIFIED:
        return None
    source = payloads_pb2.Grading.Source.Name(grading.source).removeprefix("SOURCE_")
    if grading.information == payloads_pb2.Grading.INFORMATION_UNSPECIFIED:
        return source
    information = payloads_pb2.Grading.Information.Name(grading.information)
    return source + information.removeprefix("INFORMATION_")


@dataclass(frozen=True)
class ItemPolicy:
    """An item's release policy as signed in its header (DESIGN §5), in readable names."""

    audience: tuple[str, ...]
    release: str | None
    tlp: str | None
    handling: tuple[str, ...]
    embargo_until: datetime | None = None
    expires_at: datetime | None = None

    @classmethod
    def from_proto(cls, policy: statements_pb2.ReleasePolicy) -> ItemPolicy:
        """Names for the enum values of a signed policy (``AMBER+STRICT``, ``ON_REQUEST``, ``H2``)."""
        release = (
            None
            if policy.release == _Policy.RELEASE_UNSPECIFIED
            else _Policy.Release.Name(policy.release)
        )
        return cls(
            audience=tuple(policy.audience),
            release=release,
            tlp=TLP_NAMES.get(policy.tlp),
            handling=tuple(_Policy.Handling.Name(code) for code in policy.handling),
            embargo_until=timestamp_or_none(policy, "embargo_until"),
            expires_at=timestamp_or_none(policy, "expires_at"),
        )

    def to_json(self) -> JsonObject:
        """``{"audience", "release", "tlp", "handling", "embargo_until", "expires_at"}``."""
        return {
            "audience": list(self.audience),
            "release": self.release,
            "tlp": self.tlp,
            "handling": list(self.handling),
            "embargo_until": rfc3339(self.embargo_until),
            "expires_at": rfc3339(self.expires_at),
        }


def payload_to_json(payload: payloads_pb2.ItemPayload) -> JsonObject:
    """Protobuf JSON of a payload with the proto's snake_case field names."""
    result: JsonObject = json_format.MessageToDict(payload, preserving_proto_field_name=True)
    return result


@dataclass(frozen=True)
class Receipt:
    """The hub's acknowledgement of a published alert version."""

    originator: str
    alert_id: str
    version: int
    manifest_hash: bytes
    log_index: int
    accepted_at: datetime | None
    notified: tuple[str, ...]
    flags: tuple[str, ...] = ()
    """Watchlist matches found in the draft before it was sealed (warnings, not errors)."""

    def to_json(self) -> JsonObject:
        """The receipt for scripts, the manifest hash in hex."""
        return {
            "originator": self.originator,
            "alert_id": self.alert_id,
            "version": self.version,
            "manifest_hash": self.manifest_hash.hex(),
            "log_index": self.log_index,
            "accepted_at": rfc3339(self.accepted_at),
            "notified": list(self.notified),
            "flags": list(self.flags),
        }


@dataclass(frozen=True)
class OpenedItem:
    """One item of an opened alert: its signed policy, its status for us, its payload if visible.

    ``status`` is one of ``VISIBLE``, ``WITHHELD``, ``EMBARGOED``, ``REVOKED``, ``EXPIRED`` and
    ``INVALID`` (decrypted, but failing validation: ``detail`` says why and ``payload`` is kept
    so that it can be inspected).  ``flags`` are watchlist matches in a decrypted payload.
    """

    id: str
    status: str
    policy: ItemPolicy
    payload: payloads_pb2.ItemPayload | None = None
    detail: str = ""
    flags: tuple[str, ...] = ()
    header_hash: bytes = b""

    @property
    def payload_kind(self) -> str | None:
        """Which payload the item carries (``shipment``, ``note``, ...), when decrypted."""
        return None if self.payload is None else self.payload.WhichOneof("body")

    def to_json(self) -> JsonObject:
        """``{"id", "status", "policy"}``, plus ``payload`` only when the item is ``VISIBLE``."""
        result: JsonObject = {"id": self.id, "status": self.status, "policy": self.policy.to_json()}
        if self.status == "VISIBLE" and self.payload is not None:
            result["payload"] = payload_to_json(self.payload)
        if self.detail:
            result["detail"] = self.detail
        if self.flags:
            result["flags"] = list(self.flags)
        return result


@dataclass(frozen=True)
class OpenedAlert:
    """An alert version verified and decrypted as far as this agency may.

    ``kind``, ``title``, ``grading`` and ``operator`` come from the encrypted summary item and are
    None (or empty) when it could not be opened.
    """

    alert_id: str
    originator: str
    version: int
    kind: str | None
    title: str | None
    grading: str | None
    operator: str
    manifest_hash: bytes
    published_at: datetime | None
    created_at: datetime | None
    items: tuple[OpenedItem, ...]
    versions: tuple[int, ...] = ()
    retracted: bool = False
    previous_manifest_hash: bytes = b""
    summary_detail: str = ""
    """Why the summary is missing when it decrypted but failed validation."""
    untrusted: bool = False
    """Its manifest verifies only under a key its agency marks compromised from before then."""
    untrusted_reason: str = ""
    """Which key, compromised since when, when ``untrusted``."""

    def item(self, item_id: str) -> OpenedItem:
        """The item named ``item_id``; ``KeyError`` if the alert has none we may see."""
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    @property
    def flags(self) -> tuple[str, ...]:
        """Every watchlist flag of every decrypted item."""
        return tuple(flag for item in self.items for flag in item.flags)

    def to_json(self) -> JsonObject:
        """The ``show --json`` object: alert fields and every item with its status and policy."""
        return {
            "alert_id": self.alert_id,
            "originator": self.originator,
            "version": self.version,
            "kind": self.kind,
            "title": self.title,
            "grading": self.grading,
            "operator": self.operator,
            "manifest_hash": self.manifest_hash.hex(),
            "published_at": rfc3339(self.published_at),
            "versions": list(self.versions),
            "retracted": self.retracted,
            "flags": list(self.flags),
            "summary_detail": self.summary_detail,
            "untrusted": self.untrusted,
            "untrusted_reason": self.untrusted_reason,
            "items": [item.to_json() for item in self.items],
        }


@dataclass(frozen=True)
class InboxEntry:
    """An alert version addressed to this agency, as listed by the hub.

    ``title`` and ``kind`` are filled in when the summary item opened; ``problem`` says why it
    did not (empty when it did, or when there was nothing to open).
    """

    originator: str
    alert_id: str
    version: int
    manifest_hash: bytes
    published_at: datetime | None
    items_visible: int
    items_granted: int
    items_total: int
    retracted: bool = False
    title: str | None = None
    kind: str | None = None
    problem: str = ""
    untrusted: bool = False
    """Signed by a key its agency marks compromised from before then (see ``untrusted_reason``)."""
    untrusted_reason: str = ""

    def to_json(self) -> JsonObject:
        """The entry for scripts (``inbox --json`` prints a list of these)."""
        return {
            "originator": self.originator,
            "alert_id": self.alert_id,
            "version": self.version,
            "manifest_hash": self.manifest_hash.hex(),
            "published_at": rfc3339(self.published_at),
            "items_visible": self.items_visible,
            "items_granted": self.items_granted,
            "items_total": self.items_total,
            "retracted": self.retracted,
            "title": self.title,
            "kind": self.kind,
            "problem": self.problem,
            "untrusted": self.untrusted,
            "untrusted_reason": self.untrusted_reason,
        }


@dataclass(frozen=True)
class FeedEvent:
    """One event of this agency's feed, or (kind ``HEARTBEAT``) a heartbeat from the hub.

    For a heartbeat ``sequence`` is the agency's latest sequence as the hub states it, and
    ``checkpoint`` the latest signed checkpoint note when the hub has one.
    """

    sequence: int
    kind: str
    originator: str = ""
    alert_id: str = ""
    version: int = 0
    item_id: str = ""
    created_at: datetime | None = None
    log_index: int = 0
    request_id: str = ""
    actor: str = ""
    checkpoint: str = field(default="", repr=False)

    @property
    def is_heartbeat(self) -> bool:
        """True for a heartbeat, which carries no event to process."""
        return self.kind == HEARTBEAT

    @classmethod
    def from_proto(cls, event: alerts_pb2.FeedEvent) -> FeedEvent:
        """A feed event from its wire form."""
        return cls(
            sequence=event.sequence,
            kind=alerts_pb2.FeedEvent.Kind.Name(event.kind),
            originator=event.originator,
            alert_id=event.alert_id,
            version=event.version,
            item_id=event.item_id,
            created_at=timestamp_or_none(event, "created_at"),
            log_index=event.log_index,
            request_id=event.request_id,
            actor=event.actor,
        )

    @classmethod
    def from_heartbeat(cls, heartbeat: alerts_pb2.Heartbeat) -> FeedEvent:
        """A heartbeat as a feed entry of kind ``HEARTBEAT``."""
        return cls(
            sequence=heartbeat.latest_sequence,
            kind=HEARTBEAT,
            created_at=timestamp_or_none(heartbeat, "time"),
            log_index=heartbeat.latest_log_index,
            checkpoint=heartbeat.checkpoint,
        )

    def to_json(self) -> JsonObject:
        """One line of ``watch --json``."""
        if self.is_heartbeat:
            return {
                "kind": self.kind,
                "latest_sequence": self.sequence,
                "time": rfc3339(self.created_at),
                "latest_log_index": self.log_index,
            }
        return {
            "sequence": self.sequence,
            "kind": self.kind,
            "originator": self.originator,
            "alert_id": self.alert_id,
            "version": self.version,
            "item_id": self.item_id,
            "created_at": rfc3339(self.created_at),
            "log_index": self.log_index,
            "request_id": self.request_id,
            "actor": self.actor,
        }


@dataclass(frozen=True)
class AgencyInfo:
    """An agency on the exchange and whether its keys verified against its CA in our profile.

    ``verified`` is False when the profile holds no CA certificate for the agency, or when its
    key statements do not verify against it; ``problem`` then says which.  Such an agency is
    never encrypted to.
    """

    agency_id: str
    key_number: int
    signing_key_fingerprint: str
    encryption_key_fingerprint: str
    revoked: bool
    verified: bool
    problem: str = ""
    ca_fingerprint: str = ""
    notice: str = ""
    """Set when the agency rotated its keys since this profile last looked."""
    tampered: bool = False
    """Its key sequence was refused: a gap, a fork, a rollback or a forged rotation."""

    def to_json(self) -> JsonObject:
        """The agency for scripts (``agencies --json`` prints a list of these)."""
        return {
            "agency_id": self.agency_id,
            "key_number": self.key_number,
            "signing_key_fingerprint": self.signing_key_fingerprint,
            "encryption_key_fingerprint": self.encryption_key_fingerprint,
            "ca_fingerprint": self.ca_fingerprint,
            "revoked": self.revoked,
            "verified": self.verified,
            "problem": self.problem,
            "notice": self.notice,
            "tampered": self.tampered,
        }


@dataclass(frozen=True)
class ReleaseRequest:
    """A request to release a withheld item, as the originator or the requester sees it.

    ``status`` is ``PENDING``, ``APPROVED`` or ``DENIED``; ``decision_reason`` is the
    originator's reason for a denial.  ``release_to`` names the third agency of an onward
    request (empty: the requester itself).
    """

    request_id: str
    originator: str
    alert_id: str
    version: int
    item_id: str
    requester: str
    reason: str
    release_to: str = ""
    created_at: datetime | None = None
    status: str = "PENDING"
    decision_reason: str = ""
    log_index: int = 0

    @property
    def target(self) -> str:
        """The agency the item would be released to."""
        return self.release_to or self.requester

    def to_json(self) -> JsonObject:
        """One object of ``requests --json``."""
        return {
            "request_id": self.request_id,
            "alert_id": self.alert_id,
            "item_id": self.item_id,
            "requester": self.requester,
            "reason": self.reason,
            "originator": self.originator,
            "version": self.version,
            "release_to": self.release_to,
            "created_at": rfc3339(self.created_at),
            "status": self.status,
            "decision_reason": self.decision_reason,
        }


@dataclass(frozen=True)
class StatementResult:
    """The hub's acknowledgement of a signed statement this agency sent.

    ``kind`` is ``DECISION``, ``REVOCATION``, ``RETRACTION``, ``FEEDBACK``, ``RECEIPT`` or
    ``PURGE_ACK``; ``outcome`` is the decision (``APPROVED``/``DENIED``) or the feedback outcome.
    """

    kind: str
    originator: str
    alert_id: str
    version: int
    log_index: int
    item_id: str = ""
    request_id: str = ""
    agency: str = ""
    outcome: str = ""
    grants_deleted: int = 0

    def to_json(self) -> JsonObject:
        """The acknowledgement for scripts."""
        return {
            "kind": self.kind,
            "originator": self.originator,
            "alert_id": self.alert_id,
            "version": self.version,
            "item_id": self.item_id,
            "request_id": self.request_id,
            "agency": self.agency,
            "outcome": self.outcome,
            "grants_deleted": self.grants_deleted,
            "log_index": self.log_index,
        }


@dataclass(frozen=True)
class DeliveryRecord:
    """What a recipient signed about one of this agency's alerts, verified and decrypted.

    ``kind`` is ``RECEIPT`` (``opened`` and ``withheld`` name item ids; a withheld item is the
    recipient's complaint that it saw the header only), ``PURGE_ACK`` (``item_id`` was deleted
    after a revocation) or ``FEEDBACK`` (``outcome`` and ``note``, decrypted here).
    """

    kind: str
    agency: str
    alert_id: str
    version: int
    created_at: datetime | None
    opened: tuple[str, ...] = ()
    withheld: tuple[str, ...] = ()
    item_id: str = ""
    outcome: str = ""
    note: str = ""

    def to_json(self) -> JsonObject:
        """One object of ``receipts --json``."""
        return {
            "kind": self.kind,
            "agency": self.agency,
            "alert_id": self.alert_id,
            "version": self.version,
            "created_at": rfc3339(self.created_at),
            "opened": list(self.opened),
            "withheld": list(self.withheld),
            "item_id": self.item_id,
            "outcome": self.outcome,
            "note": self.note,
        }
