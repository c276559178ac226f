"""Key wrappers: loading, key ids, fingerprints, Ed25519 signing, X25519 key validation."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from exchange.crypto.keys import (
    DecryptionKey,
    EncryptionKey,
    SigningKey,
    VerifyKey,
    fingerprint,
    public_key_id,
)
from exchange.errors import MalformedError, SignatureError

# RFC 8032 section 7.1, TEST 1 (empty message).
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555f"
    "b8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def rfc8032_signing_key() -> SigningKey:
    return SigningKey(ed25519.Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET))


def test_signing_matches_rfc8032_test_1() -> None:
    key = rfc8032_signing_key()
    assert key.public_key.raw == RFC8032_PUBLIC
    assert key.sign(b"") == RFC8032_SIGNATURE
    VerifyKey.from_bytes(RFC8032_PUBLIC).verify(b"", RFC8032_SIGNATURE)


def test_key_id_is_hex_of_the_first_16_bytes_of_sha256_of_the_raw_key() -> None:
    key = VerifyKey.from_bytes(RFC8032_PUBLIC)
    assert key.key_id == hashlib.sha256(RFC8032_PUBLIC).hexdigest()[:32]
    assert len(key.key_id) == 32
    assert key.key_id == public_key_id(RFC8032_PUBLIC)


def test_fingerprint_is_ssh_style_unpadded_base64_of_sha256() -> None:
    # sha256(32 zero bytes) = 66687aad f862bd77 6c8fc18b 8e9f8e20 08971485 6ee233b3 902a591d 0d5f2925
    assert fingerprint(bytes(32)) == "SHA256:Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU"
    assert VerifyKey.from_bytes(RFC8032_PUBLIC).fingerprint == fingerprint(RFC8032_PUBLIC)


@pytest.mark.parametrize(
    ("message", "signature_change"),
    [
        pytest.param(b"other", lambda s: s, id="other-message"),
        pytest.param(b"", lambda s: s[:-1], id="truncated-signature"),
        pytest.param(b"", lambda s: s + b"\x00", id="signature-with-garbage"),
        pytest.param(b"", lambda s: bytes([s[0] ^ 1]) + s[1:], id="flipped-bit-in-R"),
        pytest.param(b"", lambda s: s[:40] + bytes([s[40] ^ 0x80]) + s[41:], id="flipped-bit-in-S"),
        pytest.param(b"", lambda s: b"", id="empty-signature"),
    ],
)
def test_verify_raises_signature_error(
    message: bytes, signature_change: Callable[[bytes], bytes]
) -> None:
    key = VerifyKey.from_bytes(RFC8032_PUBLIC)
    with pytest.raises(SignatureError):
        key.verify(message, signature_change(RFC8032_SIGNATURE))


def test_verify_refuses_a_signature_by_another_key() -> None:
    message = b"statement"
    signature = SigningKey.generate().sign(message)
    with pytest.raises(SignatureError):
        rfc8032_signing_key().public_key.verify(message, signature)


@pytest.mark.parametrize("key_class", [SigningKey, DecryptionKey], ids=lambda cls: cls.__name__)
def test_private_keys_round_trip_through_unencrypted_pkcs8_pem(
    key_class: type[SigningKey | DecryptionKey],
) -> None:
    key = key_class.generate()
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert key_class.from_pem(pem).public_key == key.public_key


@pytest.mark.parametrize(
    ("load", "pem"),
    [
        pytest.param(SigningKey.from_pem, b"not a pem", id="signing-garbage"),
        pytest.param(DecryptionKey.from_pem, b"", id="decryption-empty"),
        pytest.param(
            SigningKey.from_pem, DecryptionKey.generate().to_pem(), id="x25519-as-ed25519"
        ),
        pytest.param(
            DecryptionKey.from_pem, SigningKey.generate().to_pem(), id="ed25519-as-x25519"
        ),
        pytest.param(
            SigningKey.from_pem,
            SigningKey.generate().to_pem().replace(b"PRIVATE KEY", b"PUBLIC KEY"),
            id="mislabelled-block",
        ),
    ],
)
def test_loading_the_wrong_pem_raises_malformed(
    load: Callable[[bytes], object], pem: bytes
) -> None:
    with pytest.raises(MalformedError):
        load(pem)


def test_loading_an_ecdsa_pem_raises_malformed() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(MalformedError):
        SigningKey.from_pem(pem)


@pytest.mark.parametrize(
    ("load", "raw"),
    [
        pytest.param(VerifyKey.from_bytes, bytes(31), id="verify-short"),
        pytest.param(VerifyKey.from_bytes, bytes(33), id="verify-long"),
        pytest.param(EncryptionKey.from_bytes, b"", id="encryption-empty"),
        pytest.param(EncryptionKey.from_bytes, bytes(64), id="encryption-long"),
        pytest.param(EncryptionKey.from_bytes, bytes(32), id="encryption-zero-point"),
        pytest.param(
            EncryptionKey.from_bytes, (1).to_bytes(32, "little"), id="encryption-point-one"
        ),
    ],
)
def test_loading_bad_raw_public_keys_raises_malformed(
    load: Callable[[bytes], object], raw: bytes
) -> None:
    with pytest.raises(MalformedError):
        load(raw)


@pytest.mark.parametrize(
    ("wrap", "native"),
    [
        pytest.param(
            VerifyKey.from_public_key, x25519.X25519PrivateKey.generate().public_key(), id="verify"
        ),
        pytest.param(
            EncryptionKey.from_public_key,
            ed25519.Ed25519PrivateKey.generate().public_key(),
            id="encryption",
        ),
        pytest.param(
            EncryptionKey.from_public_key,
            x25519.X25519PublicKey.from_public_bytes(bytes(32)),
            id="encryption-low-order",
        ),
    ],
)
def test_wrapping_the_wrong_library_key_raises_malformed(
    wrap: Callable[[object], object], native: object
) -> None:
    with pytest.raises(MalformedError):
        wrap(native)


def test_public_keys_load_from_raw_bytes_and_library_objects_alike() -> None:
    signing = SigningKey.generate()
    decryption = DecryptionKey.generate()
    verify, encryption = signing.public_key, decryption.public_key
    assert VerifyKey.from_bytes(verify.raw) == verify
    assert VerifyKey.from_public_key(verify.native) == verify
    assert EncryptionKey.from_bytes(encryption.raw) == encryption
    assert EncryptionKey.from_public_key(encryption.native) == encryption
    assert len({verify, VerifyKey.from_bytes(verify.raw)}) == 1
    assert EncryptionKey.from_bytes(encryption.raw) != DecryptionKey.generate().public_key
    assert encryption.key_id == public_key_id(encryption.raw)


def test_reprs_name_the_key_without_showing_private_material() -> None:
    signing = rfc8032_signing_key()
    text = repr(signing)
    assert signing.public_key.key_id in text
    assert RFC8032_SECRET.hex() not in text
    assert "DecryptionKey(key_id=" in repr(DecryptionKey.generate())
