"""Project Wycheproof vectors for the primitives the crypto core stands on.

Ed25519 goes through our own :class:`VerifyKey`; X25519, AES-GCM and HKDF through ``cryptography``
directly, to show the installed library behaves as the project assumes (including rejecting
low-order X25519 points, which :class:`EncryptionKey` relies on).
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from exchange.crypto.keys import EncryptionKey, VerifyKey
from exchange.errors import MalformedError, SignatureError

from .vectors import wycheproof_cases, wycheproof_id

Case = tuple[dict[str, Any], dict[str, Any]]

ED25519 = wycheproof_cases("wycheproof/ed25519_test.json")
X25519 = wycheproof_cases("wycheproof/x25519_test.json")
AES_GCM = wycheproof_cases("wycheproof/aes_gcm_test.json")
HKDF_SHA256 = wycheproof_cases("wycheproof/hkdf_sha256_test.json")


def test_vector_files_hold_what_the_tests_expect() -> None:
    assert len(ED25519) == 151
    assert len(X25519) == 518
    assert {group["keySize"] for group, _ in AES_GCM} >= {256}
    assert {(group["ivSize"], group["tagSize"]) for group, _ in AES_GCM} == {(96, 128)}
    assert len(HKDF_SHA256) == 86


@pytest.mark.parametrize("case", ED25519, ids=wycheproof_id)
def test_ed25519_verify(case: Case) -> None:
    group, test = case
    key = VerifyKey.from_bytes(bytes.fromhex(group["publicKey"]["pk"]))
    message, signature = bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"])
    if test["result"] == "valid":
        key.verify(message, signature)
    else:
        assert test["result"] == "invalid"
        with pytest.raises(SignatureError):
            key.verify(message, signature)


@pytest.mark.parametrize("case", X25519, ids=wycheproof_id)
def test_x25519_shared_secret(case: Case) -> None:
    _, test = case
    private = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(test["private"]))
    public = x25519.X25519PublicKey.from_public_bytes(bytes.fromhex(test["public"]))
    expected = bytes.fromhex(test["shared"])
    if test["result"] == "valid":
        assert private.exchange(public) == expected
        return
    assert test["result"] == "acceptable"
    if expected == bytes(32):
        with pytest.raises(ValueError):
            private.exchange(public)
        with pytest.raises(MalformedError):
            EncryptionKey.from_bytes(bytes.fromhex(test["public"]))
    else:
        assert private.exchange(public) == expected


@pytest.mark.parametrize("case", AES_GCM, ids=wycheproof_id)
def test_aes_gcm(case: Case) -> None:
    _, test = case
    cipher = AESGCM(bytes.fromhex(test["key"]))
    iv, aad = bytes.fromhex(test["iv"]), bytes.fromhex(test["aad"])
    message = bytes.fromhex(test["msg"])
    sealed = bytes.fromhex(test["ct"]) + bytes.fromhex(test["tag"])
    if test["result"] == "valid":
        assert cipher.encrypt(iv, message, aad) == sealed
        assert cipher.decrypt(iv, sealed, aad) == message
    else:
        assert test["result"] == "invalid"
        with pytest.raises(InvalidTag):
            cipher.decrypt(iv, sealed, aad)


@pytest.mark.parametrize("case", HKDF_SHA256, ids=wycheproof_id)
def test_hkdf_sha256(case: Case) -> None:
    _, test = case

    def derive() -> bytes:
        return HKDF(
            algorithm=hashes.SHA256(),
            length=test["size"],
            salt=bytes.fromhex(test["salt"]),
            info=bytes.fromhex(test["info"]),
        ).derive(bytes.fromhex(test["ikm"]))

    if test["result"] == "valid":
        assert derive() == bytes.fromhex(test["okm"])
    else:
        assert test["result"] == "invalid"
        with pytest.raises(ValueError):
            derive()
