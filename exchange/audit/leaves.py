"""The canonical leaf encoding of the audit log (DESIGN §8).

A leaf is public: anyone may fetch it and check the tree.  It therefore carries only the entry
type, the log time, the SHA-256 of the statement or event bytes, and a salted commitment to the
references (agency ids, alert ids) — the salt is served with the body, to entitled agencies
only, so they can check the references while others learn nothing from them.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from exchange.crypto.encoding import lp
from exchange.errors import MalformedError

LEAF_LABEL = b"exchange/leaf/v1"
SALT_BYTES = 16

# Entry types.  Statements are signed by an agency; events are the hub's assertion.
ALERT_PUBLISHED = "alert_published"
FEED_EVENT = "feed_event"
AGENCY_KEYS = "agency_keys"
RELEASE_REQUEST = "release_request"
RELEASE_DECISION = "release_decision"
REVOCATION = "revocation"
RETRACTION = "retraction"
RECEIPT = "receipt"
PURGE_ACK = "purge_ack"
FEEDBACK = "feedback"
GRANT_DELIVERED = "grant_delivered"
EMBARGO_LAPSED = "embargo_lapsed"
ITEM_PURGED = "item_purged"
MATCH_POLICY = "match_policy"
MATCH_QUERY = "match_query"
MATCH_HIT = "match_hit"
MATCH_INDEX_UPDATED = "match_index_updated"

SIGNED_ENTRY_TYPES = frozenset(
    {
        ALERT_PUBLISHED,
        AGENCY_KEYS,
        RELEASE_REQUEST,
        RELEASE_DECISION,
        REVOCATION,
        RETRACTION,
        RECEIPT,
        PURGE_ACK,
        FEEDBACK,
        MATCH_POLICY,
    }
)


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def references_commitment(salt: bytes, references: Sequence[str]) -> bytes:
    """SHA-256 over the salt and the length-prefixed references."""
    return hashlib.sha256(lp(salt, *references)).digest()


@dataclass(frozen=True)
class LeafContents:
    """What one leaf says."""

    entry_type: str
    logged_at: datetime
    body_sha256: bytes
    references_commitment: bytes

    def encode(self) -> bytes:
        """The canonical, length-prefixed leaf bytes that the Merkle tree hashes."""
        return lp(
            LEAF_LABEL,
            self.entry_type,
            _micros(self.logged_at),
            self.body_sha256,
            self.references_commitment,
        )

    @classmethod
    def decode(cls, data: bytes) -> LeafContents:
        """Parse canonical leaf bytes; anything else (a prefix, trailing bytes) is MalformedError."""
        parts = _split_length_prefixed(data)
        if len(parts) != 5 or parts[0] != LEAF_LABEL:
            raise MalformedError("not an exchange/leaf/v1 leaf")
        _, entry_type, micros, body_sha256, commitment = parts
        if len(micros) != 8 or len(body_sha256) != 32 or len(commitment) != 32:
            raise MalformedError("leaf fields have the wrong lengths")
        try:
            name = entry_type.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedError("leaf entry type is not UTF-8") from e
        moment = _EPOCH + timedelta(microseconds=int.from_bytes(micros, "big"))
        return cls(name, moment, body_sha256, commitment)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _split_length_prefixed(data: bytes) -> list[bytes]:
    """Undo :func:`~exchange.crypto.encoding.lp`: the parts, or MalformedError."""
    parts: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise MalformedError("leaf ends inside a length prefix")
        (length,) = struct.unpack_from(">I", data, offset)
        offset += 4
        if offset + length > len(data):
            raise MalformedError("leaf part runs past the end")
        parts.append(data[offset : offset + length])
        offset += length
    return parts


def make_leaf(
    entry_type: str, logged_at: datetime, body: bytes, salt: bytes, references: Sequence[str]
) -> bytes:
    """Encode the leaf for a statement or event body."""
    return LeafContents(
        entry_type=entry_type,
        logged_at=logged_at,
        body_sha256=hashlib.sha256(body).digest(),
        references_commitment=references_commitment(salt, references),
    ).encode()
