"""Exact-bytes handling shared by every statement: payload types, canonical parsing, hashing.

A statement is verified as the bytes its signer signed, then parsed from those same bytes.  We
require the canonical (deterministic) protobuf encoding: re-encoding the parsed message must give
back exactly the signed bytes.  That one check rejects unknown fields (they would be dropped or
re-ordered), duplicated fields and any other ambiguous encoding, so two verifiers can never read
one signed statement two ways.
"""

from __future__ import annotations

import hashlib
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from exchange.crypto.dsse import Envelope, Signature
from exchange.errors import MalformedError
from exchange.v1 import statements_pb2

PAYLOAD_TYPE_PREFIX = "application/vnd.exchange."

# Statement kind -> payload type.  Verification checks the type against the kind expected, so a
# signed receipt can never be presented as a manifest.
PAYLOAD_TYPES: dict[str, str] = {
    "agency_keys": "application/vnd.exchange.agency-keys.v1+protobuf",
    "alert_manifest": "application/vnd.exchange.alert-manifest.v1+protobuf",
    "release_request": "application/vnd.exchange.release-request.v1+protobuf",
    "release_decision": "application/vnd.exchange.release-decision.v1+protobuf",
    "revocation": "application/vnd.exchange.revocation.v1+protobuf",
    "retraction": "application/vnd.exchange.retraction.v1+protobuf",
    "receipt": "application/vnd.exchange.receipt.v1+protobuf",
    "purge_ack": "application/vnd.exchange.purge-ack.v1+protobuf",
    "feedback": "application/vnd.exchange.feedback.v1+protobuf",
    "match_policy": "application/vnd.exchange.match-policy.v1+protobuf",
    "cooperation_summary": "application/vnd.exchange.cooperation-summary.v1+protobuf",
}

M = TypeVar("M", bound=Message)


def sha256(data: bytes) -> bytes:
    """SHA-256 digest; the hash used for every commitment and reference in the exchange."""
    return hashlib.sha256(data).digest()


def encode(message: Message) -> bytes:
    """The canonical encoding that signers sign and verifiers insist on."""
    return message.SerializeToString(deterministic=True)


def parse_canonical(message_type: type[M], data: bytes, *, what: str) -> M:
    """Parse ``data`` as ``message_type``, refusing anything but its canonical encoding."""
    message = message_type()
    try:
        message.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise MalformedError(f"{what} does not parse as {message_type.__name__}") from e
    # Python protobuf keeps unknown fields and writes them back; drop them so they cannot
    # survive the comparison below.
    message.DiscardUnknownFields()
    if encode(message) != data:
        raise MalformedError(
            f"{what} is not the canonical encoding of {message_type.__name__} "
            "(unknown or repeated fields)",
            reason="NON_CANONICAL",
        )
    return message


def envelope_to_proto(envelope: Envelope) -> statements_pb2.Envelope:
    """The wire form of a DSSE envelope."""
    return statements_pb2.Envelope(
        payload=envelope.payload,
        payload_type=envelope.payload_type,
        signatures=[statements_pb2.Signature(keyid=s.keyid, sig=s.sig) for s in envelope.signatures],
    )


def envelope_from_proto(message: statements_pb2.Envelope) -> Envelope:
    """A DSSE envelope from its wire form (no verification)."""
    return Envelope(
        payload=bytes(message.payload),
        payload_type=message.payload_type,
        signatures=tuple(Signature(keyid=s.keyid, sig=bytes(s.sig)) for s in message.signatures),
    )
