"""Item sealing: size buckets, round trips, tamper detection, key commitments."""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from exchange.crypto.encoding import lp
from exchange.crypto.items import (
    ItemContext,
    check_key_commitment,
    key_commitment,
    new_item_key,
    open_item,
    padded_length,
    seal_item,
)
from exchange.errors import DecryptionError, KeyCommitmentError, MalformedError, TooLargeError

MIB = 1 << 20
KEY = bytes(range(32))
CONTEXT = ItemContext(
    originator="us-dea",
    alert_id="0b7c3a52-5b7e-4c55-9a32-2f6f3f0c9d11",
    version=1,
    item_id="item-1",
)


def test_context_encodings_are_the_documented_lp_tuples() -> None:
    ids = ("us-dea", "0b7c3a52-5b7e-4c55-9a32-2f6f3f0c9d11", 1, "item-1")
    assert CONTEXT.aad() == lp(b"exchange/item/v1", *ids)
    assert CONTEXT.commitment_label() == lp(b"exchange/key-commitment/v1", *ids)


@pytest.mark.parametrize("version", [-1, True, "1"])
def test_context_refuses_a_version_that_is_not_a_non_negative_int(version: object) -> None:
    with pytest.raises(MalformedError):
        ItemContext("us-dea", "a", version, "i")  # type: ignore[arg-type]


# --- size buckets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plaintext_length", "bucket"),
    [
        (0, 512),
        (1, 512),
        (508, 512),
        (509, 1024),
        (1020, 1024),
        (1021, 2048),
        (100_000, 131_072),
        (MIB // 2 - 4, MIB // 2),
        (MIB - 4, MIB),
        (MIB - 3, 2 * MIB),
        (2 * MIB - 4, 2 * MIB),
        (2 * MIB - 3, 3 * MIB),
        (5 * MIB, 6 * MIB),
        (4096 * MIB - 4, 4096 * MIB),
        (0xFFFF_FFFF, 4097 * MIB),
    ],
)
def test_padded_length_buckets(plaintext_length: int, bucket: int) -> None:
    assert padded_length(plaintext_length) == bucket


def test_padded_length_refuses_what_the_length_header_cannot_hold() -> None:
    with pytest.raises(TooLargeError):
        padded_length(1 << 32)
    with pytest.raises(ValueError):
        padded_length(-1)


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "plaintext",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00", id="one-zero-byte"),
        pytest.param(b"\x00" * 600, id="trailing-zeros-kept"),
        pytest.param(os.urandom(508), id="fills-smallest-bucket"),
        pytest.param(os.urandom(509), id="spills-into-second-bucket"),
        pytest.param(os.urandom(MIB - 3), id="just-over-1MiB-frame"),
        pytest.param(os.urandom(3 * MIB + 17), id="several-MiB"),
    ],
)
def test_seal_then_open_returns_the_plaintext(plaintext: bytes) -> None:
    key = new_item_key()
    sealed = seal_item(key, plaintext, CONTEXT)
    assert sealed.padded_length == padded_length(len(plaintext))
    assert len(sealed.ciphertext) == 12 + sealed.padded_length + 16
    assert sealed.sha256 == hashlib.sha256(sealed.ciphertext).digest()
    assert open_item(key, sealed.ciphertext, CONTEXT) == plaintext


def test_every_seal_uses_a_fresh_nonce() -> None:
    first = seal_item(KEY, b"same", CONTEXT).ciphertext
    second = seal_item(KEY, b"same", CONTEXT).ciphertext
    assert first[:12] != second[:12]
    assert first != second


def test_new_item_keys_are_32_random_bytes() -> None:
    keys = {new_item_key() for _ in range(8)}
    assert len(keys) == 8
    assert {len(key) for key in keys} == {32}


@pytest.mark.parametrize("key", [b"", bytes(16), bytes(33)], ids=["empty", "aes128", "long"])
def test_seal_refuses_a_key_that_is_not_256_bits(key: bytes) -> None:
    with pytest.raises(MalformedError):
        seal_item(key, b"x", CONTEXT)


def test_sealed_item_repr_does_not_dump_the_ciphertext() -> None:
    sealed = seal_item(KEY, b"x", CONTEXT)
    assert len(repr(sealed)) < 200
    assert "padded_length=512" in repr(sealed)


# --- tampering ---------------------------------------------------------------------------------

SEALED = seal_item(KEY, b"declared: industrial cleaning agent", CONTEXT)


