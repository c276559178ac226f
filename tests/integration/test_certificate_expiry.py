"""The hub and expired agency certificates (SQLite and PostgreSQL).

An expired TLS client certificate fails the TLS handshake (grpc core checks the validity period;
the application never runs, so the client sees UNAVAILABLE). A connection made while the
certificate was valid outlives it, so the hub checks every call again at its own clock and
answers UNAUTHENTICATED with ``CERTIFICATE_EXPIRED`` and what to run. A rotation of keys whose
certificates have expired is accepted: the statement it replaces is checked at its own date.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from exchange import pki
from exchange.config.profile import load_profile
from exchange.crypto.keys import DecryptionKey, SigningKey
from exchange.hub.app import Hub
from exchange.hub.config import HubConfig
from exchange.hub.init import init_exchange
from exchange.statements.agency_keys import AgencyKeys
from exchange.statements.codec import envelope_to_proto
from exchange.v1 import directory_pb2, directory_pb2_grpc
from tests.conftest import FrozenClock
from tests.integration.agency import channel_for


@pytest.fixture
def made_days_ago() -> int:
    return 0


@pytest.fixture
def fresh(
    tmp_path: Path, database_url: str, clock: FrozenClock, made_days_ago: int
) -> Iterator[tuple[Path, Hub]]:
    """An exchange of its own (its profiles are changed) and a hub on the frozen clock."""
    directory = tmp_path / "exchange"
    made = datetime.now(UTC) - timedelta(days=made_days_ago)
    init_exchange(directory, ["agency-a", "agency-b"], listen="127.0.0.1:50051", now=made)
    config = HubConfig.from_file(directory / "hub.toml").with_overrides(
        database_url=database_url, listen="127.0.0.1:0"
    )
    config = dataclasses.replace(config, log_state_file=tmp_path / "log-state.json")
    started = clock.now
    clock.now = made  # registered while its certificates were valid
    first = Hub(config, clock=clock)
    first.prepare()
    first.stop(grace=0)
    clock.now = started
    hub = Hub(config, clock=clock)
    hub.prepare()  # started again later: the registry is read again, expired or not
    hub.start()
    try:
        yield directory, hub
    finally:
        hub.stop(grace=0)


def directory_stub(
    hub: Hub, profile: Path, *, key: bytes | None = None, cert: bytes | None = None
) -> tuple[grpc.Channel, directory_pb2_grpc.DirectoryServiceStub]:
    data = load_profile(profile, allow_expired=True)
    channel = channel_for(
        hub.port,  # type: ignore[attr-defined]
        key=key or data.tls_key_pem,
        cert=cert or data.tls_certificate_pem,
        root=data.hub_ca_certificate_pem,
    )
    return channel, directory_pb2_grpc.DirectoryServiceStub(channel)


def list_agencies(stub: directory_pb2_grpc.DirectoryServiceStub) -> int:
    return len(stub.ListAgencies(directory_pb2.ListAgenciesRequest(), timeout=10).agencies)


def reason_of(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""


def test_a_certificate_that_expires_on_an_open_connection_is_refused_with_what_to_run(
    fresh: tuple[Path, Hub], clock: FrozenClock
) -> None:
    directory, hub = fresh
    channel, stub = directory_stub(hub, directory / "agencies" / "agency-a")
    try:
        assert list_agencies(stub) == 2  # the connection is made with a valid certificate
        clock.advance(days=pki.DEFAULT_TLS_VALIDITY_DAYS + 1)
        with pytest.raises(grpc.RpcError) as refused:
            list_agencies(stub)
    finally:
        channel.close()
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    details = refused.value.details() or ""
    assert "TLS client certificate of 'agency-a' expired at" in details
    assert "exchange keys rotate --tls" in details
    assert reason_of(refused.value) == "CERTIFICATE_EXPIRED"


def test_a_certificate_with_a_past_validity_is_refused_at_the_handshake(
    fresh: tuple[Path, Hub],
) -> None:
    directory, hub = fresh
    profile = directory / "agencies" / "agency-a"
    ca = x509.load_pem_x509_certificate((profile / "ca.pem").read_bytes())
    ca_key = pki.load_tls_private_key_pem((profile / "ca-key.pem").read_bytes())
    key = pki.generate_tls_key()
    good = pki.issue_tls_client_cert(ca_key, ca, "agency-a", key.public_key())
    # The same certificate, but valid only for two minutes after the CA's start: long past.
    expired = (
        x509.CertificateBuilder()
        .subject_name(good.subject)
        .issuer_name(good.issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(ca.not_valid_before_utc)
        .not_valid_after(ca.not_valid_before_utc + timedelta(minutes=2))
    )
    for extension in good.extensions:
        expired = expired.add_extension(extension.value, critical=extension.critical)
    certificate = expired.sign(ca_key, hashes.SHA256())
    assert certificate.not_valid_after_utc < datetime.now(UTC)
    channel, stub = directory_stub(
        hub, profile, key=pki.private_key_to_pem(key), cert=pki.certificate_to_pem(certificate)
    )
    try:
        with pytest.raises(grpc.RpcError) as refused:
            list_agencies(stub)
    finally:
        channel.close()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    # The same key with the certificate that is valid is let in.
    channel, stub = directory_stub(
        hub, profile, key=pki.private_key_to_pem(key), cert=pki.certificate_to_pem(good)
    )
    try:
        assert list_agencies(stub) == 2
    finally:
        channel.close()


@pytest.mark.parametrize("made_days_ago", [pki.DEFAULT_KEY_VALIDITY_DAYS + 5])
def test_keys_whose_certificates_expired_can_still_be_rotated(
    fresh: tuple[Path, Hub], made_days_ago: int
) -> None:
    directory, hub = fresh
    profile_dir = directory / "agencies" / "agency-a"
    data = load_profile(profile_dir, allow_expired=True)
    assert data.signing_certificate.not_valid_after_utc < datetime.now(UTC)
    ca_key = pki.load_tls_private_key_pem(data.config.paths.ca_key.read_bytes())
    now = datetime.now(UTC)
    previous = AgencyKeys.verify(
        data.keys_envelope, data.ca_certificate, now=data.signing_certificate.not_valid_before_utc
    )
    signing_key = SigningKey.generate()

    def certify(key: SigningKey | DecryptionKey, purpose: pki.KeyPurpose) -> x509.Certificate:
        return pki.issue_key_certificate(
            ca_key, data.ca_certificate, "agency-a", key.public_key.native, purpose, now=now
        )

    envelope = AgencyKeys.create_rotation(
        previous,
        previous_signing_key=data.signing_key,
        signing_key=signing_key,
        ca_key=ca_key,
        ca_certificate=data.ca_certificate,
        signing_certificate=certify(signing_key, "signing"),
        encryption_certificate=certify(DecryptionKey.generate(), "encryption"),
        witness_certificate=certify(SigningKey.generate(), "witness"),
        created_at=now,
    )
    # A TLS certificate valid now (the one made at init has expired too).
    tls_key = pki.generate_tls_key()
    tls = pki.issue_tls_client_cert(ca_key, data.ca_certificate, "agency-a", tls_key.public_key())
    channel, stub = directory_stub(
        hub, profile_dir, key=pki.private_key_to_pem(tls_key), cert=pki.certificate_to_pem(tls)
    )
    try:
        request = directory_pb2.PublishKeysRequest(keys=envelope_to_proto(envelope))
        assert stub.PublishKeys(request, timeout=10).key_number == 2
    finally:
        channel.close()

