"""Per-item encryption (DESIGN §3–4): AES-256-GCM under a fresh key per item, padded to buckets.

Every item of an alert is sealed under its own random 256-bit key, so releasing one item to one
agency reveals nothing else. The associated data binds the ciphertext to (originator, alert id,
version, item id): a ciphertext moved to another alert, version or item fails to open.

AES-GCM does not commit to its key: a crafted ciphertext can open under two different keys. The
signed item header therefore carries a key commitment, HMAC-SHA256 under the item key, which a
recipient checks before it trusts a key it unwrapped from a grant.

Plaintext is framed as ``u32_be(len) || payload || zeros`` up to a size bucket (powers of two from
512 bytes to 1 MiB, then whole MiB), so the hub, which sees ciphertext sizes, learns little more
than an order of magnitude.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from exchange.crypto.encoding import lp
from exchange.errors import DecryptionError, KeyCommitmentError, MalformedError, TooLargeError
from exchange.limits import over_limit

ITEM_KEY_LENGTH = 32
NONCE_LENGTH = 12
TAG_LENGTH = 16
FRAME_HEADER_LENGTH = 4
SMALLEST_BUCKET = 512
LARGEST_POWER_OF_TWO_BUCKET = 1 << 20
MAX_PLAINTEXT_LENGTH = 0xFFFF_FFFF

_ITEM_AAD_LABEL = b"exchange/item/v1"
_KEY_COMMITMENT_LABEL = b"exchange/key-commitment/v1"


@dataclass(frozen=True)
class ItemContext:
    """Where an item belongs; bound into its AEAD associated data and its key commitment."""

    originator: str
    alert_id: str
    version: int
    item_id: str

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 0:
            raise MalformedError(
                f"item version must be a non-negative integer, not {self.version!r}"
            )

    def aad(self) -> bytes:
        """The associated data of the item's AES-GCM encryption."""
        return lp(_ITEM_AAD_LABEL, self.originator, self.alert_id, self.version, self.item_id)

    def commitment_label(self) -> bytes:
        """The message the key commitment MACs; distinct from :meth:`aad` by its label."""
        return lp(_KEY_COMMITMENT_LABEL, self.originator, self.alert_id, self.version, self.item_id)


@dataclass(frozen=True, repr=False)
class SealedItem:
    """A sealed item: ``nonce(12) || AES-256-GCM ciphertext and tag``, and its padded length.

    ``padded_length`` is the length of the framed, padded plaintext (what the header records);
    the ciphertext is 28 bytes longer.
    """

    ciphertext: bytes
    padded_length: int

    @property
    def sha256(self) -> bytes:
        """SHA-256 of the whole ciphertext, nonce included: what the signed header commits to."""
        return hashlib.sha256(self.ciphertext).digest()

    def __repr__(self) -> str:
        return (
            f"SealedItem(padded_length={self.padded_length}, "
            f"sha256={self.sha256.hex()}, ciphertext=<{len(self.ciphertext)} bytes>)"
        )


def new_item_key() -> bytes:
    """A fresh random 256-bit item key. Use it for one item of one version only."""
    return AESGCM.generate_key(bit_length=256)


def padded_length(n: int) -> int:
    """The size of the padded frame that holds an ``n``-byte plaintext.

    The frame is the 4-byte length header plus the plaintext, rounded up to the next power of two
    from 512 bytes to 1 MiB, and beyond that to the next whole MiB. Raises :class:`TooLargeError`
    when ``n`` does not fit the 32-bit length header, ``ValueError`` when it is negative.
    """
    if n < 0:
        raise ValueError(f"plaintext length cannot be negative: {n}")
    if n > MAX_PLAINTEXT_LENGTH:
        raise TooLargeError(over_limit(n, MAX_PLAINTEXT_LENGTH, "bytes", what="an item's plaintext"))
    framed = FRAME_HEADER_LENGTH + n
    if framed > LARGEST_POWER_OF_TWO_BUCKET:
        mebibytes = -(-framed // LARGEST_POWER_OF_TWO_BUCKET)
        return mebibytes * LARGEST_POWER_OF_TWO_BUCKET
    bucket = SMALLEST_BUCKET
    while bucket < framed:
        bucket *= 2
    return bucket


def seal_item(key: bytes, plaintext: bytes, context: ItemContext) -> SealedItem:
    """Pad and encrypt ``plaintext`` under ``key`` for ``context``, with a fresh random nonce.

    A random 96-bit nonce is safe here because each item key seals a single item.
    """
    _check_item_key(key)
    frame_length = padded_length(len(plaintext))
    frame = bytearray(frame_length)
    frame[:FRAME_HEADER_LENGTH] = struct.pack(">I", len(plaintext))
    frame[FRAME_HEADER_LENGTH : FRAME_HEADER_LENGTH + len(plaintext)] = plaintext
    nonce = os.urandom(NONCE_LENGTH)
    sealed = AESGCM(key).encrypt(nonce, bytes(frame), context.aad())
    return SealedItem(ciphertext=nonce + sealed, padded_length=frame_length)


def open_item(key: bytes, ciphertext: bytes, context: ItemContext) -> bytes:
    """Decrypt and unpad an item sealed by :func:`seal_item`.

    Any failure — wrong key, another context, a changed byte, a frame that is not exactly the one
    :func:`seal_item` makes — raises :class:`DecryptionError`.
    """
    if len(key) != ITEM_KEY_LENGTH:
        raise DecryptionError(f"an item key is {ITEM_KEY_LENGTH} bytes, not {len(key)}")
    if len(ciphertext) < NONCE_LENGTH + TAG_LENGTH:
        raise DecryptionError("item ciphertext is too short")
    nonce, sealed = ciphertext[:NONCE_LENGTH], ciphertext[NONCE_LENGTH:]
    try:
        frame = AESGCM(key).decrypt(nonce, sealed, context.aad())
    except (InvalidTag, ValueError) as e:
        raise DecryptionError("item does not decrypt under this key and context") from e
    return _unframe(frame)


def key_commitment(key: bytes, context: ItemContext) -> bytes:
    """HMAC-SHA256 under the item key over the context's commitment label (32 bytes)."""
    _check_item_key(key)
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(context.commitment_label())
    return mac.finalize()


def check_key_commitment(key: bytes, context: ItemContext, commitment: bytes) -> None:
    """Raise :class:`KeyCommitmentError` unless ``commitment`` is this key's commitment.

    The comparison is constant-time (``HMAC.verify``).
    """
    if len(key) != ITEM_KEY_LENGTH:
        raise KeyCommitmentError(f"an item key is {ITEM_KEY_LENGTH} bytes, not {len(key)}")
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(context.commitment_label())
    try:
        mac.verify(commitment)
    except InvalidSignature as e:
        raise KeyCommitmentError("item key does not match the signed key commitment") from e


def _check_item_key(key: bytes) -> None:
    if len(key) != ITEM_KEY_LENGTH:
        raise MalformedError(f"an item key is {ITEM_KEY_LENGTH} bytes, not {len(key)}")


def _unframe(frame: bytes) -> bytes:
    if len(frame) < FRAME_HEADER_LENGTH:
        raise DecryptionError("item frame has no length header")
    (length,) = struct.unpack(">I", frame[:FRAME_HEADER_LENGTH])
    end = FRAME_HEADER_LENGTH + length
    if end > len(frame) or len(frame) != padded_length(length):
        raise DecryptionError("item frame length does not match its size bucket")
    if frame[end:] != bytes(len(frame) - end):
        raise DecryptionError("item padding is not all zeros")
    return frame[FRAME_HEADER_LENGTH:end]