@pytest.mark.parametrize(
    "position",
    [0, 11, 12, 13, 12 + 511, len(SEALED.ciphertext) - 16, len(SEALED.ciphertext) - 1],
    ids=[
        "nonce-first",
        "nonce-last",
        "body-first",
        "body-second",
        "body-last",
        "tag-first",
        "tag-last",
    ],
)
def test_one_flipped_bit_anywhere_is_a_decryption_error(position: int) -> None:
    altered = bytearray(SEALED.ciphertext)
    altered[position] ^= 0x01
    with pytest.raises(DecryptionError):
        open_item(KEY, bytes(altered), CONTEXT)


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(replace(CONTEXT, originator="cn-nncc"), id="other-originator"),
        pytest.param(replace(CONTEXT, alert_id="1b7c3a52-5b7e-4c55-9a32-2f6f3f0c9d11"), id="alert"),
        pytest.param(replace(CONTEXT, version=2), id="other-version"),
        pytest.param(replace(CONTEXT, item_id="item-2"), id="other-item"),
        pytest.param(
            ItemContext("us-dea0b7c3a52", "-5b7e-4c55-9a32-2f6f3f0c9d11", 1, "item-1"),
            id="shifted-id-boundary",
        ),
    ],
)
def test_opening_under_another_context_is_a_decryption_error(other: ItemContext) -> None:
    with pytest.raises(DecryptionError):
        open_item(KEY, SEALED.ciphertext, other)


@pytest.mark.parametrize(
    ("key", "ciphertext"),
    [
        pytest.param(bytes(32), SEALED.ciphertext, id="wrong-key"),
        pytest.param(KEY[:16], SEALED.ciphertext, id="short-key"),
        pytest.param(KEY, SEALED.ciphertext[:-1], id="truncated"),
        pytest.param(KEY, SEALED.ciphertext + b"\x00", id="extended"),
        pytest.param(KEY, SEALED.ciphertext[:27], id="shorter-than-nonce-and-tag"),
        pytest.param(KEY, b"", id="empty"),
    ],
)
def test_wrong_key_or_cut_ciphertext_is_a_decryption_error(key: bytes, ciphertext: bytes) -> None:
    with pytest.raises(DecryptionError):
        open_item(key, ciphertext, CONTEXT)


def _seal_raw_frame(frame: bytes) -> bytes:
    """Encrypt a hand-built frame with the right key and context, bypassing seal_item."""
    nonce = bytes(12)
    return nonce + AESGCM(KEY).encrypt(nonce, frame, CONTEXT.aad())


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(b"", id="empty-frame"),
        pytest.param(b"\x00\x00\x00", id="no-length-header"),
        pytest.param(struct.pack(">I", 600) + bytes(508), id="length-past-the-end"),
        pytest.param(struct.pack(">I", 3) + b"abc" + bytes(505) + b"\x01", id="nonzero-padding"),
        pytest.param(struct.pack(">I", 3) + b"abc", id="unpadded"),
        pytest.param(struct.pack(">I", 3) + b"abc" + bytes(1017), id="bucket-too-big"),
    ],
)
def test_a_frame_seal_item_would_not_make_is_a_decryption_error(frame: bytes) -> None:
    with pytest.raises(DecryptionError):
        open_item(KEY, _seal_raw_frame(frame), CONTEXT)


def test_a_hand_built_canonical_frame_opens() -> None:
    frame = struct.pack(">I", 3) + b"abc" + bytes(505)
    assert open_item(KEY, _seal_raw_frame(frame), CONTEXT) == b"abc"


# --- key commitment ----------------------------------------------------------------------------


def test_key_commitment_is_hmac_sha256_of_the_label_under_the_key() -> None:
    expected = hmac.new(KEY, CONTEXT.commitment_label(), hashlib.sha256).digest()
    assert key_commitment(KEY, CONTEXT) == expected
    check_key_commitment(KEY, CONTEXT, expected)


COMMITMENT = key_commitment(KEY, CONTEXT)


@pytest.mark.parametrize(
    ("key", "context", "commitment"),
    [
        pytest.param(bytes(32), CONTEXT, COMMITMENT, id="other-key"),
        pytest.param(KEY[:31], CONTEXT, COMMITMENT, id="short-key"),
        pytest.param(KEY, replace(CONTEXT, item_id="item-2"), COMMITMENT, id="other-item"),
        pytest.param(KEY, replace(CONTEXT, version=2), COMMITMENT, id="other-version"),
        pytest.param(KEY, CONTEXT, COMMITMENT[:-1], id="truncated-commitment"),
        pytest.param(KEY, CONTEXT, b"", id="empty-commitment"),
        pytest.param(
            KEY, CONTEXT, bytes([COMMITMENT[0] ^ 0x80]) + COMMITMENT[1:], id="flipped-commitment"
        ),
        pytest.param(
            KEY,
            CONTEXT,
            hmac.new(KEY, CONTEXT.aad(), hashlib.sha256).digest(),
            id="mac-over-the-aad-instead",
        ),
    ],
)
def test_a_key_that_fails_the_commitment_is_a_key_commitment_error(
    key: bytes, context: ItemContext, commitment: bytes
) -> None:
    with pytest.raises(KeyCommitmentError):
        check_key_commitment(key, context, commitment)
