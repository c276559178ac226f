"""The pure crypto core of the exchange: keys, DSSE envelopes, item sealing and HPKE grants.

No I/O, no protobuf, no database: the statement classes, the hub and the client build on these
functions. Every failure is raised as an :mod:`exchange.errors` class.
"""

from __future__ import annotations

from exchange.crypto.dsse import Envelope, Signature, pae, sign_envelope, verify_envelope
from exchange.crypto.encoding import lp
from exchange.crypto.grants import GRANT_LENGTH, GrantContext, unwrap_item_key, wrap_item_key
from exchange.crypto.items import (
    ITEM_KEY_LENGTH,
    ItemContext,
    SealedItem,
    check_key_commitment,
    key_commitment,
    new_item_key,
    open_item,
    padded_length,
    seal_item,
)
from exchange.crypto.keys import (
    DecryptionKey,
    EncryptionKey,
    SigningKey,
    VerifyKey,
    fingerprint,
    public_key_id,
)

__all__ = [
    "GRANT_LENGTH",
    "ITEM_KEY_LENGTH",
    "DecryptionKey",
    "EncryptionKey",
    "Envelope",
    "GrantContext",
    "ItemContext",
    "SealedItem",
    "Signature",
    "SigningKey",
    "VerifyKey",
    "check_key_commitment",
    "fingerprint",
    "key_commitment",
    "lp",
    "new_item_key",
    "open_item",
    "padded_length",
    "pae",
    "public_key_id",
    "seal_item",
    "sign_envelope",
    "unwrap_item_key",
    "verify_envelope",
    "wrap_item_key",
]
