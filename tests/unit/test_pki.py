"""Agency identity: one CA per agency, and the one check every certificate goes through."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from exchange import pki
from exchange.crypto.keys import VerifyKey
from exchange.errors import CertificateError, InvalidInputError, MalformedError

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Agency:
    """One agency's CA and every certificate it issues for itself, made at ``NOW``."""

    agency_id: str
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    tls: x509.Certificate
    signing: x509.Certificate
    encryption: x509.Certificate
    witness: x509.Certificate

    def certificate(self, purpose: pki.CertificatePurpose) -> x509.Certificate:
        return {
            "tls-client": self.tls,
            "signing": self.signing,
            "encryption": self.encryption,
            "witness": self.witness,
        }[purpose]


def make_agency(agency_id: str, *, now: datetime = NOW) -> Agency:
    ca_key, ca = pki.make_agency_ca(agency_id, now=now)
    return Agency(
        agency_id=agency_id,
        ca_key=ca_key,
        ca=ca,
        tls=pki.issue_tls_client_cert(
            ca_key, ca, agency_id, pki.generate_tls_key().public_key(), now=now
        ),
        signing=pki.issue_key_certificate(
            ca_key,
            ca,
            agency_id,
            ed25519.Ed25519PrivateKey.generate().public_key(),
            "signing",
            now=now,
        ),
        encryption=pki.issue_key_certificate(
            ca_key,
            ca,
            agency_id,
            x25519.X25519PrivateKey.generate().public_key(),
            "encryption",
            now=now,
        ),
        witness=pki.issue_key_certificate(
            ca_key,
            ca,
            agency_id,
            ed25519.Ed25519PrivateKey.generate().public_key(),
            "witness",
            now=now,
        ),
    )


@pytest.fixture(scope="module")
def agency_a() -> Agency:
    return make_agency("agency-a")


@pytest.fixture(scope="module")
def agency_b() -> Agency:
    return make_agency("agency-b")


def forge(
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer_name: x509.Name,
    *,
    uris: list[str],
    public_key: pki.PublicKey | None = None,
    extended_key_usage: list[x509.ObjectIdentifier] | None = None,
    key_usage: x509.KeyUsage | None = None,
    ca: bool = False,
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + timedelta(days=30),
) -> x509.Certificate:
    """A certificate built by hand, to present what the issuing functions would never make."""
    subject_key = public_key or pki.generate_tls_key().public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged")]))
        .issuer_name(issuer_name)
        .public_key(subject_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if uris:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
    if extended_key_usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended_key_usage), critical=False)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def key_usage(**flags: bool) -> x509.KeyUsage:
    names = [
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    ]
    return x509.KeyUsage(**{name: flags.get(name, False) for name in names})


# --- agency ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "agency_id",
    ["us-dea", "cn-nncc", "a", "0", "mx-fgr-2", "a" * 63, "9-"],
)
def test_valid_agency_ids_are_returned_unchanged(agency_id: str) -> None:
    assert pki.check_agency_id(agency_id) == agency_id


