"""Key rotation through a real hub (SQLite and PostgreSQL): the hub keeps each statement as a log
entry and serves the sequence; partners replay it; a forged rotation is refused."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import grpc
import pytest
from sqlalchemy import delete, select

from exchange import pki
from exchange.config.profile import ProfileData
from exchange.crypto.dsse import Envelope
from exchange.crypto.keys import DecryptionKey, SigningKey
from exchange.errors import VerificationError
from exchange.statements import key_sequence
from exchange.statements.agency_keys import AgencyKeys, add_ca_signature
from exchange.statements.codec import envelope_from_proto, envelope_to_proto
from exchange.store.log import append_entry
from exchange.store.schema import agency_keys, log_entries
from exchange.v1 import directory_pb2
from exchange_client import Client, Profile
from tests.conftest import FrozenClock
from tests.integration.agency import TestAgency


@pytest.fixture
def agencies(hub: object, exchange_dir: Path) -> Iterator[dict[str, TestAgency]]:
    port = hub.port  # type: ignore[attr-defined]
    parties = {a: TestAgency(exchange_dir, a, port) for a in ("agency-a", "agency-b")}
    yield parties
    for party in parties.values():
        party.close()


def rotation(
    profile: ProfileData,
    previous: AgencyKeys,
    previous_signing_key: SigningKey,
    now: datetime,
    *,
    ca_key_pem: bytes | None = None,
) -> tuple[Envelope, SigningKey]:
    """The next statement of ``profile``'s agency with every key new."""
    ca_key = pki.load_tls_private_key_pem(ca_key_pem or profile.config.paths.ca_key.read_bytes())
    ca, agency = profile.ca_certificate, profile.agency_id
    signing_key = SigningKey.generate()

    def certify(key: SigningKey | DecryptionKey, purpose: pki.KeyPurpose) -> object:
        return pki.issue_key_certificate(
            ca_key, ca, agency, key.public_key.native, purpose, now=now
        )

    envelope = AgencyKeys.create_rotation(
        previous,
        previous_signing_key=previous_signing_key,
        signing_key=signing_key,
        ca_key=ca_key,
        ca_certificate=ca,
        signing_certificate=certify(signing_key, "signing"),  # type: ignore[arg-type]
        encryption_certificate=certify(DecryptionKey.generate(), "encryption"),  # type: ignore[arg-type]
        witness_certificate=certify(SigningKey.generate(), "witness"),  # type: ignore[arg-type]
        created_at=now,
    )
    return envelope, signing_key


def served_sequence(viewer: TestAgency, agency_id: str, now: datetime) -> key_sequence.KeySequence:
    record = viewer.directory.GetAgency(
        directory_pb2.GetAgencyRequest(agency_id=agency_id), timeout=10
    )
    envelopes = [envelope_from_proto(e) for e in record.keys]
    return key_sequence.replay(envelopes, viewer.profile.partner_cas[agency_id], now=now)


def publish(agency: TestAgency, envelope: Envelope) -> int:
    request = directory_pb2.PublishKeysRequest(keys=envelope_to_proto(envelope))
    return agency.directory.PublishKeys(request, timeout=10).key_number


