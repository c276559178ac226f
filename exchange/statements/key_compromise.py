"""Compromised keys and the offline recovery key (DESIGN §4.1, OPERATIONS "Key lifecycle").

An ``AgencyKeys`` statement may mark keys of earlier statements compromised, each from a time
on (``compromised``): whatever such a key signed from then on is untrusted, and the hub makes no
grant to such an encryption key. The time compared is the later of the statement's own date (the
signer's word, which a thief can backdate) and the time the hub logged it.

Statement 1 pins the public half of the agency's offline recovery key (``recovery_public_key``).
That key alone can sign a *recovery statement*: the next statement of the sequence carrying a new
CA certificate (``ca_certificate``) and keys certified by that CA, signed by the recovery key, the
new CA and its own new signing key. It needs neither the old CA key (lost or stolen) nor the old
signing key. The rules of the sequence itself live in :mod:`exchange.statements.key_sequence`.

Everything here is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from exchange.crypto.dsse import Envelope, Signature, pae
from exchange.crypto.keys import SigningKey, VerifyKey
from exchange.errors import MalformedError, SignatureError, UnknownKeyError
from exchange.v1 import statements_pb2

KEY_TYPES = ("signing", "encryption", "witness", "ca")
"""The kinds of key a statement can mark compromised."""

RECOVERY_KEY_ID_PREFIX = "recovery:"
"""Key ids of recovery-key signatures start with this, so they are never taken for another key."""

COMPROMISED = "KEY_COMPROMISED"
"""The reason of a statement flagged because the key that signed it was compromised by then."""


@dataclass(frozen=True)
class Compromise:
    """One key marked compromised: what kind, which key, from when, and by which statement."""

    agency_id: str
    key_type: str
    key_id: str
    since: datetime
    key_number: int
    """The statement that marked it."""

    def to_json(self) -> dict[str, object]:
        return {
            "agency_id": self.agency_id,
            "key_type": self.key_type,
            "key_id": self.key_id,
            "since": self.since.isoformat().replace("+00:00", "Z"),
            "key_number": self.key_number,
        }


def compromises_of(message: statements_pb2.AgencyKeys) -> tuple[Compromise, ...]:
    """The compromises ``message`` states, checked for shape.

    Raises :class:`MalformedError` for an unknown key type, an empty key id or a time after the
    statement's own date (a compromise cannot be known before it happens).
    """
    created_at = message.created_at.ToDatetime(tzinfo=UTC)
    found = []
    for index, entry in enumerate(message.compromised):
        where = f"key statement {message.key_number}: compromised[{index}]"
        if entry.key_type not in KEY_TYPES:
            raise MalformedError(
                f"{where}: unknown key type {entry.key_type!r}; use one of {', '.join(KEY_TYPES)}",
                reason="UNKNOWN_KEY_TYPE",
            )
        if not entry.key_id:
            raise MalformedError(f"{where}: names no key id")
        if not entry.HasField("since"):
            raise MalformedError(f"{where}: has no time since which the key is compromised")
        since = entry.since.ToDatetime(tzinfo=UTC)
        if since > created_at:
            raise MalformedError(
                f"{where}: the key is marked compromised from {since.isoformat()}, after the "
                f"statement's own date {created_at.isoformat()}"
            )
        found.append(
            Compromise(
                agency_id=message.agency_id,
                key_type=entry.key_type,
                key_id=entry.key_id,
                since=since,
                key_number=message.key_number,
            )
        )
    return tuple(found)


def earliest(compromises: Iterable[Compromise]) -> dict[str, Compromise]:
    """By key id, the compromise with the earliest time (a key marked twice counts from the first)."""
    by_key: dict[str, Compromise] = {}
    for compromise in compromises:
        known = by_key.get(compromise.key_id)
        if known is None or compromise.since < known.since:
            by_key[compromise.key_id] = compromise
    return by_key


def recovery_key_of(message: statements_pb2.AgencyKeys) -> VerifyKey | None:
    """The recovery public key a statement names, if any; raises :class:`MalformedError` when it
    is not a raw Ed25519 public key."""
    if not message.recovery_public_key:
        return None
    try:
        return VerifyKey.from_bytes(bytes(message.recovery_public_key))
    except MalformedError as e:
        raise MalformedError(
            f"key statement {message.key_number}: the recovery public key is not a raw "
            "Ed25519 public key"
        ) from e


def recovery_key_id(key: VerifyKey) -> str:
    """The DSSE key id of a recovery-key signature."""
    return RECOVERY_KEY_ID_PREFIX + key.key_id


def add_recovery_signature(envelope: Envelope, recovery_key: SigningKey) -> Envelope:
    """``envelope`` signed by the offline recovery key too (Ed25519 over the same PAE)."""
    signature = Signature(
        keyid=recovery_key_id(recovery_key.public_key),
        sig=recovery_key.sign(pae(envelope.payload_type, envelope.payload)),
    )
    return Envelope(
        payload=envelope.payload,
        payload_type=envelope.payload_type,
        signatures=(*envelope.signatures, signature),
    )


def verify_recovery_signature(envelope: Envelope, key: VerifyKey) -> None:
    """Raise unless the recovery key ``key`` signed the envelope.

    :class:`UnknownKeyError` when no signature names it, :class:`SignatureError` when every one
    that does fails.
    """
    key_id = recovery_key_id(key)
    message = pae(envelope.payload_type, envelope.payload)
    candidates = [s for s in envelope.signatures if s.keyid == key_id]
    if not candidates:
        raise UnknownKeyError("the statement is not signed by the recovery key pinned")
    for signature in candidates:
        try:
            key.verify(message, signature.sig)
        except SignatureError:
            continue
        return
    raise SignatureError("the recovery-key signature on the statement does not verify")


def untrusted_reason(
    envelope: Envelope,
    keys: Mapping[str, VerifyKey],
    compromised: Mapping[str, Compromise],
    *,
    signed_at: datetime | None,
    logged_at: datetime | None,
) -> str:
    """Why ``envelope`` must not be trusted although its signature verifies, or ``""``.

    It is untrusted when every key of ``keys`` whose signature on it verifies was marked
    compromised at or before the later of ``signed_at`` and ``logged_at``. Without either time
    nothing is known of when it was signed, so a compromised signer is enough.
    """
    message = pae(envelope.payload_type, envelope.payload)
    signers: list[VerifyKey] = []
    for signature in envelope.signatures:
        key = keys.get(signature.keyid)
        if key is None or key in signers:
            continue
        try:
            key.verify(message, signature.sig)
        except SignatureError:
            continue
        signers.append(key)
    if not signers:
        return ""
    moments = [t for t in (signed_at, logged_at) if t is not None]
    moment = max(moments) if moments else None
    reasons = []
    for key in signers:
        compromise = compromised.get(key.key_id)
        if compromise is None or (moment is not None and moment < compromise.since):
            return ""
        reasons.append(
            f"signed by {compromise.agency_id}'s {compromise.key_type} key "
            f"{key.fingerprint}, compromised since {compromise.since.isoformat()} "
            f"(key statement {compromise.key_number})"
        )
    return "; ".join(reasons)