@pytest.mark.parametrize(
    "agency_id",
    ["", "-us", "US-DEA", "us_dea", "us.dea", "us dea", "a" * 64, "us-dea\n", "ｕｓ", "é", "a/b"],
)
def test_invalid_agency_ids_are_refused_naming_the_value(agency_id: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        pki.check_agency_id(agency_id)
    assert repr(agency_id) in str(raised.value)


def test_agency_uri() -> None:
    assert pki.agency_uri("us-dea") == "exchange://agency/us-dea"
    with pytest.raises(InvalidInputError):
        pki.agency_uri("US")


# --- reading the id from a certificate -----------------------------------------------------------


def test_agency_id_is_read_from_the_san_uri(agency_a: Agency) -> None:
    for cert in (
        agency_a.ca,
        agency_a.tls,
        agency_a.signing,
        agency_a.encryption,
        agency_a.witness,
    ):
        assert pki.agency_id_from_certificate(cert) == "agency-a"


@pytest.mark.parametrize(
    ("uris", "message"),
    [
        ([], "no subject alternative name"),
        (["https://example.org/"], "exactly one agency URI, names 0"),
        (["exchange://agency/a", "exchange://agency/b"], "exactly one agency URI, names 2"),
        (["exchange://agency/A"], "invalid agency id 'A'"),
        (["exchange://agency/"], "invalid agency id ''"),
    ],
)
def test_agency_id_needs_exactly_one_valid_agency_uri(
    agency_a: Agency, uris: list[str], message: str
) -> None:
    cert = forge(agency_a.ca_key, agency_a.ca.subject, uris=uris)
    with pytest.raises(CertificateError, match=message):
        pki.agency_id_from_certificate(cert)


def test_other_uris_beside_the_agency_uri_are_ignored(agency_a: Agency) -> None:
    cert = forge(
        agency_a.ca_key, agency_a.ca.subject, uris=["https://example.org/", "exchange://agency/x"]
    )
    assert pki.agency_id_from_certificate(cert) == "x"


# --- what the issuing functions make ---------------------------------------------------------------


def test_agency_ca_shape(agency_a: Agency) -> None:
    ca = agency_a.ca
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value == key_usage(key_cert_sign=True, crl_sign=True)
    assert ca.subject.rfc4514_string() == "CN=agency-a exchange CA"
    assert ca.issuer == ca.subject
    ca_public_key = ca.public_key()
    assert isinstance(ca_public_key, ec.EllipticCurvePublicKey)
    assert isinstance(ca_public_key.curve, ec.SECP256R1)
    assert isinstance(ca.signature_hash_algorithm, hashes.SHA256)
    assert ca.not_valid_before_utc <= NOW <= ca.not_valid_after_utc
    ca.verify_directly_issued_by(ca)


@pytest.mark.parametrize(
    ("purpose", "key_type", "usage", "extended"),
    [
        (
            "tls-client",
            ec.EllipticCurvePublicKey,
            key_usage(digital_signature=True),
            ExtendedKeyUsageOID.CLIENT_AUTH,
        ),
        (
            "signing",
            ed25519.Ed25519PublicKey,
            key_usage(digital_signature=True, content_commitment=True),
            pki.SIGNING_KEY_USAGE_OID,
        ),
        (
            "encryption",
            x25519.X25519PublicKey,
            key_usage(key_agreement=True),
            pki.ENCRYPTION_KEY_USAGE_OID,
        ),
        (
            "witness",
            ed25519.Ed25519PublicKey,
            key_usage(digital_signature=True),
            pki.WITNESS_KEY_USAGE_OID,
        ),
    ],
)
def test_issued_certificates_carry_their_purpose(
    agency_a: Agency,
    purpose: pki.CertificatePurpose,
    key_type: type[object],
    usage: x509.KeyUsage,
    extended: x509.ObjectIdentifier,
) -> None:
    cert = agency_a.certificate(purpose)
    assert isinstance(cert.public_key(), key_type)
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value == usage
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [extended]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.issuer == agency_a.ca.subject
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)


def test_private_key_usages_are_distinct_and_under_the_project_arc() -> None:
    oids = {pki.SIGNING_KEY_USAGE_OID, pki.ENCRYPTION_KEY_USAGE_OID, pki.WITNESS_KEY_USAGE_OID}
    assert len(oids) == 3
    assert all(oid.dotted_string.startswith(pki.EXCHANGE_OID_ARC + ".") for oid in oids)


def test_leaf_never_outlives_its_ca() -> None:
    ca_key, ca = pki.make_agency_ca("agency-a", now=NOW, validity_days=10)
    cert = pki.issue_tls_client_cert(
        ca_key, ca, "agency-a", pki.generate_tls_key().public_key(), now=NOW, validity_days=365
    )
    assert cert.not_valid_after_utc == ca.not_valid_after_utc


@pytest.mark.parametrize(
    ("purpose", "public_key"),
    [
        ("signing", x25519.X25519PrivateKey.generate().public_key()),
        ("witness", x25519.X25519PrivateKey.generate().public_key()),
        ("encryption", ed25519.Ed25519PrivateKey.generate().public_key()),
        ("tls", ed25519.Ed25519PrivateKey.generate().public_key()),
    ],
)
def test_issuing_refuses_the_wrong_key_or_purpose(
    agency_a: Agency, purpose: pki.KeyPurpose, public_key: ed25519.Ed25519PublicKey
) -> None:
    with pytest.raises(InvalidInputError):
        pki.issue_key_certificate(agency_a.ca_key, agency_a.ca, "agency-a", public_key, purpose)


def test_a_ca_issues_only_for_its_own_agency(agency_a: Agency, agency_b: Agency) -> None:
    with pytest.raises(InvalidInputError, match="cannot issue a certificate for 'agency-a'"):
        pki.issue_tls_client_cert(
            agency_b.ca_key, agency_b.ca, "agency-a", pki.generate_tls_key().public_key()
        )
    with pytest.raises(InvalidInputError, match="does not match the CA certificate"):
        pki.issue_tls_client_cert(
            agency_b.ca_key, agency_a.ca, "agency-a", pki.generate_tls_key().public_key()
        )