def test_rotations_are_logged_served_and_replayed_by_partners(
    hub: object, agencies: dict[str, TestAgency], clock: FrozenClock
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    clock.advance(seconds=1)  # past statement 1, made at init within this second
    now = clock()
    first = served_sequence(b, "agency-a", now)
    pin = first.pin()
    envelope, second_key = rotation(a.profile, first.latest, a.profile.signing_key, now)
    assert publish(a, envelope) == 2
    assert publish(a, envelope) == 2  # a retry of the same statement is answered alike
    third, _ = rotation(a.profile, AgencyKeys.verify(envelope, a.profile.ca_certificate, now=now),
                        second_key, now)
    assert publish(a, third) == 3

    sequence = served_sequence(b, "agency-a", now)
    assert [s.key_number for s in sequence.statements] == [1, 2, 3]
    replayed = key_sequence.replay(
        [s.envelope for s in sequence.statements], b.profile.partner_cas["agency-a"], now=now,
        pin=pin,
    )
    assert replayed.latest.hash == sequence.latest.hash
    latest = replayed.latest
    notice = (
        f"agency-a rotated its keys: statement 1 -> 3 (signing {latest.verify_key.fingerprint}, "
        f"encryption {latest.encryption_key.fingerprint})"
    )
    assert key_sequence.changes({"agency-a": pin}, {"agency-a": replayed}) == [notice]
    # The hub's own view moved on: the directory serves the new encryption key id.
    ids = hub.directory.encryption_key_ids()  # type: ignore[attr-defined]
    assert ids["agency-a"] == replayed.latest.encryption_key.key_id
    with hub.db.read() as connection:  # type: ignore[attr-defined]
        logged = connection.execute(
            select(log_entries.c.body).where(log_entries.c.entry_type == "agency_keys")
        ).scalars().all()
    assert len(logged) == 2


def test_a_rotation_not_signed_by_the_key_it_replaces_is_refused(
    hub: object, agencies: dict[str, TestAgency], clock: FrozenClock
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    clock.advance(seconds=1)  # past statement 1, made at init within this second
    now = clock()
    latest = served_sequence(a, "agency-a", now).latest
    # Signed by the CA and a fresh key, but not by the signing key being replaced.
    intruder = SigningKey.generate()
    ca_key = pki.load_tls_private_key_pem(a.profile.config.paths.ca_key.read_bytes())
    unsigned = AgencyKeys.create(
        agency_id="agency-a",
        key_number=2,
        signing_key=intruder,
        signing_certificate=pki.issue_key_certificate(
            ca_key, a.profile.ca_certificate, "agency-a", intruder.public_key.native, "signing",
            now=now,
        ),
        encryption_certificate=a.profile.encryption_certificate,
        witness_certificate=None,
        created_at=now,
        previous_keys_hash=latest.hash,
    )
    forged_envelope = add_ca_signature(unsigned, ca_key, a.profile.ca_certificate)
    with pytest.raises(grpc.RpcError) as refused:
        publish(a, forged_envelope)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not signed by the signing key it replaces" in (refused.value.details() or "")
    assert [s.key_number for s in served_sequence(b, "agency-a", now).statements] == [1]


def test_a_skipped_number_a_second_statement_and_another_agency_are_refused(
    hub: object, agencies: dict[str, TestAgency], clock: FrozenClock
) -> None:
    a, b = agencies["agency-a"], agencies["agency-b"]
    clock.advance(seconds=1)  # past statement 1, made at init within this second
    now = clock()
    latest = served_sequence(a, "agency-a", now).latest
    second, second_key = rotation(a.profile, latest, a.profile.signing_key, now)
    verified_second = AgencyKeys.verify(second, a.profile.ca_certificate, now=now)
    third, _ = rotation(a.profile, verified_second, second_key, now)
    with pytest.raises(grpc.RpcError) as gap:
        publish(a, third)
    assert gap.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "statement 2 is missing" in (gap.value.details() or "")

    assert publish(a, second) == 2
    other_second, _ = rotation(a.profile, latest, a.profile.signing_key, now)
    with pytest.raises(grpc.RpcError) as fork:
        publish(a, other_second)
    assert fork.value.code() == grpc.StatusCode.ALREADY_EXISTS

    with pytest.raises(grpc.RpcError) as not_own:
        publish(b, third)
    assert not_own.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert [s.key_number for s in served_sequence(b, "agency-a", now).statements] == [1, 2]


# --- a partner's client follows rotations and keeps its pin ----------------------------------------


@pytest.fixture
def client_for(
    hub: object, exchange_dir: Path, tmp_path: Path, clock: FrozenClock
) -> Iterator[Callable[[str], Client]]:
    opened: list[Client] = []

    def make(agency: str) -> Client:
        profile = dataclasses.replace(
            Profile.load(exchange_dir / "agencies" / agency), state_dir=tmp_path / agency
        )
        (tmp_path / agency).mkdir(mode=0o700, exist_ok=True)
        client = Client(profile, hub=f"127.0.0.1:{hub.port}", clock=clock)  # type: ignore[attr-defined]
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


def test_a_partner_follows_a_rotation_with_a_notice_and_refuses_a_rollback(
    hub: object,
    agencies: dict[str, TestAgency],
    client_for: Callable[[str], Client],
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    a = agencies["agency-a"]
    clock.advance(seconds=1)
    now = clock()
    b = client_for("agency-b")
    before = {agency.agency_id: agency for agency in b.agencies()}
    assert before["agency-a"].key_number == 1
    assert b.key_notices == []
    assert (tmp_path / "agency-b" / "key-pins.json").exists()

    latest = served_sequence(a, "agency-a", now).latest
    envelope, _ = rotation(a.profile, latest, a.profile.signing_key, now)
    publish(a, envelope)
    rotated = AgencyKeys.verify(envelope, a.profile.ca_certificate, now=now)

    # The next call that fetches keys follows the rotation by itself.
    keys = b._partners.recipient_keys(["agency-a"])
    assert keys["agency-a"] == rotated.encryption_key
    assert len(b.key_notices) == 1
    assert "agency-a rotated its keys: statement 1 -> 2" in b.key_notices[0]
    shown = {agency.agency_id: agency for agency in b.agencies()}["agency-a"]
    assert (shown.key_number, shown.signing_key_fingerprint, shown.encryption_key_fingerprint) == (
        2,
        rotated.verify_key.fingerprint,
        rotated.encryption_key.fingerprint,
    )

    # A hub that rolls agency-a back to statement 1 (here: its row deleted behind its back) is
    # caught by the pin: agency-a is shown tampered and nothing is encrypted to it.
    with hub.db.write() as connection:  # type: ignore[attr-defined]
        connection.execute(
            delete(agency_keys).where(
                agency_keys.c.agency_id == "agency-a", agency_keys.c.key_number == 2
            )
        )
    shown = {agency.agency_id: agency for agency in b.agencies()}["agency-a"]
    assert shown.tampered and not shown.verified
    assert "KEY_SEQUENCE_ROLLBACK" in shown.problem
    with pytest.raises(VerificationError):
        b._partners.recipient_keys(["agency-a"])
    # A partner that never saw statement 2 has nothing to compare with: it accepts statement 1.
    c = client_for("agency-c")
    assert {agency.agency_id: agency for agency in c.agencies()}["agency-a"].verified


def test_keys_show_names_each_statements_signers(
    hub: object,
    agencies: dict[str, TestAgency],
    client_for: Callable[[str], Client],
    clock: FrozenClock,
) -> None:
    a = agencies["agency-a"]
    clock.advance(seconds=1)
    now = clock()
    latest = served_sequence(a, "agency-a", now).latest
    envelope, _ = rotation(a.profile, latest, a.profile.signing_key, now)
    publish(a, envelope)
    own = client_for("agency-a").key_statements()
    assert [(s.key_number, s.current) for s in own] == [(1, False), (2, True)]
    assert own[0].signed_by == ("own signing key",)
    assert own[1].signed_by == ("own signing key", "signing key of statement 1", "CA")
    rotated = AgencyKeys.verify(envelope, a.profile.ca_certificate, now=now)
    assert own[1].encryption_key_fingerprint == rotated.encryption_key.fingerprint
    assert own[1].expires_at == rotated.signing_certificate.not_valid_after_utc
    # A partner sees the same sequence, replayed against its own copy of agency-a's CA.
    seen = client_for("agency-b").key_statements("agency-a")
    assert [s.to_json() for s in seen] == [s.to_json() for s in own]


def test_two_statements_with_one_number_in_the_log_fail_audit_verify(
    hub: object,
    agencies: dict[str, TestAgency],
    client_for: Callable[[str], Client],
    clock: FrozenClock,
) -> None:
    a = agencies["agency-a"]
    clock.advance(seconds=1)
    now = clock()
    latest = served_sequence(a, "agency-a", now).latest
    shown_to_b, _ = rotation(a.profile, latest, a.profile.signing_key, now)
    publish(a, shown_to_b)
    b = client_for("agency-b")
    hub.checkpoint_now()  # type: ignore[attr-defined]
    assert b.auditor.verify().ok
    # A hub showing another partner another statement 2 must log it too (or the partner's own
    # audit fails): here it appends one behind the registry's back, as a hostile hub would.
    shown_to_c, _ = rotation(a.profile, latest, a.profile.signing_key, now)
    with hub.db.write() as connection:  # type: ignore[attr-defined]
        append_entry(
            connection,
            entry_type="agency_keys",
            body=envelope_to_proto(shown_to_c).SerializeToString(deterministic=True),
            references=["agency-a", "2"],
            entitled=["agency-a", "agency-b", "agency-c"],
            now=now,
        )
    hub.checkpoint_now()  # type: ignore[attr-defined]
    report = b.auditor.verify()
    assert [f.reason for f in report.failures] == ["KEY_SEQUENCE_FORK"]
    assert "2 different key statements number 2" in report.failures[0].message
