"""Blinding keys and tokens: the primitives against public vectors, the derivation's properties."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from exchange.crypto.encoding import lp
from exchange.crypto.keys import DecryptionKey, EncryptionKey
from exchange.match.blinding import (
    TOKEN_LABEL,
    BlindingKey,
    PairKeys,
    hkdf_sha256,
    hmac_sha256,
    token_digest,
    token_input,
    x25519_agreement,
)
from exchange.match.selectors import parse_selector

from ..crypto.vectors import load_vectors, wycheproof_cases, wycheproof_id

Case = tuple[dict[str, Any], dict[str, Any]]

X25519_VALID = [c for c in wycheproof_cases("wycheproof/x25519_test.json") if c[1]["result"] == "valid"]
HKDF_VALID = [
    c for c in wycheproof_cases("wycheproof/hkdf_sha256_test.json") if c[1]["result"] == "valid"
]
HMAC = load_vectors("rfc4231/hmac_sha256.json")["tests"]

# RFC 7748 section 6.1: Alice's and Bob's X25519 keys and their shared secret.
ALICE_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
BOB_PRIVATE = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


def _key(raw: bytes) -> DecryptionKey:
    return DecryptionKey(x25519.X25519PrivateKey.from_private_bytes(raw))


@pytest.mark.parametrize("case", X25519_VALID, ids=wycheproof_id)
def test_agreement_matches_wycheproof(case: Case) -> None:
    _, test = case
    own = _key(bytes.fromhex(test["private"]))
    partner = EncryptionKey.from_bytes(bytes.fromhex(test["public"]))
    assert x25519_agreement(own, partner) == bytes.fromhex(test["shared"])


def test_agreement_matches_rfc7748_both_ways() -> None:
    alice, bob = _key(ALICE_PRIVATE), _key(BOB_PRIVATE)
    assert x25519_agreement(alice, bob.public_key) == SHARED
    assert x25519_agreement(bob, alice.public_key) == SHARED


@pytest.mark.parametrize("case", HKDF_VALID, ids=wycheproof_id)
def test_hkdf_matches_wycheproof(case: Case) -> None:
    _, test = case
    okm = hkdf_sha256(
        bytes.fromhex(test["ikm"]),
        salt=bytes.fromhex(test["salt"]),
        info=bytes.fromhex(test["info"]),
        length=test["size"],
    )
    assert okm == bytes.fromhex(test["okm"])


def test_hkdf_without_salt_is_hkdf_with_an_empty_salt() -> None:
    ikm, info = b"\x0b" * 22, b"context"
    assert hkdf_sha256(ikm, salt=None, info=info, length=32) == hkdf_sha256(
        ikm, salt=b"", info=info, length=32
    )


@pytest.mark.parametrize("case", HMAC, ids=lambda c: f"rfc4231-{c['case']}")
def test_hmac_matches_rfc4231(case: dict[str, Any]) -> None:
    mac = hmac_sha256(bytes.fromhex(case["key"]), bytes.fromhex(case["data"]))
    assert mac == bytes.fromhex(case["mac"])


def _keys() -> tuple[DecryptionKey, DecryptionKey, DecryptionKey]:
    return _key(ALICE_PRIVATE), _key(BOB_PRIVATE), _key(bytes(range(1, 33)))


SELECTOR = parse_selector("iban:GB82WEST12345698765432")


def test_holder_and_querier_derive_the_same_key() -> None:
    a, b, _ = _keys()
    held = BlindingKey.derive("agency-b", b, "agency-a", a.public_key, own_role="holder")
    asked = BlindingKey.derive("agency-a", a, "agency-b", b.public_key, own_role="querier")
    assert held.pair == asked.pair
    assert held.token(SELECTOR) == asked.token(SELECTOR)


def test_the_key_is_hkdf_of_the_agreement_with_the_pair_in_info() -> None:
    a, b, _ = _keys()
    key = BlindingKey.derive("agency-b", b, "agency-a", a.public_key, own_role="holder")
    pair = PairKeys("agency-b", b.public_key.key_id, "agency-a", a.public_key.key_id)
    assert key.pair == pair
    assert pair.info() == lp(
        b"exchange/match/blinding-key/v1",
        "agency-b",
        b.public_key.key_id,
        "agency-a",
        a.public_key.key_id,
    )
    expected_key = hkdf_sha256(SHARED, salt=None, info=pair.info(), length=32)
    # An independent HMAC (the standard library's) over the documented token input.
    expected = hmac.digest(expected_key, lp(TOKEN_LABEL, lp("iban", SELECTOR.value)), "sha256")
    assert key.token(SELECTOR) == expected


def test_keys_are_directional_and_per_pair() -> None:
    a, b, c = _keys()
    b_for_a = BlindingKey.derive("agency-b", b, "agency-a", a.public_key, own_role="holder")
    a_for_b = BlindingKey.derive("agency-a", a, "agency-b", b.public_key, own_role="holder")
    b_for_c = BlindingKey.derive("agency-b", b, "agency-c", c.public_key, own_role="holder")
    tokens = {k.token(SELECTOR) for k in (b_for_a, a_for_b, b_for_c)}
    assert len(tokens) == 3


def test_a_new_encryption_key_gives_a_new_blinding_key() -> None:
    a, b, _ = _keys()
    before = BlindingKey.derive("agency-b", b, "agency-a", a.public_key, own_role="holder")
    rotated = DecryptionKey(x25519.X25519PrivateKey.from_private_bytes(bytes(range(2, 34))))
    after = BlindingKey.derive("agency-b", b, "agency-a", rotated.public_key, own_role="holder")
    assert after.pair.querier_key_id != before.pair.querier_key_id
    assert after.token(SELECTOR) != before.token(SELECTOR)


def test_tokens_in_bulk_equal_tokens_one_by_one() -> None:
    a, b, _ = _keys()
    key = BlindingKey.derive("agency-b", b, "agency-a", a.public_key, own_role="holder")
    selectors = [parse_selector(s) for s in ("imo:9319466", "cas:41661-47-6", "bic:DEUTDEFF")]
    assert key.tokens(selectors) == [key.token(s) for s in selectors]


def test_the_digest_is_labelled_and_not_the_token() -> None:
    token = bytes(32)
    assert token_digest(token) == hashlib.sha256(
        lp(b"exchange/match/token-digest/v1", token)
    ).digest()
    assert token_digest(token) != hashlib.sha256(token).digest()


def test_an_unknown_role_is_refused() -> None:
    a, b, _ = _keys()
    with pytest.raises(ValueError):
        BlindingKey.derive("agency-b", b, "agency-a", a.public_key, own_role="hub")


def test_the_fast_token_input_is_the_length_prefixed_encoding() -> None:
    for text in ("iban:GB82WEST12345698765432", "person:张伟:1980-03-15", "bic:DEUTDEFF"):
        selector = parse_selector(text)
        assert token_input(selector) == lp(TOKEN_LABEL, lp(selector.kind, selector.value))