def test_issuing_needs_an_aware_clock(agency_a: Agency) -> None:
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        pki.make_agency_ca("agency-a", now=datetime(2030, 1, 1))


def test_hub_server_certificate_names_every_host() -> None:
    hub_ca_key, hub_ca = pki.make_hub_ca(now=NOW)
    key, cert = pki.issue_hub_server_cert(
        hub_ca_key,
        hub_ca,
        ["hub.example.org", "localhost", "127.0.0.1", "::1", "localhost"],
        now=NOW,
    )
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["hub.example.org", "localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(extended) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert key.public_key() == cert.public_key()
    cert.verify_directly_issued_by(hub_ca)
    assert hub_ca.subject.rfc4514_string() == "CN=exchange hub CA"


def test_a_hub_certificate_never_passes_as_an_agency_one() -> None:
    hub_ca_key, hub_ca = pki.make_hub_ca(now=NOW)
    _, cert = pki.issue_hub_server_cert(hub_ca_key, hub_ca, ["localhost"], now=NOW)
    with pytest.raises(CertificateError):
        pki.verify_issued_by(cert, hub_ca, purpose="tls-client", now=NOW)


# --- verify_issued_by ------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", pki.CERTIFICATE_PURPOSES)
def test_each_certificate_verifies_for_its_purpose(
    agency_a: Agency, purpose: pki.CertificatePurpose
) -> None:
    cert = agency_a.certificate(purpose)
    assert pki.verify_issued_by(cert, agency_a.ca, purpose=purpose, now=NOW) == "agency-a"
    assert (
        pki.verify_issued_by(
            cert, agency_a.ca, purpose=purpose, now=NOW, expected_agency_id="agency-a"
        )
        == "agency-a"
    )


@pytest.mark.parametrize(
    ("presented", "checked_as"),
    [
        (presented, checked_as)
        for presented in pki.CERTIFICATE_PURPOSES
        for checked_as in pki.CERTIFICATE_PURPOSES
        if presented != checked_as
    ],
)
def test_a_certificate_never_passes_for_another_purpose(
    agency_a: Agency, presented: pki.CertificatePurpose, checked_as: pki.CertificatePurpose
) -> None:
    with pytest.raises(CertificateError):
        pki.verify_issued_by(
            agency_a.certificate(presented), agency_a.ca, purpose=checked_as, now=NOW
        )


@pytest.mark.parametrize("purpose", pki.CERTIFICATE_PURPOSES)
def test_another_agencys_certificate_fails_against_this_ca(
    agency_a: Agency, agency_b: Agency, purpose: pki.CertificatePurpose
) -> None:
    with pytest.raises(CertificateError):
        pki.verify_issued_by(agency_b.certificate(purpose), agency_a.ca, purpose=purpose, now=NOW)


def _impostor_certificates(agency_b: Agency) -> dict[str, x509.Certificate]:
    """Certificates agency B's CA mints claiming agency A's id, for every purpose."""
    uri = ["exchange://agency/agency-a"]
    key, name = agency_b.ca_key, agency_b.ca.subject
    return {
        "tls-client": forge(
            key,
            name,
            uris=uri,
            extended_key_usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
            key_usage=key_usage(digital_signature=True),
        ),
        "signing": forge(
            key,
            name,
            uris=uri,
            public_key=ed25519.Ed25519PrivateKey.generate().public_key(),
            extended_key_usage=[pki.SIGNING_KEY_USAGE_OID],
            key_usage=key_usage(digital_signature=True, content_commitment=True),
        ),
        "encryption": forge(
            key,
            name,
            uris=uri,
            public_key=x25519.X25519PrivateKey.generate().public_key(),
            extended_key_usage=[pki.ENCRYPTION_KEY_USAGE_OID],
            key_usage=key_usage(key_agreement=True),
        ),
        "witness": forge(
            key,
            name,
            uris=uri,
            public_key=ed25519.Ed25519PrivateKey.generate().public_key(),
            extended_key_usage=[pki.WITNESS_KEY_USAGE_OID],
            key_usage=key_usage(digital_signature=True),
        ),
    }


@pytest.mark.parametrize("purpose", pki.CERTIFICATE_PURPOSES)
def test_certificate_from_b_claiming_a_fails_against_as_ca(
    agency_a: Agency, agency_b: Agency, purpose: pki.CertificatePurpose
) -> None:
    impostor = _impostor_certificates(agency_b)[purpose]
    assert pki.agency_id_from_certificate(impostor) == "agency-a"
    with pytest.raises(CertificateError, match="agency-a"):
        pki.verify_issued_by(impostor, agency_a.ca, purpose=purpose, now=NOW)


@pytest.mark.parametrize("purpose", pki.CERTIFICATE_PURPOSES)
def test_certificate_from_b_claiming_a_fails_against_bs_own_ca(
    agency_b: Agency, purpose: pki.CertificatePurpose
) -> None:
    impostor = _impostor_certificates(agency_b)[purpose]
    with pytest.raises(CertificateError, match="claims agency 'agency-a'.*CA of 'agency-b'"):
        pki.verify_issued_by(impostor, agency_b.ca, purpose=purpose, now=NOW)


@pytest.mark.parametrize("purpose", pki.CERTIFICATE_PURPOSES)
def test_impostor_ca_copying_as_name_and_uri_is_not_as_ca(
    agency_a: Agency, purpose: pki.CertificatePurpose
) -> None:
    """A CA with A's subject and SAN but another key issues nothing A's CA accepts."""
    impostor = make_agency("agency-a")
    assert impostor.ca.subject == agency_a.ca.subject
    with pytest.raises(CertificateError):
        pki.verify_issued_by(impostor.certificate(purpose), agency_a.ca, purpose=purpose, now=NOW)


def test_expected_agency_id_must_match(agency_a: Agency) -> None:
    with pytest.raises(CertificateError, match="expected 'agency-b'"):
        pki.verify_issued_by(
            agency_a.signing,
            agency_a.ca,
            purpose="signing",
            now=NOW,
            expected_agency_id="agency-b",
        )


@pytest.mark.parametrize("purpose", pki.CERTIFICATE_PURPOSES)
@pytest.mark.parametrize(
    "when",
    [NOW + timedelta(days=pki.DEFAULT_CERTIFICATE_VALIDITY_DAYS + 1), NOW - timedelta(days=1)],
)
def test_expired_or_not_yet_valid_certificates_fail(
    agency_a: Agency, purpose: pki.CertificatePurpose, when: datetime
) -> None:
    with pytest.raises(CertificateError):
        pki.verify_issued_by(agency_a.certificate(purpose), agency_a.ca, purpose=purpose, now=when)


def test_an_expired_leaf_under_a_valid_ca_fails() -> None:
    issued = datetime(2020, 1, 1, tzinfo=UTC)
    ca_key, ca = pki.make_agency_ca("agency-a", now=issued)
    later = issued + timedelta(days=31)
    tls = pki.issue_tls_client_cert(
        ca_key, ca, "agency-a", pki.generate_tls_key().public_key(), now=issued, validity_days=30
    )
    with pytest.raises(CertificateError, match="not valid|expired"):
        pki.verify_issued_by(tls, ca, purpose="tls-client", now=later)
    cases: list[tuple[pki.KeyPurpose, ed25519.Ed25519PublicKey | x25519.X25519PublicKey]] = [
        ("signing", ed25519.Ed25519PrivateKey.generate().public_key()),
        ("encryption", x25519.X25519PrivateKey.generate().public_key()),
        ("witness", ed25519.Ed25519PrivateKey.generate().public_key()),
    ]
    for purpose, public_key in cases:
        cert = pki.issue_key_certificate(
            ca_key, ca, "agency-a", public_key, purpose, now=issued, validity_days=30
        )
        assert pki.verify_issued_by(cert, ca, purpose=purpose, now=issued) == "agency-a"
        with pytest.raises(CertificateError, match="expired"):
            pki.verify_issued_by(cert, ca, purpose=purpose, now=later)


def test_a_ca_that_is_not_a_ca_is_refused(agency_a: Agency) -> None:
    with pytest.raises(CertificateError, match="is not a CA"):
        pki.verify_issued_by(agency_a.signing, agency_a.tls, purpose="signing", now=NOW)


def test_the_ca_itself_is_not_an_end_entity(agency_a: Agency) -> None:
    for purpose in pki.CERTIFICATE_PURPOSES:
        with pytest.raises(CertificateError):
            pki.verify_issued_by(agency_a.ca, agency_a.ca, purpose=purpose, now=NOW)


@pytest.mark.parametrize(
    ("extended", "usage", "message"),
    [
        (
            [pki.SIGNING_KEY_USAGE_OID, pki.ENCRYPTION_KEY_USAGE_OID],
            key_usage(digital_signature=True, content_commitment=True),
            "extended key usage",
        ),
        (None, key_usage(digital_signature=True, content_commitment=True), "extended key usage"),
        ([pki.SIGNING_KEY_USAGE_OID], key_usage(digital_signature=True), "key usage"),
        ([pki.SIGNING_KEY_USAGE_OID], None, "key usage"),
    ],
)
def test_signing_certificate_needs_exactly_its_usages(
    agency_a: Agency,
    extended: list[x509.ObjectIdentifier] | None,
    usage: x509.KeyUsage | None,
    message: str,
) -> None:
    cert = forge(
        agency_a.ca_key,
        agency_a.ca.subject,
        uris=["exchange://agency/agency-a"],
        public_key=ed25519.Ed25519PrivateKey.generate().public_key(),
        extended_key_usage=extended,
        key_usage=usage,
    )
    with pytest.raises(CertificateError, match=message):
        pki.verify_issued_by(cert, agency_a.ca, purpose="signing", now=NOW)


def test_signing_certificate_with_an_x25519_key_fails(agency_a: Agency) -> None:
    cert = forge(
        agency_a.ca_key,
        agency_a.ca.subject,
        uris=["exchange://agency/agency-a"],
        public_key=x25519.X25519PrivateKey.generate().public_key(),
        extended_key_usage=[pki.SIGNING_KEY_USAGE_OID],
        key_usage=key_usage(digital_signature=True, content_commitment=True),
    )
    with pytest.raises(CertificateError, match="Ed25519PublicKey"):
        pki.verify_issued_by(cert, agency_a.ca, purpose="signing", now=NOW)


def test_unknown_purpose_is_refused(agency_a: Agency) -> None:
    with pytest.raises(InvalidInputError, match="unknown certificate purpose"):
        pki.verify_issued_by(
            agency_a.signing,
            agency_a.ca,
            purpose="tls-server",  # type: ignore[arg-type]
            now=NOW,
        )


# --- encodings ---------------------------------------------------------------------------------------


def test_pem_and_der_round_trip(agency_a: Agency) -> None:
    pem = pki.certificate_to_pem(agency_a.signing)
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert pki.load_certificate_pem(pem) == agency_a.signing
    assert pki.load_certificate_der(pki.certificate_to_der(agency_a.signing)) == agency_a.signing
    key_pem = pki.private_key_to_pem(agency_a.ca_key)
    assert b"BEGIN PRIVATE KEY" in key_pem
    assert pki.load_tls_private_key_pem(key_pem).public_key() == agency_a.ca.public_key()


@pytest.mark.parametrize("data", [b"", b"not pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n"])
def test_bad_pem_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedError):
        pki.load_certificate_pem(data)


