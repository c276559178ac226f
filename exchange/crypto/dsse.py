"""DSSE v1 envelopes (secure-systems-lab/dsse): every signed statement of the exchange is one.

A signature covers ``PAE(payload_type, payload)``, so it binds the payload type as well as the exact
payload bytes, and nothing has to be re-serialized before it is verified. :func:`verify_envelope`
returns the very bytes that verified; callers parse those and nothing else.

The JSON form follows the DSSE envelope spec: payload and signatures in base64 (standard or URL-safe
accepted), ``keyid`` optional, unrecognized fields ignored. None of those fields is signed except
through the PAE, so leniency there cannot change what verifies.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exchange.crypto.keys import SigningKey, VerifyKey
from exchange.errors import MalformedError, SignatureError, UnknownKeyError

_PAE_PREFIX = b"DSSEv1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding: ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``.

    Lengths are byte counts in ASCII decimal; the type is UTF-8.
    """
    type_bytes = payload_type.encode("utf-8")
    return b" ".join(
        [
            _PAE_PREFIX,
            str(len(type_bytes)).encode("ascii"),
            type_bytes,
            str(len(payload)).encode("ascii"),
            payload,
        ]
    )


@dataclass(frozen=True)
class Signature:
    """One signature of an envelope; ``keyid`` is an unauthenticated hint naming the key."""

    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope: the exact payload bytes, their type, and signatures over their PAE."""

    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...]

    def to_json(self) -> bytes:
        """The DSSE JSON envelope (compact, UTF-8, standard base64 with padding)."""
        document = {
            "payload": _b64encode(self.payload),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": signature.keyid, "sig": _b64encode(signature.sig)}
                for signature in self.signatures
            ],
        }
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        """Parse a DSSE JSON envelope; anything that is not one raises :class:`MalformedError`.

        Duplicate JSON keys are refused (two parsers could pick different ones), and so is an
        envelope without signatures.
        """
        try:
            document = json.loads(data, object_pairs_hook=_refuse_duplicate_keys)
        except (ValueError, TypeError, RecursionError) as e:
            raise MalformedError("DSSE envelope is not valid UTF-8 JSON") from e
        if not isinstance(document, dict):
            raise MalformedError("DSSE envelope is not a JSON object")
        payload = _b64decode(_required_str(document, "payload"), "payload")
        payload_type = _required_str(document, "payloadType")
        raw_signatures = document.get("signatures")
        if not isinstance(raw_signatures, list) or not raw_signatures:
            raise MalformedError("DSSE envelope needs a non-empty 'signatures' list")
        signatures = tuple(
            _parse_signature(entry, index) for index, entry in enumerate(raw_signatures)
        )
        return cls(payload=payload, payload_type=payload_type, signatures=signatures)


def sign_envelope(payload_type: str, payload: bytes, key: SigningKey) -> Envelope:
    """Sign ``payload`` as ``payload_type`` with ``key``; the signature's keyid is the key's id."""
    signature = Signature(keyid=key.public_key.key_id, sig=key.sign(pae(payload_type, payload)))
    return Envelope(payload=payload, payload_type=payload_type, signatures=(signature,))


def verify_envelope(
    envelope: Envelope, *, expected_type: str, keys: Mapping[str, VerifyKey]
) -> bytes:
    """Return the envelope's payload bytes once a signature by one of ``keys`` verifies over them.

    ``keys`` maps key ids to the keys trusted for this statement. The payload type must be exactly
    ``expected_type`` (:class:`MalformedError`, reason ``PAYLOAD_TYPE_MISMATCH``), so a payload
    signed as one kind of statement is never accepted as another. Signatures whose keyid is not in
    ``keys`` are skipped; if none is left, :class:`UnknownKeyError`; if all that are left fail,
    :class:`SignatureError`.
    """
    if envelope.payload_type != expected_type:
        raise MalformedError(
            f"payload type {envelope.payload_type!r}, expected {expected_type!r}",
            reason="PAYLOAD_TYPE_MISMATCH",
        )
    message = pae(envelope.payload_type, envelope.payload)
    last_failure: SignatureError | None = None
    for signature in envelope.signatures:
        key = keys.get(signature.keyid)
        if key is None:
            continue
        try:
            key.verify(message, signature.sig)
        except SignatureError as e:
            last_failure = e
            continue
        return envelope.payload
    if last_failure is not None:
        raise SignatureError(
            f"no signature on the {expected_type!r} envelope verifies"
        ) from last_failure
    raise UnknownKeyError(f"the {expected_type!r} envelope is not signed by any trusted key")


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str, field: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not, refusing any other character."""
    normalized = text.replace("-", "+").replace("_", "/")
    normalized += "=" * (-len(normalized) % 4)
    try:
        return base64.b64decode(normalized, validate=True)
    except (binascii.Error, ValueError) as e:
        raise MalformedError(f"DSSE envelope field {field!r} is not base64") from e


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for name, value in pairs:
        if name in document:
            raise MalformedError(f"DSSE envelope repeats the key {name!r}")
        document[name] = value
    return document


def _required_str(document: dict[str, Any], field: str) -> str:
    value = document.get(field)
    if not isinstance(value, str):
        raise MalformedError(f"DSSE envelope needs a string {field!r}")
    return value


def _parse_signature(entry: object, index: int) -> Signature:
    if not isinstance(entry, dict):
        raise MalformedError(f"DSSE envelope signatures[{index}] is not an object")
    keyid = entry.get("keyid")
    if keyid is None:
        keyid = ""
    if not isinstance(keyid, str):
        raise MalformedError(f"DSSE envelope signatures[{index}].keyid is not a string")
    sig = _b64decode(_required_str(entry, "sig"), f"signatures[{index}].sig")
    return Signature(keyid=keyid, sig=sig)
