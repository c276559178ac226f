"""DSSE v1: byte-exact PAE (checked against the spec's own vector), envelopes, verification."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from exchange.crypto.dsse import Envelope, Signature, pae, sign_envelope, verify_envelope
from exchange.crypto.keys import SigningKey, VerifyKey
from exchange.errors import MalformedError, SignatureError, UnknownKeyError

from .vectors import load_vectors

SPEC = load_vectors("dsse/example.json")
PAYLOAD_TYPE = "application/vnd.exchange.test+protobuf"


def test_pae_is_byte_exact_with_the_dsse_spec_vector() -> None:
    encoded = pae(SPEC["payload_type"], SPEC["payload"].encode())
    assert encoded == SPEC["pae"].encode()


def test_the_spec_envelope_signature_verifies_over_our_pae() -> None:
    key = SPEC["key"]
    public_key = ec.EllipticCurvePublicNumbers(
        int(key["x"]), int(key["y"]), ec.SECP256R1()
    ).public_key()
    envelope = Envelope.from_json(json.dumps(SPEC["envelope"]).encode())
    (signature,) = envelope.signatures
    assert len(signature.sig) == 64
    der = encode_dss_signature(
        int.from_bytes(signature.sig[:32], "big"), int.from_bytes(signature.sig[32:], "big")
    )
    message = pae(envelope.payload_type, envelope.payload)
    public_key.verify(der, message, ec.ECDSA(hashes.SHA256()))
    assert envelope.payload == SPEC["payload"].encode()
    assert signature.keyid == ""


@pytest.mark.parametrize(
    ("payload_type", "payload", "expected"),
    [
        pytest.param("", b"", b"DSSEv1 0  0 ", id="empty"),
        pytest.param("t", b"\x00 \xff", b"DSSEv1 1 t 3 \x00 \xff", id="binary-body"),
        pytest.param("é", b"x", b"DSSEv1 2 \xc3\xa9 1 x", id="type-length-in-utf8-bytes"),
        pytest.param("a b", b"1 c", b"DSSEv1 3 a b 3 1 c", id="spaces-inside"),
    ],
)
def test_pae_cases(payload_type: str, payload: bytes, expected: bytes) -> None:
    assert pae(payload_type, payload) == expected


def test_pae_moves_no_bytes_between_type_and_body() -> None:
    assert pae("a b", b"c") != pae("a", b"b c")


# --- sign and verify ---------------------------------------------------------------------------

SIGNER = SigningKey.generate()
OTHER = SigningKey.generate()
TRUSTED = {SIGNER.public_key.key_id: SIGNER.public_key}


def test_sign_then_verify_returns_the_exact_payload() -> None:
    payload = b"\x0a\x03abc\x00"
    envelope = sign_envelope(PAYLOAD_TYPE, payload, SIGNER)
    assert envelope.signatures[0].keyid == SIGNER.public_key.key_id
    assert verify_envelope(envelope, expected_type=PAYLOAD_TYPE, keys=TRUSTED) == payload


def test_envelope_json_round_trips() -> None:
    envelope = sign_envelope(PAYLOAD_TYPE, b"payload", SIGNER)
    document = json.loads(envelope.to_json())
    assert document == {
        "payload": base64.b64encode(b"payload").decode(),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [
            {
                "keyid": SIGNER.public_key.key_id,
                "sig": base64.b64encode(envelope.signatures[0].sig).decode(),
            }
        ],
    }
    assert Envelope.from_json(envelope.to_json()) == envelope


def test_any_one_trusted_signature_is_enough() -> None:
    signed = sign_envelope(PAYLOAD_TYPE, b"p", SIGNER)
    unknown = Signature(keyid=OTHER.public_key.key_id, sig=OTHER.sign(pae(PAYLOAD_TYPE, b"p")))
    envelope = Envelope(b"p", PAYLOAD_TYPE, (unknown, *signed.signatures))
    assert verify_envelope(envelope, expected_type=PAYLOAD_TYPE, keys=TRUSTED) == b"p"


def _retype(envelope: Envelope) -> Envelope:
    return Envelope(envelope.payload, "application/vnd.exchange.other", envelope.signatures)


def _alter_payload(envelope: Envelope) -> Envelope:
    return Envelope(envelope.payload + b"!", envelope.payload_type, envelope.signatures)


def _flip_signature_bit(envelope: Envelope) -> Envelope:
    (signature,) = envelope.signatures
    sig = bytes([signature.sig[0] ^ 1]) + signature.sig[1:]
    return Envelope(envelope.payload, envelope.payload_type, (Signature(signature.keyid, sig),))


def _signed_by_other_under_trusted_keyid(envelope: Envelope) -> Envelope:
    sig = OTHER.sign(pae(envelope.payload_type, envelope.payload))
    return Envelope(
        envelope.payload, envelope.payload_type, (Signature(SIGNER.public_key.key_id, sig),)
    )


def _unknown_keyid(envelope: Envelope) -> Envelope:
    (signature,) = envelope.signatures
    return Envelope(envelope.payload, envelope.payload_type, (Signature("0" * 32, signature.sig),))


def _no_signatures(envelope: Envelope) -> Envelope:
    return Envelope(envelope.payload, envelope.payload_type, ())


def _signed_with_type_in_body(envelope: Envelope) -> Envelope:
    # The signer signed payload "p" as type "x y"; an attacker claims type "x" and body "y p".
    signature = SIGNER.sign(pae("x y", b"p"))
    return Envelope(b"y p", "x", (Signature(SIGNER.public_key.key_id, signature),))


@pytest.mark.parametrize(
    ("tamper", "expected_type", "error", "reason"),
    [
        pytest.param(
            _retype, PAYLOAD_TYPE, MalformedError, "PAYLOAD_TYPE_MISMATCH", id="wrong-type"
        ),
        pytest.param(
            lambda e: e,
            "application/vnd.other",
            MalformedError,
            "PAYLOAD_TYPE_MISMATCH",
            id="unexpected-type",
        ),
        pytest.param(
            _alter_payload, PAYLOAD_TYPE, SignatureError, "SIGNATURE_INVALID", id="payload"
        ),
        pytest.param(
            _flip_signature_bit,
            PAYLOAD_TYPE,
            SignatureError,
            "SIGNATURE_INVALID",
            id="bad-signature",
        ),
        pytest.param(
            _signed_by_other_under_trusted_keyid,
            PAYLOAD_TYPE,
            SignatureError,
            "SIGNATURE_INVALID",
            id="other-key-claims-trusted-keyid",
        ),
        pytest.param(
            _unknown_keyid, PAYLOAD_TYPE, UnknownKeyError, "UNKNOWN_SIGNING_KEY", id="no-known-key"
        ),
        pytest.param(
            _no_signatures, PAYLOAD_TYPE, UnknownKeyError, "UNKNOWN_SIGNING_KEY", id="no-signatures"
        ),
        pytest.param(
            _signed_with_type_in_body,
            "x",
            SignatureError,
            "SIGNATURE_INVALID",
            id="type-body-shift",
        ),
    ],
)
def test_verify_envelope_refuses_with_a_named_error(
    tamper: Callable[[Envelope], Envelope],
    expected_type: str,
    error: type[Exception],
    reason: str,
) -> None:
    envelope = tamper(sign_envelope(PAYLOAD_TYPE, b"statement", SIGNER))
    with pytest.raises(error) as raised:
        verify_envelope(envelope, expected_type=expected_type, keys=TRUSTED)
    assert getattr(raised.value, "reason", None) == reason


def test_verify_with_an_empty_key_set_is_unknown_key() -> None:
    envelope = sign_envelope(PAYLOAD_TYPE, b"statement", SIGNER)
    with pytest.raises(UnknownKeyError):
        verify_envelope(envelope, expected_type=PAYLOAD_TYPE, keys={})


def test_verify_uses_the_key_the_mapping_trusts_not_the_keyid_alone() -> None:
    envelope = sign_envelope(PAYLOAD_TYPE, b"statement", SIGNER)
    keys: dict[str, VerifyKey] = {SIGNER.public_key.key_id: OTHER.public_key}
    with pytest.raises(SignatureError):
        verify_envelope(envelope, expected_type=PAYLOAD_TYPE, keys=keys)


# --- JSON parsing ------------------------------------------------------------------------------


def test_from_json_follows_the_spec_parsing_rules() -> None:
    signature = SIGNER.sign(pae(PAYLOAD_TYPE, b"\xfb\xff"))
    document = {
        "payload": base64.urlsafe_b64encode(b"\xfb\xff").decode().rstrip("="),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"sig": base64.urlsafe_b64encode(signature).decode(), "extra": 1}],
        "future": {"field": True},
    }
    envelope = Envelope.from_json(json.dumps(document).encode())
    assert envelope.payload == b"\xfb\xff"
    assert envelope.signatures == (Signature(keyid="", sig=signature),)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'{"payloadType": "t", "signatures": [{"sig": ""}]}', id="no-payload"),
        pytest.param(b'{"payload": "", "signatures": [{"sig": ""}]}', id="no-type"),
        pytest.param(b'{"payload": 1, "payloadType": "t", "signatures": []}', id="payload-int"),
        pytest.param(b'{"payload": "", "payloadType": "t"}', id="no-signatures"),
        pytest.param(
            b'{"payload": "", "payloadType": "t", "signatures": []}', id="zero-signatures"
        ),
        pytest.param(b'{"payload": "", "payloadType": "t", "signatures": {}}', id="signatures-obj"),
        pytest.param(b'{"payload": "", "payloadType": "t", "signatures": [1]}', id="signature-int"),
        pytest.param(b'{"payload": "", "payloadType": "t", "signatures": [{}]}', id="no-sig"),
        pytest.param(
            b'{"payload": "", "payloadType": "t", "signatures": [{"sig": "", "keyid": 7}]}',
            id="keyid-int",
        ),
        pytest.param(
            b'{"payload": "a!b=", "payloadType": "t", "signatures": [{"sig": ""}]}', id="bad-b64"
        ),
        pytest.param(
            b'{"payload": "a", "payloadType": "t", "signatures": [{"sig": ""}]}', id="b64-1-char"
        ),
        pytest.param(
            b'{"payload": "", "payload": "", "payloadType": "t", "signatures": [{"sig": ""}]}',
            id="duplicate-key",
        ),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deep-nesting"),
    ],
)
def test_from_json_refuses_what_is_not_an_envelope(data: bytes) -> None:
    with pytest.raises(MalformedError):
        Envelope.from_json(data)
