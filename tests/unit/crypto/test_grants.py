"""Grants: HPKE wrap of an item key, bound to recipient, key and context through ``info``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from exchange.crypto.encoding import lp
from exchange.crypto.grants import GRANT_LENGTH, GrantContext, unwrap_item_key, wrap_item_key
from exchange.crypto.items import (
    ItemContext,
    check_key_commitment,
    key_commitment,
    new_item_key,
    open_item,
    seal_item,
)
from exchange.crypto.keys import DecryptionKey
from exchange.errors import GrantError, KeyCommitmentError, MalformedError

RECIPIENT = DecryptionKey.generate()
OTHER_RECIPIENT = DecryptionKey.generate()
ITEM_KEY = bytes(range(100, 132))
MANIFEST_HASH = hashlib.sha256(b"manifest").digest()


def context_for(recipient_key: DecryptionKey, **changes: object) -> GrantContext:
    context = GrantContext(
        originator="us-dea",
        recipient="cn-nncc",
        recipient_key_id=recipient_key.public_key.key_id,
        alert_id="0b7c3a52-5b7e-4c55-9a32-2f6f3f0c9d11",
        version=3,
        item_id="item-1",
        manifest_hash=MANIFEST_HASH,
    )
    return replace(context, **changes)  # type: ignore[arg-type]


CONTEXT = context_for(RECIPIENT)
GRANT = wrap_item_key(ITEM_KEY, RECIPIENT.public_key, CONTEXT)


def test_info_is_the_documented_lp_tuple() -> None:
    assert CONTEXT.info() == lp(
        b"exchange/grant/v1",
        "us-dea",
        "cn-nncc",
        RECIPIENT.public_key.key_id,
        "0b7c3a52-5b7e-4c55-9a32-2f6f3f0c9d11",
        3,
        "item-1",
        MANIFEST_HASH,
    )


def test_wrap_then_unwrap_returns_the_item_key() -> None:
    assert len(GRANT) == GRANT_LENGTH == 80
    assert unwrap_item_key(GRANT, RECIPIENT, CONTEXT) == ITEM_KEY


def test_every_wrap_uses_a_fresh_ephemeral_key() -> None:
    again = wrap_item_key(ITEM_KEY, RECIPIENT.public_key, CONTEXT)
    assert again[:32] != GRANT[:32]
    assert unwrap_item_key(again, RECIPIENT, CONTEXT) == ITEM_KEY


def test_a_grant_is_plain_rfc9180_single_shot_with_aes_256_gcm() -> None:
    """Any RFC 9180 implementation opens a grant given the suite and ``info``: no private framing."""
    suite = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
    assert suite.decrypt(GRANT, RECIPIENT.native, CONTEXT.info()) == ITEM_KEY
    weaker = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)
    with pytest.raises(InvalidTag):
        weaker.decrypt(GRANT, RECIPIENT.native, CONTEXT.info())


@pytest.mark.parametrize(
    "position",
    [0, 31, 32, 47, 63, 64, 79],
    ids=["enc-first", "enc-last", "ct-first", "ct-middle", "ct-last", "tag-first", "tag-last"],
)
def test_one_flipped_bit_in_a_grant_is_a_grant_error(position: int) -> None:
    altered = bytearray(GRANT)
    altered[position] ^= 0x01
    with pytest.raises(GrantError):
        unwrap_item_key(bytes(altered), RECIPIENT, CONTEXT)


def test_a_grant_wrapped_for_another_recipient_is_a_grant_error() -> None:
    for_other = wrap_item_key(ITEM_KEY, OTHER_RECIPIENT.public_key, context_for(OTHER_RECIPIENT))
    with pytest.raises(GrantError):
        unwrap_item_key(for_other, RECIPIENT, CONTEXT)


def test_a_grant_opened_with_another_private_key_is_a_grant_error() -> None:
    with pytest.raises(GrantError):
        unwrap_item_key(GRANT, OTHER_RECIPIENT, context_for(OTHER_RECIPIENT))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"originator": "mx-fgr"}, id="originator"),
        pytest.param({"recipient": "mx-fgr"}, id="recipient-agency"),
        pytest.param({"alert_id": "1b7c3a52-5b7e-4c55-9a32-2f6f3f0c9d11"}, id="alert"),
        pytest.param({"version": 4}, id="version"),
        pytest.param({"item_id": "item-2"}, id="item"),
        pytest.param({"manifest_hash": hashlib.sha256(b"other").digest()}, id="manifest-hash"),
        pytest.param({"originator": "us-deacn-nncc", "recipient": ""}, id="shifted-boundary"),
    ],
)
def test_a_grant_opened_with_another_context_is_a_grant_error(changes: dict[str, object]) -> None:
    with pytest.raises(GrantError):
        unwrap_item_key(GRANT, RECIPIENT, context_for(RECIPIENT, **changes))


def test_a_context_naming_another_recipient_key_is_a_grant_error() -> None:
    naming_other = context_for(RECIPIENT, recipient_key_id=OTHER_RECIPIENT.public_key.key_id)
    with pytest.raises(GrantError):
        unwrap_item_key(GRANT, RECIPIENT, naming_other)
    with pytest.raises(GrantError):
        wrap_item_key(ITEM_KEY, RECIPIENT.public_key, naming_other)


def test_the_recipient_key_id_is_bound_by_hpke_info_too() -> None:
    """Even past the key-id check, ``info`` carries the key id: a grant made naming another id fails."""
    suite = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
    naming_other = context_for(RECIPIENT, recipient_key_id=OTHER_RECIPIENT.public_key.key_id)
    forged = suite.encrypt(ITEM_KEY, RECIPIENT.public_key.native, naming_other.info())
    with pytest.raises(GrantError):
        unwrap_item_key(forged, RECIPIENT, CONTEXT)


@pytest.mark.parametrize(
    "make_grant",
    [
        pytest.param(lambda: GRANT[:-1], id="truncated"),
        pytest.param(lambda: GRANT + b"\x00", id="extended"),
        pytest.param(lambda: b"", id="empty"),
        pytest.param(lambda: bytes(32) + GRANT[32:], id="zero-enc-low-order"),
        pytest.param(lambda: (1).to_bytes(32, "little") + GRANT[32:], id="enc-point-one"),
        pytest.param(
            lambda: Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM).encrypt(
                ITEM_KEY[:16], RECIPIENT.public_key.native, CONTEXT.info()
            ),
            id="wraps-a-16-byte-key",
        ),
    ],
)
def test_malformed_grants_are_grant_errors(make_grant: Callable[[], bytes]) -> None:
    with pytest.raises(GrantError):
        unwrap_item_key(make_grant(), RECIPIENT, CONTEXT)


@pytest.mark.parametrize("item_key", [b"", bytes(16), bytes(33)], ids=["empty", "16", "33"])
def test_wrap_refuses_an_item_key_that_is_not_32_bytes(item_key: bytes) -> None:
    with pytest.raises(MalformedError):
        wrap_item_key(item_key, RECIPIENT.public_key, CONTEXT)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"manifest_hash": b""}, id="empty-manifest-hash"),
        pytest.param({"manifest_hash": bytes(31)}, id="short-manifest-hash"),
        pytest.param({"version": -1}, id="negative-version"),
    ],
)
def test_context_refuses_malformed_fields(changes: dict[str, object]) -> None:
    with pytest.raises(MalformedError):
        context_for(RECIPIENT, **changes)


# --- the whole path: seal, commit, wrap; unwrap, check, open ------------------------------------


def test_recipient_opens_an_item_through_its_grant_and_commitment() -> None:
    item_context = ItemContext(CONTEXT.originator, CONTEXT.alert_id, CONTEXT.version, "item-1")
    item_key = new_item_key()
    sealed = seal_item(item_key, b"CAS 41661-47-6", item_context)
    commitment = key_commitment(item_key, item_context)
    grant = wrap_item_key(item_key, RECIPIENT.public_key, CONTEXT)

    unwrapped = unwrap_item_key(grant, RECIPIENT, CONTEXT)
    check_key_commitment(unwrapped, item_context, commitment)
    assert open_item(unwrapped, sealed.ciphertext, item_context) == b"CAS 41661-47-6"


def test_a_grant_of_another_key_fails_the_signed_commitment() -> None:
    """The originator's commitment catches a well-formed grant that carries the wrong key."""
    item_context = ItemContext(CONTEXT.originator, CONTEXT.alert_id, CONTEXT.version, "item-1")
    commitment = key_commitment(new_item_key(), item_context)
    grant = wrap_item_key(new_item_key(), RECIPIENT.public_key, CONTEXT)
    with pytest.raises(KeyCommitmentError):
        check_key_commitment(unwrap_item_key(grant, RECIPIENT, CONTEXT), item_context, commitment)
