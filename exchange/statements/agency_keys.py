"""``AgencyKeys``: an agency's key statement, certified by its own CA and signed by its own key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from exchange import pki
from exchange.crypto.dsse import Envelope, Signature, pae, sign_envelope, verify_envelope
from exchange.crypto.keys import EncryptionKey, SigningKey, VerifyKey, public_key_id
from exchange.errors import (
    CertificateError,
    InvalidInputError,
    MalformedError,
    SignatureError,
    UnknownKeyError,
)
from exchange.statements.codec import PAYLOAD_TYPES, encode, parse_canonical, sha256
from exchange.statements.key_compromise import (
    Compromise,
    add_recovery_signature,
    compromises_of,
    recovery_key_of,
)
from exchange.v1 import statements_pb2

PAYLOAD_TYPE = PAYLOAD_TYPES["agency_keys"]

CA_KEY_ID_PREFIX = "ca:"
"""Key ids of CA signatures start with this, so they can never be taken for an Ed25519 key id."""


def ca_key_id(ca_certificate: x509.Certificate) -> str:
    """The DSSE key id of a CA signature: ``ca:`` and the key id of the CA's SubjectPublicKeyInfo."""
    spki = ca_certificate.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    return CA_KEY_ID_PREFIX + public_key_id(spki)


def add_signature(envelope: Envelope, key: SigningKey) -> Envelope:
    """``envelope`` with one more Ed25519 signature over the same PAE (nothing else changes)."""
    signature = Signature(
        keyid=key.public_key.key_id, sig=key.sign(pae(envelope.payload_type, envelope.payload))
    )
    return Envelope(
        payload=envelope.payload,
        payload_type=envelope.payload_type,
        signatures=(*envelope.signatures, signature),
    )


def add_ca_signature(
    envelope: Envelope, ca_key: ec.EllipticCurvePrivateKey, ca_certificate: x509.Certificate
) -> Envelope:
    """``envelope`` countersigned by the agency's CA key (ECDSA P-256, SHA-256, over the PAE)."""
    if ca_key.public_key() != ca_certificate.public_key():
        raise InvalidInputError("the CA private key does not match the CA certificate")
    sig = ca_key.sign(pae(envelope.payload_type, envelope.payload), ec.ECDSA(hashes.SHA256()))
    return Envelope(
        payload=envelope.payload,
        payload_type=envelope.payload_type,
        signatures=(*envelope.signatures, Signature(keyid=ca_key_id(ca_certificate), sig=sig)),
    )


