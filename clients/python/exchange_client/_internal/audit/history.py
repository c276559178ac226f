"""``exchange audit history``'s rules, pure: which log entries concern an alert, and how each
reads (its kind, its signer, what it says). The auditor fetches the leaves and bodies."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from google.protobuf.message import Message

from exchange.audit import leaves
from exchange.audit.leaves import LeafContents, references_commitment
from exchange.crypto.dsse import Envelope, verify_envelope
from exchange.crypto.keys import VerifyKey
from exchange.errors import UnknownKeyError, VerificationError
from exchange.statements.codec import PAYLOAD_TYPES, envelope_from_proto, parse_canonical
from exchange.v1 import alerts_pb2, audit_pb2, statements_pb2
from exchange_client._internal.audit.results import HistoryEntry

_STATEMENT_MESSAGES: dict[str, type[Message]] = {
    leaves.ALERT_PUBLISHED: statements_pb2.AlertManifest,
    leaves.AGENCY_KEYS: statements_pb2.AgencyKeys,
    leaves.RELEASE_REQUEST: statements_pb2.ReleaseRequest,
    leaves.RELEASE_DECISION: statements_pb2.ReleaseDecision,
    leaves.REVOCATION: statements_pb2.Revocation,
    leaves.RETRACTION: statements_pb2.Retraction,
    leaves.RECEIPT: statements_pb2.Receipt,
    leaves.PURGE_ACK: statements_pb2.PurgeAck,
    leaves.FEEDBACK: statements_pb2.Feedback,
}

_HISTORY_KINDS = {
    leaves.ALERT_PUBLISHED: "publication",
    leaves.FEED_EVENT: "delivery",
    leaves.RELEASE_REQUEST: "request",
    leaves.RELEASE_DECISION: "decision",
    leaves.REVOCATION: "revocation",
    leaves.RETRACTION: "retraction",
    leaves.RECEIPT: "receipt",
    leaves.PURGE_ACK: "purge",
    leaves.FEEDBACK: "feedback",
    leaves.GRANT_DELIVERED: "delivery",
    leaves.EMBARGO_LAPSED: "embargo lapse",
    leaves.ITEM_PURGED: "purge",
}


@dataclass(frozen=True)
class _ParsedEntry:
    entry_type: str
    envelope: Envelope | None = None
    message: Message | None = None


def _parse_entry(entry_type: str, body: bytes) -> _ParsedEntry:
    """The statement or event inside a body, unverified (the signature is checked later)."""
    if entry_type == leaves.FEED_EVENT:
        return _ParsedEntry(
            entry_type, message=parse_canonical(alerts_pb2.FeedEvent, body, what="feed event")
        )
    if entry_type == leaves.GRANT_DELIVERED:
        return _ParsedEntry(
            entry_type, message=parse_canonical(statements_pb2.Grant, body, what="grant")
        )
    message_type = _STATEMENT_MESSAGES.get(entry_type)
    if message_type is None:
        return _ParsedEntry(entry_type)
    envelope = envelope_from_proto(
        parse_canonical(statements_pb2.Envelope, body, what=f"{entry_type} statement")
    )
    message = parse_canonical(message_type, envelope.payload, what=f"{entry_type} statement")
    return _ParsedEntry(entry_type, envelope=envelope, message=message)


def _signer(
    entry_type: str, envelope: Envelope, signing_keys: Mapping[str, Sequence[VerifyKey]]
) -> str:
    payload_type = PAYLOAD_TYPES[
        "alert_manifest" if entry_type == leaves.ALERT_PUBLISHED else entry_type
    ]
    for agency, keys in signing_keys.items():
        try:
            verify_envelope(
                envelope, expected_type=payload_type, keys={key.key_id: key for key in keys}
            )
        except UnknownKeyError:
            continue
        return agency
    raise UnknownKeyError(f"the {entry_type} statement is signed by no key of a known agency")


def _history_entry(
    index: int,
    contents: LeafContents,
    entry: _ParsedEntry,
    signing_keys: Mapping[str, Sequence[VerifyKey]],
    reader: str,
) -> HistoryEntry:
    message = entry.message
    kind = _HISTORY_KINDS.get(contents.entry_type, contents.entry_type)
    about = functools.partial(
        HistoryEntry,
        index=index,
        logged_at=contents.logged_at,
        entry_type=contents.entry_type,
        kind=kind,
    )
    version = int(getattr(message, "version", 0) or 0)
    item_id = str(getattr(message, "item_id", "") or "")
    if entry.envelope is not None:
        signer = _signer(contents.entry_type, entry.envelope, signing_keys)
        details = [f"item {item_id}"] if item_id else []
        if isinstance(message, statements_pb2.ReleaseDecision | statements_pb2.Retraction):
            details.append(message.reason)
        return about(
            signed_by=signer,
            version=version,
            agency=signer,
            detail="; ".join(d for d in details if d),
        )
    if isinstance(message, alerts_pb2.FeedEvent):
        event_kind = alerts_pb2.FeedEvent.Kind.Name(message.kind)
        detail = f"{event_kind} (feed event {message.sequence} of {reader})"
        if item_id:
            detail += f", item {item_id}"
        return about(
            signed_by="",
            version=version,
            agency=reader,
            detail=detail,
        )
    if isinstance(message, statements_pb2.Grant):
        return about(
            signed_by="",
            agency=message.recipient,
            detail=f"key of item {message.item_id} delivered to {message.recipient}",
        )
    return about(
        signed_by="",
    )


def history_entries(
    log_leaves: Sequence[audit_pb2.Leaf],
    bodies: Mapping[int, audit_pb2.EntryBody],
    alert_id: str,
    signing_keys: Mapping[str, Sequence[VerifyKey]],
    *,
    reader: str,
) -> list[HistoryEntry]:
    """The entries among ``log_leaves`` (with the ``bodies`` ``reader`` may see) about
    ``alert_id``, oldest first; see :meth:`Auditor.history`."""
    contents: dict[int, LeafContents] = {}
    for leaf in log_leaves:
        body = bodies.get(leaf.index)
        if body is None:
            continue
        decoded = LeafContents.decode(bytes(leaf.data))
        if hashlib.sha256(bytes(body.body)).digest() != decoded.body_sha256:
            raise VerificationError(
                f"log entry {leaf.index}: the body the hub serves does not hash to its leaf",
                reason="BODY_MISMATCH",
            )
        contents[leaf.index] = decoded
    parsed = {
        index: _parse_entry(contents[index].entry_type, bytes(bodies[index].body))
        for index in contents
    }
    versions = {
        (str(getattr(message, "originator", "")), str(getattr(message, "version", "")))
        for message in (p.message for p in parsed.values())
        if message is not None and getattr(message, "alert_id", None) == alert_id
    }
    entries = []
    for index, entry in parsed.items():
        leaf_contents = contents[index]
        salt = bytes(bodies[index].salt)
        message = entry.message
        about = message is not None and getattr(message, "alert_id", None) == alert_id
        logged_version = 0
        if not about and leaf_contents.entry_type != leaves.FEED_EVENT:
            for originator, version in versions:
                if (
                    references_commitment(salt, [originator, alert_id, version])
                    == leaf_contents.references_commitment
                ):
                    about, logged_version = True, int(version)
                    break
        if about:
            history_entry = _history_entry(index, leaf_contents, entry, signing_keys, reader)
            if not history_entry.version:
                history_entry = replace(history_entry, version=logged_version)
            entries.append(history_entry)
    return sorted(entries, key=lambda e: e.index)
