"""``AgencyKeys``: an agency's key statement, certified by its own CA and signed by its own key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from exchange import pki
from exchange.crypto.dsse import Envelope, sign_envelope, verify_envelope
from exchange.crypto.keys import EncryptionKey, SigningKey, VerifyKey
from exchange.errors import CertificateError, MalformedError
from exchange.statements.codec import PAYLOAD_TYPES, encode, parse_canonical, sha256
from exchange.v1 import statements_pb2

PAYLOAD_TYPE = PAYLOAD_TYPES["agency_keys"]


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
    ) -> Envelope:
        """Build and sign key statement number ``key_number`` for ``agency_id``."""
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
        return sign_envelope(PAYLOAD_TYPE, encode(message), signing_key)

    @classmethod
    def verify(cls, envelope: Envelope, ca_certificate: x509.Certificate, *, now: datetime) -> AgencyKeys:
        """Check a key statement against the agency's own CA.

        The statement names its keys through certificates: each must be issued by
        ``ca_certificate`` for the stated agency and purpose, and the envelope must be signed by
        the certified signing key.  Raises :class:`VerificationError` subclasses on failure.
        """
        if envelope.payload_type != PAYLOAD_TYPE:
            raise MalformedError(
                f"expected payload type {PAYLOAD_TYPE}, got {envelope.payload_type!r}",
                reason="PAYLOAD_TYPE_MISMATCH",
            )
        message = parse_canonical(statements_pb2.AgencyKeys, envelope.payload, what="agency keys")
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
        return cls(
            envelope=envelope,
            message=message,
            verify_key=verify_key,
            encryption_key=EncryptionKey.from_public_key(encryption_cert.public_key()),
            witness_key=witness_key,
        )
