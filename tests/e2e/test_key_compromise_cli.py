"""``exchange keys revoke --compromised`` and ``exchange keys recover`` against a real hub.

Each test runs the real ``exchange-hub serve`` in a subprocess on SQLite and on PostgreSQL and
drives the real ``exchange`` CLI: what a compromised key signed from its time on is flagged
UNTRUSTED (inbox, show, audit verify: exit 3) and what it signed before is not; the hub refuses
a grant to a compromised encryption key; the offline recovery key replaces the CA, and any other
key (or a recovery statement slipped in behind the hub's back) is refused with exit 3.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import insert

from exchange import pki
from exchange.alerts.draft import Draft
from exchange.config.profile import parse_host_port
from exchange.crypto.dsse import sign_envelope
from exchange.crypto.keys import DecryptionKey, SigningKey
from exchange.errors import InvalidInputError
from exchange.statements.agency_keys import PAYLOAD_TYPE, AgencyKeys, add_ca_signature
from exchange.statements.codec import encode, envelope_from_proto, envelope_to_proto
from exchange.statements.key_compromise import Compromise
from exchange.store.schema import agency_keys
from exchange.v1 import directory_pb2, statements_pb2
from exchange_client import Client, Profile
from tests.e2e.test_audit_cli import VERIFICATION_FAILED, AuditedExchange, draft_for
from tests.integration.agency import TestAgency, note_item


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def by_alert(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {entry["alert_id"]: entry for entry in entries}


def hub_port(exchange: AuditedExchange) -> int:
    listen = tomllib.loads((exchange.data / "hub.toml").read_text())["listen"]
    return parse_host_port(listen)[1]


@pytest.fixture
def raw_agency(exchange: AuditedExchange) -> Iterator[Any]:
    """Raw-gRPC agencies on the running hub (profiles as they are on disk when asked for)."""
    opened: list[TestAgency] = []

    def make(agency_id: str) -> TestAgency:
        agency = TestAgency(exchange.data, agency_id, hub_port(exchange))
        opened.append(agency)
        return agency

    yield make
    for agency in opened:
        agency.close()


def profile_files(exchange: AuditedExchange, agency: str) -> dict[str, str]:
    """Every file of a profile but its client state and its key-change lock, by path, as a
    hash."""
    root = exchange.data / "agencies" / agency
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "state" not in path.relative_to(root).parts
        and path.name != "rotate.lock"
    }


@pytest.mark.slow
def test_a_compromised_signing_key_flags_what_it_signed_from_then_on(
    exchange: AuditedExchange,
) -> None:
    early = exchange.publish()
    since = datetime.now(UTC)
    late = exchange.publish()

    revoked = exchange.json(
        "keys", "revoke", "--compromised", "--since", rfc3339(since), "--signing",
        agency="agency-a",
    )
    assert revoked["key_number"] == 2
    assert [c["key_type"] for c in revoked["compromised"]] == ["signing"]
    after = exchange.publish()  # signed by the new key

    printed = exchange.run("inbox", agency="agency-b", expect=VERIFICATION_FAILED)
    assert "UNTRUSTED" in printed.stdout
    listed = by_alert(exchange.json("inbox", agency="agency-b", expect=VERIFICATION_FAILED))
    assert listed[early["alert_id"]]["untrusted"] is False
    assert listed[after["alert_id"]]["untrusted"] is False
    assert listed[late["alert_id"]]["untrusted"] is True
    assert "compromised since" in listed[late["alert_id"]]["untrusted_reason"]

    assert exchange.json("show", early["alert_id"], agency="agency-b")["untrusted"] is False
    assert exchange.json("show", after["alert_id"], agency="agency-b")["untrusted"] is False
    shown = exchange.json("show", late["alert_id"], agency="agency-b", expect=VERIFICATION_FAILED)
    assert shown["untrusted"] is True
    table = exchange.run("show", late["alert_id"], agency="agency-b", expect=VERIFICATION_FAILED)
    assert "UNTRUSTED: signed by agency-a's signing key" in table.stdout

    report = exchange.json("audit", "verify", agency="agency-b", expect=VERIFICATION_FAILED)
    reasons = {(f["reason"], f["index"]) for f in report["failures"]}
    assert reasons == {("KEY_COMPROMISED", late["log_index"])}, report["failures"]

    # The statement is in force for every partner: agency-c sees the sequence the same way.
    shown_keys = exchange.json("keys", "show", "--agency", "agency-a", agency="agency-c")
    assert [s["key_number"] for s in shown_keys] == [1, 2]


def test_the_hub_refuses_a_grant_to_a_compromised_encryption_key(
    exchange: AuditedExchange, raw_agency: Any
) -> None:
    a = raw_agency("agency-a")
    # Sealed while agency-b's first encryption key is current, sent after it is compromised
    # (a publish resent from an outbox, or a partner that did not fetch keys again).
    sealed = a.seal([note_item("n1", "precursor shipment", ["agency-b"])])
    # A library client that holds agency-b's keys from a publish a moment ago.
    client = Client(
        Profile.load(exchange.data / "agencies" / "agency-a"),
        hub=f"127.0.0.1:{hub_port(exchange)}",
    )
    client.publish(Draft.from_dict(draft_for(["agency-b"])))
    before = exchange.publish()  # wrapped to agency-b's first encryption key
    revoked = exchange.json(
        "keys", "revoke", "--compromised", "--since", rfc3339(datetime.now(UTC)),
        "--encryption", agency="agency-b",
    )
    assert [c["key_type"] for c in revoked["compromised"]] == ["encryption"]
    # agency-b keeps the replaced key where its profile finds retired keys: it still reads what
    # was wrapped to it (the compromise is of the key, not of what agency-a sent).
    old = exchange.json("show", before["alert_id"], agency="agency-b")
    assert "VISIBLE" in {item["status"] for item in old["items"]}, old
    with pytest.raises(grpc.RpcError) as refused:
        a.alerts.Publish(sealed.request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    details = refused.value.details() or ""
    assert "marked compromised since" in details and "agency-b" in details

    # The library's cached keys are refused the same way; it fetches them again and reseals.
    try:
        resealed = client.publish(Draft.from_dict(draft_for(["agency-b"])))
    finally:
        client.close()
    opened = exchange.json("show", resealed.alert_id, agency="agency-b")
    assert "VISIBLE" in {item["status"] for item in opened["items"]}

    # The CLI fetches agency-b's keys afresh: it wraps to the new key, and agency-b opens it.
    fresh = exchange.publish()
    shown = exchange.json("show", fresh["alert_id"], agency="agency-b")
    assert shown["untrusted"] is False
    statuses = {item["status"] for item in shown["items"]}
    assert "VISIBLE" in statuses and statuses <= {"VISIBLE", "WITHHELD"}  # WITHHELD: on request


@pytest.mark.slow
def test_the_offline_recovery_key_replaces_the_ca_and_no_other_key_can(
    exchange: AuditedExchange,
) -> None:
    before = exchange.publish()
    recovery = exchange.data / "recovery"
    unchanged = profile_files(exchange, "agency-a")

    wrong = exchange.run(
        "keys", "recover", "--recovery-key", str(recovery / "agency-b-recovery-key.pem"),
        agency="agency-a", expect=VERIFICATION_FAILED,
    )
    assert "RECOVERY_KEY_MISMATCH" in wrong.stderr and "is not the one" in wrong.stderr
    assert profile_files(exchange, "agency-a") == unchanged

    not_a_key = exchange.work / "not-a-key.pem"
    not_a_key.write_text("not a key\n")
    bad = exchange.run(
        "keys", "recover", "--recovery-key", str(not_a_key), agency="agency-a", expect=1
    )
    assert "not a recovery key" in bad.stderr
    future = exchange.run(
        "keys", "revoke", "--compromised", "--since", "2999-01-01T00:00:00Z", "--signing",
        agency="agency-a", expect=1,
    )
    assert "in the future" in future.stderr
    garbled = exchange.run(
        "keys", "revoke", "--compromised", "--since", "yesterday", "--signing",
        agency="agency-a", expect=1,
    )
    assert "is not a time" in garbled.stderr
    assert profile_files(exchange, "agency-a") == unchanged

    recovered = exchange.json(
        "keys", "recover", "--recovery-key", str(recovery / "agency-a-recovery-key.pem"),
        agency="agency-a",
    )
    assert recovered["key_number"] == 2
    assert set(recovered["replaced"]) == {"ca", "tls", "signing", "encryption", "witness"}
    assert [c["key_type"] for c in recovered["compromised"]] == ["ca"]
    new_ca = pki.load_certificate_pem(
        (exchange.data / "agencies" / "agency-a" / "ca.pem").read_bytes()
    )
    assert recovered["ca_fingerprint"] == pki.fingerprint(new_ca)

    # agency-a goes on under its new CA (new TLS certificate included).
    after = exchange.publish()
    own = exchange.json("keys", "show", agency="agency-a")
    assert own[-1]["signed_by"] == ["own signing key", "new CA", "recovery key"]

    # Partners follow with the CA their profile holds: the recovery key it pinned vouches.
    agencies = {a["agency_id"]: a for a in exchange.json("agencies", agency="agency-b")}
    assert agencies["agency-a"]["verified"] is True
    assert agencies["agency-a"]["key_number"] == 2
    assert agencies["agency-a"]["ca_fingerprint"] == pki.fingerprint(new_ca)
    assert agencies["agency-a"]["problem"] == ""
    listed = by_alert(exchange.json("inbox", agency="agency-b"))
    assert not listed[before["alert_id"]]["untrusted"]
    assert not listed[after["alert_id"]]["untrusted"]
    exchange.json("audit", "verify", agency="agency-b")


def test_a_recovery_signed_by_another_key_is_refused_by_the_hub_and_by_partners(
    exchange: AuditedExchange, raw_agency: Any
) -> None:
    a = raw_agency("agency-a")
    now = datetime.now(UTC)
    record = a.directory.GetAgency(directory_pb2.GetAgencyRequest(agency_id="agency-a"), timeout=10)
    latest = AgencyKeys.verify(envelope_from_proto(record.keys[-1]), a.profile.ca_certificate,
                               now=now)
    thief_ca_key, thief_ca = pki.make_agency_ca("agency-a", now=now)
    signing_key = SigningKey.generate()

    def certify(key: SigningKey | DecryptionKey, purpose: pki.KeyPurpose) -> Any:
        return pki.issue_key_certificate(
            thief_ca_key, thief_ca, "agency-a", key.public_key.native, purpose, now=now
        )

    forged = AgencyKeys.create_recovery(
        latest,
        recovery_key=SigningKey.generate(),  # not the one statement 1 pins
        signing_key=signing_key,
        new_ca_key=thief_ca_key,
        new_ca_certificate=thief_ca,
        signing_certificate=certify(signing_key, "signing"),
        encryption_certificate=certify(DecryptionKey.generate(), "encryption"),
        witness_certificate=None,
        compromised=[Compromise("agency-a", "ca", "ca:x", now, 2)],
        created_at=now,
    )
    with pytest.raises(grpc.RpcError) as refused:
        a.directory.PublishKeys(
            directory_pb2.PublishKeysRequest(keys=envelope_to_proto(forged)), timeout=10
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not signed by the recovery key pinned" in (refused.value.details() or "")
    assert exchange.json("agencies", agency="agency-b")[0]["key_number"] == 1

    # A statement marking a key of a type nobody knows is refused by name, whoever signed it.
    message = statements_pb2.AgencyKeys()
    message.CopyFrom(latest.message)
    message.key_number, message.previous_keys_hash = 2, latest.hash
    entry = message.compromised.add(key_type="hsm", key_id=latest.verify_key.key_id)
    entry.since.FromDatetime(now)
    message.created_at.FromDatetime(now)
    unknown = add_ca_signature(
        sign_envelope(PAYLOAD_TYPE, encode(message), a.profile.signing_key),
        pki.load_tls_private_key_pem(a.profile.config.paths.ca_key.read_bytes()),
        a.profile.ca_certificate,
    )
    with pytest.raises(grpc.RpcError) as unknown_type:
        a.directory.PublishKeys(
            directory_pb2.PublishKeysRequest(keys=envelope_to_proto(unknown)), timeout=10
        )
    assert unknown_type.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown key type 'hsm'" in (unknown_type.value.details() or "")

    # A hub that serves it anyway (slipped into its database) is caught by every partner.
    keys = AgencyKeys.verify(forged, thief_ca, now=now)
    exchange.tamper(
        insert(agency_keys).values(
            agency_id="agency-a",
            key_number=2,
            envelope=encode(envelope_to_proto(forged)),
            signing_key_id=keys.verify_key.key_id,
            encryption_key_id=keys.encryption_key.key_id,
            signing_public_key=keys.verify_key.raw,
            encryption_public_key=keys.encryption_key.raw,
            added_at=now,
        )
    )
    listed = exchange.run("agencies", "--json", agency="agency-b", expect=VERIFICATION_FAILED)
    assert "KEY_ROTATION_UNAUTHORIZED" in listed.stdout
    shown = exchange.run(
        "keys", "show", "--agency", "agency-a", agency="agency-b", expect=VERIFICATION_FAILED
    )
    assert "recovery key" in shown.stderr


def test_a_statement_the_hub_refuses_leaves_the_profile_as_it_was(
    exchange: AuditedExchange,
) -> None:
    unchanged = profile_files(exchange, "agency-a")
    # A client whose clock runs a day ahead certifies its new key from tomorrow on: the hub,
    # checking at its own time, refuses the statement.
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    client = Client(
        Profile.load(exchange.data / "agencies" / "agency-a"),
        hub=f"127.0.0.1:{hub_port(exchange)}",
        clock=lambda: tomorrow,
    )
    try:
        with pytest.raises(InvalidInputError, match="does not verify"):
            client.revoke_compromised_keys(["signing"], since=tomorrow - timedelta(hours=1))
    finally:
        client.close()
    assert profile_files(exchange, "agency-a") == unchanged
    assert not (exchange.data / "agencies" / "agency-a" / "pending-keys").exists()
    assert [s["key_number"] for s in exchange.json("keys", "show", agency="agency-a")] == [1]