def test_two_certificates_in_one_pem_are_refused(agency_a: Agency, agency_b: Agency) -> None:
    with pytest.raises(MalformedError, match="found 2"):
        pki.load_certificate_pem(
            pki.certificate_to_pem(agency_a.ca) + pki.certificate_to_pem(agency_b.ca)
        )


def test_bad_der_is_malformed() -> None:
    with pytest.raises(MalformedError):
        pki.load_certificate_der(b"\x30\x03\x02\x01\x01")


def test_private_key_loader_wants_p256() -> None:
    ed_pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    with pytest.raises(MalformedError, match="P-256"):
        pki.load_tls_private_key_pem(ed_pem)
    with pytest.raises(MalformedError):
        pki.load_tls_private_key_pem(b"junk")


def test_fingerprints(agency_a: Agency) -> None:
    signing_key = agency_a.signing.public_key()
    assert isinstance(signing_key, ed25519.Ed25519PublicKey)
    printed = pki.fingerprint(signing_key)
    assert printed.startswith("SHA256:") and not printed.endswith("=")
    assert len(printed) == len("SHA256:") + 43
    assert printed == VerifyKey.from_public_key(signing_key).fingerprint
    assert pki.fingerprint(agency_a.ca) != pki.fingerprint(agency_a.ca.public_key())
    assert pki.fingerprint(agency_a.ca) == pki.fingerprint(agency_a.ca)


def test_the_longest_agency_id_gets_every_certificate_with_a_common_name_cut_to_64() -> None:
    longest = "a" * 63
    agency = make_agency(longest)
    for purpose in pki.CERTIFICATE_PURPOSES:
        cert = agency.certificate(purpose)
        assert pki.verify_issued_by(cert, agency.ca, purpose=purpose, now=NOW) == longest
        [name] = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        assert len(name.value) <= 64
        assert str(name.value).startswith(longest)
