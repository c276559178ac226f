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
        type_length = canonical_entry_type_length(data)
        if type_length is not None:
            # The fixed layout checked: read the fields in place.
            name = _entry_type_name(data[24 : 24 + type_length])
            if name is not None:
                start = 28 + type_length
                micros = int.from_bytes(data[start : start + 8], "big")
                return cls(
                    name,
                    _EPOCH + timedelta(microseconds=micros),
                    data[start + 12 : start + 44],
                    data[start + 48 : start + 80],
                )
        return cls._decode_parts(data)

    @classmethod
    def _decode_parts(cls, data: bytes) -> LeafContents:
        """:meth:`decode` part by part, naming what is wrong with a leaf that is not canonical."""
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

# A canonical leaf is lp(label, entry type, 8-byte time, 32-byte hash, 32-byte commitment): every
# length but the entry type's is fixed, so its layout can be checked without splitting it.
_HEAD = struct.pack(">I", len(LEAF_LABEL)) + LEAF_LABEL
_FIXED_BYTES = len(_HEAD) + 4 + (4 + 8) + (4 + 32) + (4 + 32)
_ENTRY_TYPE_NAMES: dict[bytes, str] = {}
"""Entry type bytes already decoded (a log has a dozen kinds of entry, repeated)."""


_TYPE_LENGTH = struct.Struct(">I")
_AFTER_TYPE = struct.Struct(">IQI32xI32x")
"""What follows the entry type: the time's length prefix and the time, then the two hashes'
length prefixes (their bytes skipped); unpacked in one call."""


def _layout(data: bytes) -> tuple[int, int] | None:
    """The entry type's length and the log time (microseconds since the epoch) of ``data`` if it
    has the layout of a canonical leaf, else ``None``."""
    n = len(data) - _FIXED_BYTES
    if n < 0 or not data.startswith(_HEAD) or _TYPE_LENGTH.unpack_from(data, 20)[0] != n:
        return None
    time_length, micros, body_hash_length, commitment_length = _AFTER_TYPE.unpack_from(data, 24 + n)
    if time_length != 8 or body_hash_length != 32 or commitment_length != 32:
        return None
    return n, micros


def canonical_entry_type_length(data: bytes) -> int | None:
    """The length of the entry type of ``data`` if it has the layout of a canonical leaf, else
    ``None``; the entry type's UTF-8 is not checked (:meth:`LeafContents.decode` does both).

    Cheap enough to run on every leaf of a log: two unpacks, no slices.
    """
    layout = _layout(data)
    return None if layout is None else layout[0]


def logged_micros(data: bytes) -> int | None:
    """The log time in canonical leaf bytes, in microseconds since the epoch (``None`` if the
    bytes do not have a canonical leaf's layout)."""
    layout = _layout(data)
    return None if layout is None else layout[1]


def is_canonical(data: bytes) -> bool:
    """Whether :meth:`LeafContents.decode` accepts ``data``, without building its contents."""
    n = canonical_entry_type_length(data)
    if n is not None and _entry_type_name(data[24 : 24 + n]) is not None:
        return True
    try:
        LeafContents.decode(data)
    except MalformedError:
        return False
    return True


def _entry_type_name(raw: bytes) -> str | None:
    """``raw`` decoded as UTF-8, or ``None`` if it is not UTF-8."""
    name = _ENTRY_TYPE_NAMES.get(raw)
    if name is None:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if len(_ENTRY_TYPE_NAMES) < 1024:  # a bound against a log of made-up types
            _ENTRY_TYPE_NAMES[raw] = name
    return name


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
