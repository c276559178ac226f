"""The exchange's X.509 identity: one CA per agency, and the one function that checks a certificate.

DESIGN §2: each agency runs its own CA (ECDSA P-256, because the ``cryptography`` path validator
rejects Ed25519-signed certificates). Everything an agency is known by is a certificate issued by
that CA and carrying the SAN URI ``exchange://agency/<id>``:

- its mTLS client certificate (ECDSA P-256, EKU ``clientAuth``);
- its signing key certificate (Ed25519 subject key), encryption key certificate (X25519) and
  witness key certificate (Ed25519, for cosigning checkpoints), each marked with its own private
  extended key usage (below) so that one can never be presented as another.

The hub and every client map each agency id to exactly one CA certificate and check that agency's
certificates with :func:`verify_issued_by` against that anchor alone. A bundle of CAs would not do:
any CA in a bundle could mint any id.

The hub has a CA of its own for its TLS server certificate (:func:`make_hub_ca`,
:func:`issue_hub_server_cert`); clients pin it from their profile.

Private extended key usages live under the UUID arc
``2.25.323837913269253438058612853981192222085`` (ITU-T X.667: the integer form of the UUID
``f3a0e9d6-80e3-4ed1-ad8e-20d9df8d7585``, generated for this project, so the arc needs no
registration and collides with nobody):

- ``<arc>.1`` exchange signing key (statements, DSSE),
- ``<arc>.2`` exchange encryption key (HPKE grants),
- ``<arc>.3`` exchange witness key (checkpoint cosignatures).

Everything here is pure and in memory: no files, no clock unless none is given.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar, get_args

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from exchange.errors import CertificateError, InvalidInputError, MalformedError

AGENCY_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
_AGENCY_ID_RE = re.compile(AGENCY_ID_PATTERN)

AGENCY_URI_PREFIX = "exchange://agency/"

EXCHANGE_OID_ARC = "2.25.323837913269253438058612853981192222085"
SIGNING_KEY_USAGE_OID = x509.ObjectIdentifier(f"{EXCHANGE_OID_ARC}.1")
ENCRYPTION_KEY_USAGE_OID = x509.ObjectIdentifier(f"{EXCHANGE_OID_ARC}.2")
WITNESS_KEY_USAGE_OID = x509.ObjectIdentifier(f"{EXCHANGE_OID_ARC}.3")

KeyPurpose = Literal["signing", "encryption", "witness"]
"""What an agency key certificate certifies its subject key for."""

CertificatePurpose = Literal["tls-client", "signing", "encryption", "witness"]
"""What :func:`verify_issued_by` checks a certificate for."""

KEY_PURPOSES: tuple[KeyPurpose, ...] = get_args(KeyPurpose)
CERTIFICATE_PURPOSES: tuple[CertificatePurpose, ...] = get_args(CertificatePurpose)

DEFAULT_CA_VALIDITY_DAYS = 3650
"""Ten years: a CA outlives the certificates it issues and is replaced deliberately."""

DEFAULT_CERTIFICATE_VALIDITY_DAYS = 825
"""About two years and three months, the longest leaf lifetime browsers ever accepted."""

DEFAULT_TLS_VALIDITY_DAYS = 90
"""An agency's mTLS client certificate: short-lived, renewed with ``exchange keys rotate --tls``."""

DEFAULT_KEY_VALIDITY_DAYS = 365
"""An agency's signing, encryption and witness key certificates: a year, renewed with
``exchange keys rotate``."""

CLOCK_SKEW_ALLOWANCE = timedelta(minutes=5)
"""Certificates start this long before ``now`` so that a peer whose clock lags still accepts them."""

_PURPOSE_OIDS: dict[KeyPurpose, x509.ObjectIdentifier] = {
    "signing": SIGNING_KEY_USAGE_OID,
    "encryption": ENCRYPTION_KEY_USAGE_OID,
    "witness": WITNESS_KEY_USAGE_OID,
}

_PURPOSE_SUBJECT_SUFFIX: dict[KeyPurpose, str] = {
    "signing": "signing key",
    "encryption": "encryption key",
    "witness": "witness key",
}

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | x25519.X25519PublicKey
"""The public keys certificates here certify."""

_E = TypeVar("_E", bound=x509.ExtensionType)


# --- agency ids --------------------------------------------------------------------------------


