"""Every kind of bad input gets a specific status, with an ErrorInfo reason where the
application answers, and leaves the database exactly as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from exchange import pki
from exchange.crypto.dsse import sign_envelope
from exchange.crypto.keys import SigningKey
from exchange.statements.codec import envelope_to_proto
from exchange.v1 import alerts_pb2, alerts_pb2_grpc, statements_pb2
from tests.integration.agency import TestAgency, channel_for, note_item
from tests.integration.test_exchange import row_counts, shipment_alert

Request = alerts_pb2.PublishRequest


@pytest.fixture
def agencies(hub: object, exchange_dir: Path) -> Iterator[dict[str, TestAgency]]:
    port = hub.port  # type: ignore[attr-defined]
    parties = {a: TestAgency(exchange_dir, a, port) for a in ("agency-a", "agency-b", "agency-c")}
    yield parties
    for party in parties.values():
        party.close()


def error_reason(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "the application answered without details"
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    raise AssertionError("no ErrorInfo in the status details")


def flip_bit(data: bytes, index: int = -1) -> bytes:
    mutable = bytearray(data)
    mutable[index] ^= 0x01
    return bytes(mutable)


def bad_signature(a: TestAgency) -> Request:
    request = shipment_alert(a).request
    request.manifest.signatures[0].sig = flip_bit(request.manifest.signatures[0].sig)
    return request


def unknown_signing_key(a: TestAgency) -> Request:
    request = shipment_alert(a).request
    forged = sign_envelope(request.manifest.payload_type, request.manifest.payload, SigningKey.generate())
    request.manifest.CopyFrom(envelope_to_proto(forged))
    return request


def header_not_matching_commitment(a: TestAgency) -> Request:
    request = shipment_alert(a).request
    header = statements_pb2.ItemHeader()
    header.ParseFromString(request.items[1].header)
    header.policy.audience.append("agency-c")
    request.items[1].header = header.SerializeToString(deterministic=True)
    return request


def ciphertext_not_matching_hash(a: TestAgency) -> Request:
    request = shipment_alert(a).request
    request.items[1].ciphertext = flip_bit(request.items[1].ciphertext, 20)
    return request


def originator_not_caller(a: TestAgency, c: TestAgency) -> Request:
    """agency-c signs, with its own registered key, a manifest naming agency-a as originator."""
    sealed = shipment_alert(a)
    forged = sign_envelope(
        sealed.request.manifest.payload_type, sealed.request.manifest.payload, c.profile.signing_key
    )
    request = Request()
    request.CopyFrom(sealed.request)
    request.manifest.CopyFrom(envelope_to_proto(forged))
    return request


def malformed_manifest(a: TestAgency) -> Request:
    request = shipment_alert(a).request
    garbage = b"\x0a\x05agency\xff\xff\xff"
    envelope = sign_envelope(request.manifest.payload_type, garbage, a.profile.signing_key)
    request.manifest.CopyFrom(envelope_to_proto(envelope))
    return request


def manifest_with_unknown_field(a: TestAgency) -> Request:
    request = shipment_alert(a).request
    payload = bytes(request.manifest.payload) + b"\xf8\x01\x01"  # field 31, varint 1
    envelope = sign_envelope(request.manifest.payload_type, payload, a.profile.signing_key)
    request.manifest.CopyFrom(envelope_to_proto(envelope))
    return request


def wrong_payload_type(a: TestAgency) -> Request:
    request = shipment_alert(a).request
    envelope = sign_envelope(
        "application/vnd.exchange.receipt.v1+protobuf", request.manifest.payload, a.profile.signing_key
    )
    request.manifest.CopyFrom(envelope_to_proto(envelope))
    return request


def grant_for_outsider(a: TestAgency) -> Request:
    """A grant for agency-c on an item whose audience is agency-b only."""
    sealed = shipment_alert(a)
    request = sealed.request
    extra = statements_pb2.Grant()
    extra.CopyFrom(request.grants[-1])
    extra.recipient = "agency-c"
    request.grants.append(extra)
    return request


def oversized(a: TestAgency) -> Request:
    items = [note_item("big", "x" * (9 * 1024 * 1024), ["agency-b"])]
    return a.seal(items).request


CASES: dict[str, tuple[Callable[[dict[str, TestAgency]], Request], grpc.StatusCode, str]] = {
    "invalid signature": (lambda p: bad_signature(p["agency-a"]), grpc.StatusCode.INVALID_ARGUMENT, "SIGNATURE_INVALID"),
    "unknown signing key": (lambda p: unknown_signing_key(p["agency-a"]), grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_SIGNING_KEY"),
    "header not matching commitment": (lambda p: header_not_matching_commitment(p["agency-a"]), grpc.StatusCode.INVALID_ARGUMENT, "COMMITMENT_MISMATCH"),
    "ciphertext not matching hash": (lambda p: ciphertext_not_matching_hash(p["agency-a"]), grpc.StatusCode.INVALID_ARGUMENT, "COMMITMENT_MISMATCH"),
    "originator not the caller": (lambda p: originator_not_caller(p["agency-a"], p["agency-c"]), grpc.StatusCode.PERMISSION_DENIED, "ORIGINATOR_MISMATCH"),
    "malformed statement": (lambda p: malformed_manifest(p["agency-a"]), grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED"),
    "unknown field in statement": (lambda p: manifest_with_unknown_field(p["agency-a"]), grpc.StatusCode.INVALID_ARGUMENT, "NON_CANONICAL"),
    "payload type of another statement": (lambda p: wrong_payload_type(p["agency-a"]), grpc.StatusCode.INVALID_ARGUMENT, "PAYLOAD_TYPE_MISMATCH"),
    "grant outside the signed audience": (lambda p: grant_for_outsider(p["agency-a"]), grpc.StatusCode.INVALID_ARGUMENT, "POLICY_INVALID"),
    "oversized payload": (lambda p: oversized(p["agency-a"]), grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_LARGE"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_publish_is_refused_and_leaves_nothing(
    case: str, hub: object, agencies: dict[str, TestAgency]
) -> None:
    build, code, reason = CASES[case]
    sender = agencies["agency-c"] if case == "originator not the caller" else agencies["agency-a"]
    request = build(agencies)
    before = row_counts(hub)
    with pytest.raises(grpc.RpcError) as refused:
        sender.alerts.Publish(request, timeout=30)
    assert refused.value.code() == code, refused.value.details()
    assert error_reason(refused.value) == reason
    assert row_counts(hub) == before


def forged_certificate(issuer_dir: Path, claimed_id: str) -> tuple[bytes, bytes]:
    """A TLS client certificate for ``claimed_id`` signed by another agency's CA key."""
    ca_cert = pki.load_certificate_pem((issuer_dir / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((issuer_dir / "ca-key.pem").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, claimed_id)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(pki.agency_uri(claimed_id))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return pki.private_key_to_pem(key), pki.certificate_to_pem(cert)


def test_certificate_from_another_agencys_ca_claiming_an_id_is_unauthenticated(
    hub: object, exchange_dir: Path, agencies: dict[str, TestAgency]
) -> None:
    key, cert = forged_certificate(exchange_dir / "agencies" / "agency-b", "agency-a")
    root = agencies["agency-a"].profile.hub_ca_certificate_pem
    channel = channel_for(hub.port, key=key, cert=cert, root=root)  # type: ignore[attr-defined]
    stub = alerts_pb2_grpc.AlertServiceStub(channel)
    before = row_counts(hub)
    with pytest.raises(grpc.RpcError) as refused:
        stub.Publish(shipment_alert(agencies["agency-a"]).request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(refused.value) == "CERTIFICATE_INVALID"
    assert row_counts(hub) == before
    channel.close()


@pytest.mark.parametrize("kind", ["no certificate", "certificate from an unknown CA"])
def test_client_without_a_trusted_certificate_cannot_connect(
    kind: str, hub: object, agencies: dict[str, TestAgency]
) -> None:
    root = agencies["agency-a"].profile.hub_ca_certificate_pem
    if kind == "no certificate":
        key = cert = None
    else:
        ca_key, ca_cert = pki.make_agency_ca("agency-x")
        tls_key = pki.generate_tls_key()
        leaf = pki.issue_tls_client_cert(ca_key, ca_cert, "agency-x", tls_key.public_key())
        key, cert = pki.private_key_to_pem(tls_key), pki.certificate_to_pem(leaf)
    channel = channel_for(hub.port, key=key, cert=cert, root=root)  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as refused:
        alerts_pb2_grpc.AlertServiceStub(channel).ListAlerts(alerts_pb2.ListAlertsRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    channel.close()


def test_revoked_agency_is_refused(hub: object, agencies: dict[str, TestAgency]) -> None:
    from exchange.store import registry

    with hub.db.write() as connection:  # type: ignore[attr-defined]
        registry.revoke_agency(connection, "agency-c", now=datetime.now(UTC))
    hub.directory.refresh()  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as refused:
        agencies["agency-c"].alerts.ListAlerts(alerts_pb2.ListAlertsRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(refused.value) == "AGENCY_REVOKED"


