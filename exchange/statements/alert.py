"""Alert statements: ``ItemHeader``, ``AlertManifest`` and grants, as domain classes.

Each class holds the exact bytes it was built from (or signed) beside the parsed message, so a
hash or a signature is always computed over what travelled, never over a re-serialization.
"""

from __future__ import annotations

import functools
import hmac
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from exchange.crypto.dsse import Envelope, sign_envelope, verify_envelope
from exchange.crypto.grants import GrantContext, unwrap_item_key, wrap_item_key
from exchange.crypto.items import ItemContext, SealedItem, check_key_commitment
from exchange.crypto.keys import DecryptionKey, EncryptionKey, SigningKey, VerifyKey
from exchange.errors import CommitmentError, MalformedError
from exchange.statements.codec import PAYLOAD_TYPES, encode, parse_canonical, sha256
from exchange.v1 import statements_pb2

MANIFEST_PAYLOAD_TYPE = PAYLOAD_TYPES["alert_manifest"]
HEADER_SALT_BYTES = 16
AES_GCM_OVERHEAD = 12 + 16  # nonce and tag around the padded plaintext
SUMMARY_ITEM_ID = "_summary"


@dataclass(frozen=True)
class ItemHeader:
    """The header of one item, as the exact bytes the manifest commits to."""

    raw: bytes
    message: statements_pb2.ItemHeader

    @classmethod
    def build(
        cls,
        *,
        item_id: str,
        policy: statements_pb2.ReleasePolicy,
        sealed: SealedItem,
        key_commitment: bytes,
        summary: bool = False,
    ) -> ItemHeader:
        """A fresh, salted header for a sealed item."""
        message = statements_pb2.ItemHeader(
            item_id=item_id,
            salt=os.urandom(HEADER_SALT_BYTES),
            policy=policy,
            ciphertext_sha256=sealed.sha256,
            padded_length=sealed.padded_length,
            key_commitment=key_commitment,
            summary=summary,
        )
        return cls(raw=encode(message), message=message)

    @classmethod
    def parse(cls, raw: bytes) -> ItemHeader:
        """Parse header bytes, refusing anything but the canonical encoding."""
        message = parse_canonical(statements_pb2.ItemHeader, raw, what="item header")
        if not message.item_id:
            raise MalformedError("item header has no item id")
        return cls(raw=raw, message=message)

    @functools.cached_property
    def hash(self) -> bytes:
        return sha256(self.raw)

    @property
    def item_id(self) -> str:
        return self.message.item_id

    @property
    def policy(self) -> statements_pb2.ReleasePolicy:
        return self.message.policy

    def check_ciphertext(self, ciphertext: bytes) -> bytes:
        """Raise :class:`CommitmentError` unless ``ciphertext`` is the one this header names;
        return its sha256 (the header's ``ciphertext_sha256``)."""
        if len(ciphertext) != self.message.padded_length + AES_GCM_OVERHEAD:
            raise CommitmentError(
                f"item {self.item_id!r}: ciphertext is {len(ciphertext)} bytes, header says "
                f"{self.message.padded_length + AES_GCM_OVERHEAD}"
            )
        digest = sha256(ciphertext)
        if not hmac.compare_digest(digest, self.message.ciphertext_sha256):
            raise CommitmentError(f"item {self.item_id!r}: ciphertext does not match its header")
        return digest