def check_agency_id(value: str) -> str:
    """Return ``value`` if it is a valid agency id, else raise :class:`InvalidInputError`.

    An agency id is 1 to 63 characters of lowercase ASCII letters, digits and ``-``, starting with
    a letter or digit (``us-dea``, ``cn-nncc``): it appears in URIs, file names and log entries, so
    it must not need escaping anywhere.
    """
    if not isinstance(value, str) or not _AGENCY_ID_RE.fullmatch(value):
        raise InvalidInputError(
            f"invalid agency id {value!r}: use 1-63 lowercase letters, digits and '-', "
            "starting with a letter or digit"
        )
    return value


def agency_uri(agency_id: str) -> str:
    """The SAN URI naming ``agency_id`` in its certificates: ``exchange://agency/<id>``."""
    return AGENCY_URI_PREFIX + check_agency_id(agency_id)


def agency_id_from_certificate(cert: x509.Certificate) -> str:
    """The agency id named by the certificate's one ``exchange://agency/<id>`` SAN URI.

    Raises :class:`CertificateError` when there is no such URI, more than one, or the id in it is
    not a valid agency id: a certificate that names two agencies names none.
    """
    san = _extension(cert, x509.SubjectAlternativeName)
    if san is None:
        raise CertificateError(
            f"certificate {_describe(cert)} has no subject alternative name {AGENCY_URI_PREFIX}<id>"
        )
    uris = [
        uri
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.startswith(AGENCY_URI_PREFIX)
    ]
    if len(uris) != 1:
        raise CertificateError(
            f"certificate {_describe(cert)} must name exactly one agency URI, names {len(uris)}"
        )
    agency_id = uris[0].removeprefix(AGENCY_URI_PREFIX)
    if not _AGENCY_ID_RE.fullmatch(agency_id):
        raise CertificateError(
            f"certificate {_describe(cert)} names an invalid agency id {agency_id!r}"
        )
    return agency_id


# --- keys and encodings ------------------------------------------------------------------------


def generate_tls_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 private key, the kind every CA and TLS certificate here uses."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """An ECDSA private key as unencrypted PKCS8 PEM; protecting the file is the caller's job."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_tls_private_key_pem(data: bytes) -> ec.EllipticCurvePrivateKey:
    """Load an unencrypted PEM ECDSA P-256 private key (a CA or TLS key).

    Raises :class:`MalformedError` for anything else.
    """
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise MalformedError("not an unencrypted PEM private key") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise MalformedError(f"expected an ECDSA P-256 private key, got {type(key).__name__}")
    return key


def certificate_to_pem(cert: x509.Certificate) -> bytes:
    """The certificate in PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate_to_der(cert: x509.Certificate) -> bytes:
    """The certificate in DER, the form statements carry."""
    return cert.public_bytes(serialization.Encoding.DER)


def load_certificate_pem(data: bytes) -> x509.Certificate:
    """Load exactly one PEM certificate; anything else raises :class:`MalformedError`.

    More than one certificate in the data is refused rather than silently taking the first: a file
    that is supposed to pin one CA must not smuggle in a second.
    """
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise MalformedError("not a PEM X.509 certificate") from e
    if len(certs) != 1:
        raise MalformedError(f"expected one PEM certificate, found {len(certs)}")
    return certs[0]


def load_certificate_der(data: bytes) -> x509.Certificate:
    """Load a DER certificate; anything else raises :class:`MalformedError`."""
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise MalformedError("not a DER X.509 certificate") from e


def fingerprint(subject: x509.Certificate | CertificatePublicKeyTypes) -> str:
    """A fingerprint for people to compare out of band: ``SHA256:`` + unpadded base64.

    For a certificate, the hash is over its DER; for an Ed25519 or X25519 public key over the raw
    32 bytes (the same value as :func:`exchange.crypto.keys.fingerprint`); for any other public key
    over its DER SubjectPublicKeyInfo.
    """
    if isinstance(subject, x509.Certificate):
        data = certificate_to_der(subject)
    elif isinstance(subject, (ed25519.Ed25519PublicKey, x25519.X25519PublicKey)):
        data = subject.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        data = subject.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    digest = hashlib.sha256(data).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


# --- issuing -----------------------------------------------------------------------------------


def make_agency_ca(
    agency_id: str,
    *,
    now: datetime | None = None,
    validity_days: int = DEFAULT_CA_VALIDITY_DAYS,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new self-signed CA for ``agency_id``: its ECDSA P-256 private key and certificate.

    The certificate is a CA that may issue end-entity certificates only (``path_length=0``), for
    certificate and CRL signing only, with subject ``CN=<id> exchange CA`` and the agency's SAN URI,
    which is how verifiers learn which agency the CA speaks for.
    """
    check_agency_id(agency_id)
    key = generate_tls_key()
    name = x509.Name([_common_name(f"{agency_id} exchange CA")])
    cert = _self_signed_ca(
        key,
        name,
        san=x509.SubjectAlternativeName([x509.UniformResourceIdentifier(agency_uri(agency_id))]),
        now=now,
        validity_days=validity_days,
    )
    return key, cert


