"""Grants: an item key wrapped for one recipient key with HPKE (RFC 9180, DESIGN §4).

Base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, single shot, as ``cryptography``
implements it: a grant is ``enc(32) || ciphertext(32 + 16)``. The library's single-shot API takes no
associated data, so the whole context — originator, recipient, recipient key id, alert id, version,
item id, manifest hash — goes into HPKE's ``info``, length-prefixed: a grant opens only for the
recipient, key, alert, version, item and manifest it was made for.

A grant needs no signature: only the originator knows the item key, and the recipient checks the key
it unwraps against the key commitment in the signed item header.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from exchange.crypto.encoding import lp
from exchange.crypto.items import ITEM_KEY_LENGTH, TAG_LENGTH
from exchange.crypto.keys import DecryptionKey, EncryptionKey
from exchange.errors import GrantError, MalformedError

MANIFEST_HASH_LENGTH = 32
ENCAPSULATED_KEY_LENGTH = 32
GRANT_LENGTH = ENCAPSULATED_KEY_LENGTH + ITEM_KEY_LENGTH + TAG_LENGTH

_GRANT_INFO_LABEL = b"exchange/grant/v1"
_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)


@dataclass(frozen=True)
class GrantContext:
    """Everything a grant is bound to; all of it goes into HPKE ``info``."""

    originator: str
    recipient: str
    recipient_key_id: str
    alert_id: str
    version: int
    item_id: str
    manifest_hash: bytes

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 0:
            raise MalformedError(
                f"grant version must be a non-negative integer, not {self.version!r}"
            )
        if len(self.manifest_hash) != MANIFEST_HASH_LENGTH:
            raise MalformedError(
                f"manifest hash must be {MANIFEST_HASH_LENGTH} bytes, not {len(self.manifest_hash)}"
            )

    def info(self) -> bytes:
        """The HPKE ``info`` string of the grant."""
        return lp(
            _GRANT_INFO_LABEL,
            self.originator,
            self.recipient,
            self.recipient_key_id,
            self.alert_id,
            self.version,
            self.item_id,
            self.manifest_hash,
        )


def wrap_item_key(item_key: bytes, recipient: EncryptionKey, context: GrantContext) -> bytes:
    """Wrap ``item_key`` for ``recipient`` under ``context``: ``enc || ct``, 80 bytes.

    Refuses (:class:`GrantError`) a context that names a different recipient key than the one
    wrapped to, since the recipient could never open it.
    """
    if len(item_key) != ITEM_KEY_LENGTH:
        raise MalformedError(f"an item key is {ITEM_KEY_LENGTH} bytes, not {len(item_key)}")
    if context.recipient_key_id != recipient.key_id:
        raise GrantError(
            f"grant context names key {context.recipient_key_id}, "
            f"but the item key is wrapped to key {recipient.key_id}"
        )
    try:
        return _SUITE.encrypt(item_key, recipient.native, context.info())
    except ValueError as e:
        raise GrantError("recipient key rejected by the key encapsulation") from e


def unwrap_item_key(wrapped: bytes, recipient: DecryptionKey, context: GrantContext) -> bytes:
    """Unwrap a grant made by :func:`wrap_item_key`; return the 32-byte item key.

    Any failure — another recipient key or context, a changed byte, a low-order ``enc``, a result
    that is not 32 bytes — raises :class:`GrantError`. The caller must still check the key against
    the signed key commitment.
    """
    if context.recipient_key_id != recipient.public_key.key_id:
        raise GrantError(
            f"grant is for key {context.recipient_key_id}, not {recipient.public_key.key_id}"
        )
    if len(wrapped) != GRANT_LENGTH:
        raise GrantError(f"a grant is {GRANT_LENGTH} bytes, not {len(wrapped)}")
    try:
        item_key = _SUITE.decrypt(wrapped, recipient.native, context.info())
    except (InvalidTag, ValueError) as e:
        raise GrantError("grant does not unwrap for this recipient key and context") from e
    if len(item_key) != ITEM_KEY_LENGTH:
        raise GrantError(f"grant holds {len(item_key)} bytes, not an item key")
    return item_key