@dataclass(frozen=True)
class AlertManifest:
    """A signed alert manifest.  Build with :meth:`sign`; receive with :meth:`verify`."""

    envelope: Envelope
    message: statements_pb2.AlertManifest

    @classmethod
    def sign(cls, message: statements_pb2.AlertManifest, key: SigningKey) -> AlertManifest:
        """Sign a manifest with the originator's key."""
        envelope = sign_envelope(MANIFEST_PAYLOAD_TYPE, encode(message), key)
        return cls(envelope=envelope, message=message)

    @classmethod
    def verify(cls, envelope: Envelope, keys: Mapping[str, VerifyKey]) -> AlertManifest:
        """Verify the envelope under ``keys`` (the originator's), then parse the signed bytes."""
        payload = verify_envelope(envelope, expected_type=MANIFEST_PAYLOAD_TYPE, keys=keys)
        message = parse_canonical(statements_pb2.AlertManifest, payload, what="alert manifest")
        if not message.originator or not message.alert_id or message.version < 1:
            raise MalformedError("alert manifest needs an originator, an alert id and a version ≥ 1")
        if message.version == 1 and message.previous_manifest_hash:
            raise MalformedError("version 1 of an alert names no previous manifest")
        if message.version > 1 and len(message.previous_manifest_hash) != 32:
            raise MalformedError("a version after the first names its previous manifest hash")
        return cls(envelope=envelope, message=message)

    @functools.cached_property
    def hash(self) -> bytes:
        """sha256 of the signed payload: what requests, grants and receipts refer to."""
        return sha256(self.envelope.payload)

    @property
    def originator(self) -> str:
        return self.message.originator

    @property
    def alert_id(self) -> str:
        return self.message.alert_id

    @property
    def version(self) -> int:
        return self.message.version

    def item_context(self, item_id: str) -> ItemContext:
        """The context bound into an item's ciphertext and key commitment."""
        return ItemContext(
            originator=self.originator, alert_id=self.alert_id, version=self.version, item_id=item_id
        )

    def grant_context(self, item_id: str, recipient: str, recipient_key_id: str) -> GrantContext:
        """The context bound into a grant's HPKE ``info``."""
        return GrantContext(
            originator=self.originator,
            recipient=recipient,
            recipient_key_id=recipient_key_id,
            alert_id=self.alert_id,
            version=self.version,
            item_id=item_id,
            manifest_hash=self.hash,
        )

    def check_headers(self, headers: Sequence[ItemHeader]) -> None:
        """Raise :class:`CommitmentError` unless ``headers`` are exactly the committed ones, in order."""
        committed = list(self.message.item_header_hashes)
        if [h.hash for h in headers] != committed:
            raise CommitmentError("item headers do not match the manifest's commitments")
        ids = [h.item_id for h in headers]
        if len(set(ids)) != len(ids):
            raise MalformedError("two items share one id")

    def commits_to(self, header: ItemHeader) -> bool:
        return header.hash in set(self.message.item_header_hashes)


@dataclass(frozen=True)
class KeyGrant:
    """One item key wrapped for one recipient key (HPKE); needs no signature of its own."""

    message: statements_pb2.Grant

    @classmethod
    def make(
        cls,
        manifest: AlertManifest,
        *,
        item_id: str,
        item_key: bytes,
        recipient: str,
        recipient_key: EncryptionKey,
    ) -> KeyGrant:
        """Wrap ``item_key`` for ``recipient``; only the originator, who knows the key, can."""
        context = manifest.grant_context(item_id, recipient, recipient_key.key_id)
        return cls(
            statements_pb2.Grant(
                item_id=item_id,
                recipient=recipient,
                recipient_key_id=recipient_key.key_id,
                wrapped_key=wrap_item_key(item_key, recipient_key, context),
            )
        )

    @property
    def hash(self) -> bytes:
        return sha256(encode(self.message))

    def open(
        self, manifest: AlertManifest, header: ItemHeader, *, recipient: str, key: DecryptionKey
    ) -> bytes:
        """Unwrap the item key and prove it is the committed one.

        Raises :class:`GrantError` if the grant does not open for this recipient and context and
        :class:`KeyCommitmentError` if the key is not the one the originator signed for.
        """
        if self.message.item_id != header.item_id or self.message.recipient != recipient:
            raise MalformedError(
                f"grant is for item {self.message.item_id!r} and {self.message.recipient!r}, "
                f"not item {header.item_id!r} and {recipient!r}",
                reason="GRANT_MISMATCH",
            )
        context = manifest.grant_context(header.item_id, recipient, key.public_key.key_id)
        item_key = unwrap_item_key(bytes(self.message.wrapped_key), key, context)
        check_key_commitment(
            item_key, manifest.item_context(header.item_id), header.message.key_commitment
        )
        return item_key


def manifest_message(
    *,
    originator: str,
    alert_id: str,
    version: int,
    previous_manifest_hash: bytes,
    created_at: datetime,
    headers: Sequence[ItemHeader],
) -> statements_pb2.AlertManifest:
    """An unsigned manifest committing to ``headers`` in order."""
    message = statements_pb2.AlertManifest(
        originator=originator,
        alert_id=alert_id,
        version=version,
        previous_manifest_hash=previous_manifest_hash,
        item_header_hashes=[h.hash for h in headers],
    )
    message.created_at.FromDatetime(created_at)
    return message