def make_hub_ca(
    *,
    name: str = "exchange hub",
    now: datetime | None = None,
    validity_days: int = DEFAULT_CA_VALIDITY_DAYS,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new self-signed CA for the hub's TLS server certificate (``CN=<name> CA``).

    It names no agency: a certificate it issues can never pass :func:`verify_issued_by`.
    """
    if not name.strip():
        raise InvalidInputError("the hub CA needs a non-empty name")
    key = generate_tls_key()
    subject = x509.Name([_common_name(f"{name} CA")])
    return key, _self_signed_ca(key, subject, san=None, now=now, validity_days=validity_days)


def issue_tls_client_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    agency_id: str,
    public_key: ec.EllipticCurvePublicKey,
    *,
    now: datetime | None = None,
    validity_days: int = DEFAULT_CERTIFICATE_VALIDITY_DAYS,
) -> x509.Certificate:
    """The agency's mTLS client certificate for ``public_key`` (ECDSA P-256), issued by its CA.

    EKU ``clientAuth``, key usage ``digitalSignature``, SAN URI ``exchange://agency/<id>``.
    """
    _check_issuer(ca_key, ca_cert, agency_id)
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise InvalidInputError("a TLS client certificate certifies an ECDSA P-256 public key")
    builder = _leaf_builder(
        ca_key,
        ca_cert,
        subject=f"{agency_id} tls client",
        public_key=public_key,
        now=now,
        validity_days=validity_days,
    )
    builder = (
        builder.add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(agency_uri(agency_id))]),
            critical=False,
        )
    )
    return builder.sign(ca_key, hashes.SHA256())


def issue_key_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    agency_id: str,
    public_key: ed25519.Ed25519PublicKey | x25519.X25519PublicKey,
    purpose: KeyPurpose,
    *,
    now: datetime | None = None,
    validity_days: int = DEFAULT_CERTIFICATE_VALIDITY_DAYS,
) -> x509.Certificate:
    """Certify one of the agency's own keys for one purpose.

    - ``"signing"``: an Ed25519 key; key usage ``digitalSignature`` + ``contentCommitment``.
    - ``"encryption"``: an X25519 key; key usage ``keyAgreement``.
    - ``"witness"``: an Ed25519 key; key usage ``digitalSignature``.

    Each carries the purpose's private extended key usage (see the module docstring) and nothing
    else, so :func:`verify_issued_by` can refuse a certificate presented for another purpose.
    """
    _check_issuer(ca_key, ca_cert, agency_id)
    _check_key_purpose(purpose)
    _check_public_key_for_purpose(public_key, purpose, error=InvalidInputError)
    builder = _leaf_builder(
        ca_key,
        ca_cert,
        subject=f"{agency_id} {_PURPOSE_SUBJECT_SUFFIX[purpose]}",
        public_key=public_key,
        now=now,
        validity_days=validity_days,
    )
    builder = (
        builder.add_extension(_purpose_key_usage(purpose), critical=True)
        .add_extension(x509.ExtendedKeyUsage([_PURPOSE_OIDS[purpose]]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(agency_uri(agency_id))]),
            critical=False,
        )
    )
    return builder.sign(ca_key, hashes.SHA256())


def issue_hub_server_cert(
    hub_ca_key: ec.EllipticCurvePrivateKey,
    hub_ca_cert: x509.Certificate,
    hosts: list[str],
    *,
    now: datetime | None = None,
    validity_days: int = DEFAULT_CERTIFICATE_VALIDITY_DAYS,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh ECDSA P-256 key and a TLS server certificate for it, issued by the hub's CA.

    ``hosts`` become the subject alternative names exactly as given (duplicates dropped): IP
    addresses as IP SANs, everything else as DNS names. Callers list every name clients dial,
    typically the listen host, ``localhost`` and ``127.0.0.1``. EKU ``serverAuth``.
    """
    if not hosts:
        raise InvalidInputError("a hub server certificate needs at least one host name")
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        general_name = _host_general_name(host)
        if general_name not in names:
            names.append(general_name)
    key = generate_tls_key()
    builder = _leaf_builder(
        hub_ca_key,
        hub_ca_cert,
        subject=hosts[0],
        public_key=key.public_key(),
        now=now,
        validity_days=validity_days,
    )
    builder = (
        builder.add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
    )
    return key, builder.sign(hub_ca_key, hashes.SHA256())


# --- verifying ---------------------------------------------------------------------------------


def verify_issued_by(
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    *,
    purpose: CertificatePurpose,
    now: datetime,
    expected_agency_id: str | None = None,
) -> str:
    """Check that ``cert`` was issued for ``purpose`` by exactly ``ca_cert``; return its agency id.

    This is the one identity check of the exchange, used by the hub's auth interceptor and by every
    client. ``ca_cert`` must be the CA registered for the agency (looked up by id, never a bundle).
    It checks that:

    - ``ca_cert`` is an agency CA, valid at ``now``, naming one agency;
    - ``cert`` is signed by ``ca_cert`` directly and valid at ``now``;
    - for ``"tls-client"``: the ``cryptography`` path validator, with a store holding that CA
      alone, accepts it as a TLS client certificate (EKU ``clientAuth``, not a CA);
    - for ``"signing"``, ``"encryption"`` and ``"witness"`` (subject keys the path validator does
      not take): it is not a CA, carries exactly that purpose's key usage and private extended key
      usage, and certifies the right kind of key;
    - its SAN URI names the same agency as the CA's, and ``expected_agency_id`` when given.

    Raises :class:`CertificateError` saying what failed.
    """
    if purpose not in CERTIFICATE_PURPOSES:
        raise InvalidInputError(
            f"unknown certificate purpose {purpose!r}; expected one of {CERTIFICATE_PURPOSES}"
        )
    now = _aware(now)
    ca_agency_id = _check_agency_ca(ca_cert, now)
    if purpose == "tls-client":
        _verify_tls_client(cert, ca_cert, ca_agency_id, now)
    else:
        _verify_key_certificate(cert, ca_cert, ca_agency_id, purpose, now)
    agency_id = agency_id_from_certificate(cert)
    if agency_id != ca_agency_id:
        raise CertificateError(
            f"{purpose} certificate claims agency {agency_id!r} but was checked against the CA "
            f"of {ca_agency_id!r}"
        )
    if expected_agency_id is not None and agency_id != expected_agency_id:
        raise CertificateError(
            f"{purpose} certificate is for agency {agency_id!r}, expected {expected_agency_id!r}"
        )
    return agency_id


def _verify_tls_client(
    cert: x509.Certificate, ca_cert: x509.Certificate, ca_agency_id: str, now: datetime
) -> None:
    verifier = (
        PolicyBuilder().store(Store([ca_cert])).time(now).max_chain_depth(0).build_client_verifier()
    )
    try:
        verified = verifier.verify(cert, [])
    except VerificationError as e:
        raise CertificateError(
            f"TLS client certificate {_describe(cert)} does not verify against the CA of "
            f"{ca_agency_id!r}: {e}"
        ) from e
    if verified.chain[-1] != ca_cert:
        raise CertificateError(
            f"TLS client certificate {_describe(cert)} chains to another CA than {ca_agency_id!r}'s"
        )


def _verify_key_certificate(
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    ca_agency_id: str,
    purpose: KeyPurpose,
    now: datetime,
) -> None:
    what = f"certificate {_describe(cert)}, checked as a {purpose} key certificate,"
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as e:
        raise CertificateError(f"{what} was not issued by the CA of {ca_agency_id!r}") from e
    _check_validity(cert, now, what)
    basic = _extension(cert, x509.BasicConstraints)
    if basic is None or basic.ca:
        raise CertificateError(f"{what} must be an end-entity certificate (basicConstraints)")
    key_usage = _extension(cert, x509.KeyUsage)
    if key_usage != _purpose_key_usage(purpose):
        raise CertificateError(f"{what} does not carry the key usage of that purpose")
    extended = _extension(cert, x509.ExtendedKeyUsage)
    if extended is None or list(extended) != [_PURPOSE_OIDS[purpose]]:
        raise CertificateError(f"{what} is not certified for {purpose} (extended key usage)")
    _check_public_key_for_purpose(cert.public_key(), purpose, error=CertificateError)


def _check_agency_ca(ca_cert: x509.Certificate, now: datetime) -> str:
    what = f"CA certificate {_describe(ca_cert)}"
    basic = _extension(ca_cert, x509.BasicConstraints)
    if basic is None or not basic.ca:
        raise CertificateError(f"{what} is not a CA (basicConstraints)")
    key_usage = _extension(ca_cert, x509.KeyUsage)
    if key_usage is None or not key_usage.key_cert_sign:
        raise CertificateError(f"{what} may not sign certificates (keyUsage)")
    _check_validity(ca_cert, now, what)
    return agency_id_from_certificate(ca_cert)


# --- internals ---------------------------------------------------------------------------------


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInputError("pass a timezone-aware datetime (UTC) as 'now'")
    return now.astimezone(UTC)


def _check_validity_days(validity_days: int) -> timedelta:
    if isinstance(validity_days, bool) or not isinstance(validity_days, int) or validity_days < 1:
        raise InvalidInputError(f"validity_days must be a positive integer, got {validity_days!r}")
    return timedelta(days=validity_days)


def _check_validity(cert: x509.Certificate, now: datetime, what: str) -> None:
    if now < cert.not_valid_before_utc:
        raise CertificateError(
            f"{what} is not valid before {cert.not_valid_before_utc.isoformat()}"
        )
    if now > cert.not_valid_after_utc:
        raise CertificateError(f"{what} expired at {cert.not_valid_after_utc.isoformat()}")


def _self_signed_ca(
    key: ec.EllipticCurvePrivateKey,
    name: x509.Name,
    *,
    san: x509.SubjectAlternativeName | None,
    now: datetime | None,
    validity_days: int,
) -> x509.Certificate:
    start = _aware(now)
    lifetime = _check_validity_days(validity_days)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - CLOCK_SKEW_ALLOWANCE)
        .not_valid_after(start + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return builder.sign(key, hashes.SHA256())


def _leaf_builder(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    *,
    subject: str,
    public_key: PublicKey,
    now: datetime | None,
    validity_days: int,
) -> x509.CertificateBuilder:
    """The parts every end-entity certificate shares; never outlives its CA."""
    start = _aware(now)
    lifetime = _check_validity_days(validity_days)
    if start > ca_cert.not_valid_after_utc:
        raise CertificateError(
            f"CA certificate {_describe(ca_cert)} expired at "
            f"{ca_cert.not_valid_after_utc.isoformat()}; it can issue nothing"
        )
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([_common_name(subject)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(max(start - CLOCK_SKEW_ALLOWANCE, ca_cert.not_valid_before_utc))
        .not_valid_after(min(start + lifetime, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _check_issuer(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, agency_id: str
) -> None:
    """Refuse to issue for another agency than the CA's, or with a key that is not the CA's."""
    check_agency_id(agency_id)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise InvalidInputError("an agency CA signs with an ECDSA P-256 key")
    if ca_key.public_key() != ca_cert.public_key():
        raise InvalidInputError("the CA private key does not match the CA certificate")
    ca_agency_id = agency_id_from_certificate(ca_cert)
    if ca_agency_id != agency_id:
        raise InvalidInputError(
            f"the CA of {ca_agency_id!r} cannot issue a certificate for {agency_id!r}"
        )


def _check_key_purpose(purpose: str) -> None:
    if purpose not in KEY_PURPOSES:
        raise InvalidInputError(f"unknown key purpose {purpose!r}; expected one of {KEY_PURPOSES}")


def _check_public_key_for_purpose(
    public_key: object, purpose: KeyPurpose, *, error: type[InvalidInputError | CertificateError]
) -> None:
    expected: type[object] = (
        x25519.X25519PublicKey if purpose == "encryption" else ed25519.Ed25519PublicKey
    )
    if not isinstance(public_key, expected):
        raise error(
            f"a {purpose} key certificate certifies an {expected.__name__}, "
            f"not a {type(public_key).__name__}"
        )


def _key_usage(
    *,
    digital_signature: bool = False,
    content_commitment: bool = False,
    key_agreement: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _purpose_key_usage(purpose: KeyPurpose) -> x509.KeyUsage:
    if purpose == "signing":
        return _key_usage(digital_signature=True, content_commitment=True)
    if purpose == "encryption":
        return _key_usage(key_agreement=True)
    return _key_usage(digital_signature=True)


COMMON_NAME_LIMIT = 64
"""RFC 5280's upper bound on a common name, in characters."""


def _common_name(text: str) -> x509.NameAttribute[str]:
    """``CN=text``, cut to 64 characters: the name is for people, the SAN URI is the identity,
    and a 63-character agency id with `` encryption key`` after it is longer than that."""
    return x509.NameAttribute(NameOID.COMMON_NAME, text[:COMMON_NAME_LIMIT])


def _host_general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    if not host or not host.isascii() or any(c.isspace() for c in host):
        raise InvalidInputError(f"invalid host name {host!r} for a server certificate")
    return x509.DNSName(host.lower())


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    """The value of the certificate's extension of ``kind``, or ``None`` when it has none."""
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as e:
        raise CertificateError(f"certificate {_describe(cert)} has malformed extensions") from e


def _describe(cert: x509.Certificate) -> str:
    """Subject and serial, enough for an operator to find the certificate in question."""
    return f"{cert.subject.rfc4514_string()!r} (serial {cert.serial_number:x})"