def verify_ca_signature(envelope: Envelope, ca_certificate: x509.Certificate) -> None:
    """Raise unless a signature by ``ca_certificate``'s key covers the envelope's PAE.

    :class:`UnknownKeyError` when the envelope carries no signature with the CA's key id,
    :class:`SignatureError` when every one that does fails.
    """
    key_id = ca_key_id(ca_certificate)
    public_key = ca_certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise CertificateError("an agency CA signs with an ECDSA P-256 key")
    message = pae(envelope.payload_type, envelope.payload)
    candidates = [s for s in envelope.signatures if s.keyid == key_id]
    if not candidates:
        raise UnknownKeyError("the key statement is not signed by the agency's CA key")
    for signature in candidates:
        try:
            public_key.verify(signature.sig, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return
    raise SignatureError("the CA signature on the key statement does not verify")


def verify_signed_by(envelope: Envelope, key: VerifyKey) -> None:
    """Raise unless ``key`` itself (not merely some trusted key) signed the envelope."""
    verify_envelope(envelope, expected_type=PAYLOAD_TYPE, keys={key.key_id: key})


def parse_unverified(envelope: Envelope) -> statements_pb2.AgencyKeys:
    """The statement's payload parsed strictly, signatures not checked yet (to learn its number
    and time before choosing what to check it against)."""
    if envelope.payload_type != PAYLOAD_TYPE:
        raise MalformedError(
            f"expected payload type {PAYLOAD_TYPE}, got {envelope.payload_type!r}",
            reason="PAYLOAD_TYPE_MISMATCH",
        )
    return parse_canonical(statements_pb2.AgencyKeys, envelope.payload, what="agency keys")


def _certificate(der: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise MalformedError(f"{what} is not a DER X.509 certificate") from e


@dataclass(frozen=True)
class AgencyKeys:
    """A verified ``AgencyKeys`` statement: the keys an agency signs and receives with."""

    envelope: Envelope
    message: statements_pb2.AgencyKeys
    verify_key: VerifyKey
    encryption_key: EncryptionKey
    witness_key: VerifyKey | None

    @property
    def agency_id(self) -> str:
        return self.message.agency_id

    @property
    def key_number(self) -> int:
        return self.message.key_number

    @property
    def hash(self) -> bytes:
        return sha256(self.envelope.payload)

    @property
    def previous_keys_hash(self) -> bytes:
        return self.message.previous_keys_hash

    @property
    def created_at(self) -> datetime:
        return self.message.created_at.ToDatetime(tzinfo=UTC)

    @property
    def signing_certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.message.signing_certificate)

    @property
    def encryption_certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.message.encryption_certificate)

    @property
    def witness_certificate(self) -> x509.Certificate | None:
        if not self.message.witness_certificate:
            return None
        return x509.load_der_x509_certificate(self.message.witness_certificate)

    @property
    def compromised(self) -> tuple[Compromise, ...]:
        """The keys of earlier statements this one marks compromised, each from a time on."""
        return compromises_of(self.message)

    @property
    def recovery_key(self) -> VerifyKey | None:
        """The offline recovery key this statement names (statement 1 pins it), if any."""
        return recovery_key_of(self.message)

    @property
    def new_ca_certificate(self) -> x509.Certificate | None:
        """The agency's new CA, in a recovery statement only (see
        :mod:`exchange.statements.key_compromise`)."""
        if not self.message.ca_certificate:
            return None
        return x509.load_der_x509_certificate(self.message.ca_certificate)

    @property
    def is_recovery(self) -> bool:
        return bool(self.message.ca_certificate)

    @property
    def signer_key_ids(self) -> tuple[str, ...]:
        """The key ids the envelope's signatures name (unauthenticated hints, for display)."""
        return tuple(s.keyid for s in self.envelope.signatures)

    @classmethod
    def create_rotation(
        cls,
        previous: AgencyKeys,
        *,
        previous_signing_key: SigningKey,
        signing_key: SigningKey,
        ca_key: ec.EllipticCurvePrivateKey,
        ca_certificate: x509.Certificate,
        signing_certificate: x509.Certificate,
        encryption_certificate: x509.Certificate,
        witness_certificate: x509.Certificate | None,
        created_at: datetime,
        compromised: Sequence[Compromise] = (),
    ) -> Envelope:
        """Key statement number ``previous.key_number + 1``, replacing ``previous``.

        Signed by the new signing key (it proves possession), by the signing key of ``previous``
        (the key being replaced: a stolen CA key alone cannot rotate) and by the agency's CA key
        (a stolen signing key alone cannot rotate), as :mod:`exchange.statements.key_sequence`
        requires of every statement after the first. ``compromised`` marks keys of earlier
        statements compromised (``exchange keys revoke --compromised``: a rotation that also
        says why).
        """
        if previous_signing_key.public_key != previous.verify_key:
            raise InvalidInputError(
                f"the signing key given is not the one of key statement {previous.key_number}: "
                "restore the profile's signing-key.pem that matches its latest statement"
            )
        envelope = cls.create(
            agency_id=previous.agency_id,
            key_number=previous.key_number + 1,
            signing_key=signing_key,
            signing_certificate=signing_certificate,
            encryption_certificate=encryption_certificate,
            witness_certificate=witness_certificate,
            created_at=created_at,
            previous_keys_hash=previous.hash,
            compromised=compromised,
        )
        if previous_signing_key.public_key != signing_key.public_key:
            envelope = add_signature(envelope, previous_signing_key)
        return add_ca_signature(envelope, ca_key, ca_certificate)

    @classmethod
    def create_recovery(
        cls,
        previous: AgencyKeys,
        *,
        recovery_key: SigningKey,
        signing_key: SigningKey,
        new_ca_key: ec.EllipticCurvePrivateKey,
        new_ca_certificate: x509.Certificate,
        signing_certificate: x509.Certificate,
        encryption_certificate: x509.Certificate,
        witness_certificate: x509.Certificate | None,
        compromised: Sequence[Compromise],
        created_at: datetime,
        next_recovery_key: VerifyKey | None = None,
    ) -> Envelope:
        """Recovery statement ``previous.key_number + 1``: a new CA and keys it certifies.

        Signed by its own new signing key, by the new CA and by the offline ``recovery_key``
        (which must be the one the sequence pins); neither the old CA nor the old signing key is
        needed. ``next_recovery_key`` replaces the recovery key from then on (default: the same).
        """
        envelope = cls.create(
            agency_id=previous.agency_id,
            key_number=previous.key_number + 1,
            signing_key=signing_key,
            signing_certificate=signing_certificate,
            encryption_certificate=encryption_certificate,
            witness_certificate=witness_certificate,
            created_at=created_at,
            previous_keys_hash=previous.hash,
            compromised=compromised,
            recovery_key=next_recovery_key or recovery_key.public_key,
            ca_certificate=new_ca_certificate,
        )
        envelope = add_ca_signature(envelope, new_ca_key, new_ca_certificate)
        return add_recovery_signature(envelope, recovery_key)

    @classmethod
    def create(
        cls,
        *,
        agency_id: str,
        key_number: int,
        signing_key: SigningKey,
        signing_certificate: x509.Certificate,
        encryption_certificate: x509.Certificate,
        witness_certificate: x509.Certificate | None,
        created_at: datetime,
        previous_keys_hash: bytes = b"",
        compromised: Sequence[Compromise] = (),
        recovery_key: VerifyKey | None = None,
        ca_certificate: x509.Certificate | None = None,
    ) -> Envelope:
        """Build and sign key statement number ``key_number`` for ``agency_id``.

        ``compromised`` marks keys of earlier statements compromised; ``recovery_key`` names the
        offline recovery key (statement 1 pins it); ``ca_certificate`` makes it a recovery
        statement naming the agency's new CA (:meth:`create_recovery` signs one as required).
        """
        message = statements_pb2.AgencyKeys(
            agency_id=agency_id,
            key_number=key_number,
            signing_certificate=signing_certificate.public_bytes(Encoding.DER),
            encryption_certificate=encryption_certificate.public_bytes(
                Encoding.DER
            ),
            previous_keys_hash=previous_keys_hash,
        )
        if witness_certificate is not None:
            message.witness_certificate = witness_certificate.public_bytes(
                Encoding.DER
            )
        message.created_at.FromDatetime(created_at)
        for compromise in compromised:
            entry = message.compromised.add(
                key_type=compromise.key_type, key_id=compromise.key_id
            )
            entry.since.FromDatetime(compromise.since)
        if recovery_key is not None:
            message.recovery_public_key = recovery_key.raw
        if ca_certificate is not None:
            message.ca_certificate = ca_certificate.public_bytes(Encoding.DER)
        compromises_of(message)  # refuse an unknown key type or a time after the statement's
        return sign_envelope(PAYLOAD_TYPE, encode(message), signing_key)

    @classmethod
    def verify(cls, envelope: Envelope, ca_certificate: x509.Certificate, *, now: datetime) -> AgencyKeys:
        """Check a key statement against the agency's own CA.

        The statement names its keys through certificates: each must be issued by
        ``ca_certificate`` for the stated agency and purpose, and the envelope must be signed by
        the certified signing key.  Raises :class:`VerificationError` subclasses on failure.
        """
        message = parse_unverified(envelope)
        signing_cert = _certificate(message.signing_certificate, "signing certificate")
        encryption_cert = _certificate(message.encryption_certificate, "encryption certificate")
        checks: tuple[tuple[x509.Certificate, pki.KeyPurpose], ...] = (
            (signing_cert, "signing"),
            (encryption_cert, "encryption"),
        )
        for cert, purpose in checks:
            agency = pki.verify_issued_by(cert, ca_certificate, purpose=purpose, now=now)
            if agency != message.agency_id:
                raise CertificateError(
                    f"{purpose} certificate is for {agency!r}, statement names {message.agency_id!r}"
                )
        verify_key = VerifyKey.from_public_key(signing_cert.public_key())
        verify_envelope(envelope, expected_type=PAYLOAD_TYPE, keys={verify_key.key_id: verify_key})
        witness_key = None
        if message.witness_certificate:
            witness_cert = _certificate(message.witness_certificate, "witness certificate")
            pki.verify_issued_by(witness_cert, ca_certificate, purpose="witness", now=now)
            witness_key = VerifyKey.from_public_key(witness_cert.public_key())
        compromises_of(message)
        recovery_key_of(message)
        if message.ca_certificate:
            new_ca = _certificate(message.ca_certificate, "new CA certificate")
            if pki.certificate_to_der(new_ca) != pki.certificate_to_der(ca_certificate):
                raise CertificateError(
                    f"key statement {message.key_number} names a new CA whose certificate is not "
                    "the one its keys were checked against"
                )
        return cls(
            envelope=envelope,
            message=message,
            verify_key=verify_key,
            encryption_key=EncryptionKey.from_public_key(encryption_cert.public_key()),
            witness_key=witness_key,
        )
