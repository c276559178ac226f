"""Compromised keys and CA recovery in a key sequence: a compromise flags what the key signed
from its time on and nothing before; only the recovery key pinned by statement 1 can replace
the CA; statements with an unknown key type or a compromise dated after themselves are refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from exchange import pki
from exchange.crypto.dsse import Envelope, sign_envelope
from exchange.crypto.keys import DecryptionKey, SigningKey
from exchange.errors import MalformedError
from exchange.statements.agency_keys import (
    PAYLOAD_TYPE,
    AgencyKeys,
    add_ca_signature,
    add_signature,
    ca_key_id,
)
from exchange.statements.codec import encode
from exchange.statements.key_compromise import Compromise, untrusted_reason
from exchange.statements.key_sequence import (
    INVALID,
    UNAUTHORIZED,
    KeySequenceError,
    replay,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
AGENCY = "agency-a"


@dataclass
class Agency:
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    recovery_key: SigningKey
    statements: list[Envelope] = field(default_factory=list)
    signing_keys: list[SigningKey] = field(default_factory=list)

    def certify(
        self,
        key: SigningKey | DecryptionKey,
        purpose: pki.KeyPurpose,
        *,
        ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None,
    ) -> x509.Certificate:
        ca_key, ca_cert = ca or (self.ca_key, self.ca)
        return pki.issue_key_certificate(
            ca_key, ca_cert, AGENCY, key.public_key.native, purpose, now=NOW - timedelta(hours=1)
        )

    def latest(self, ca: x509.Certificate | None = None) -> AgencyKeys:
        return AgencyKeys.verify(self.statements[-1], ca or self.ca, now=NOW)

    def compromise(self, kind: str, since: datetime, *, at: datetime) -> Envelope:
        previous = self.latest()
        signing_key = SigningKey.generate()
        key_id = {
            "signing": previous.verify_key.key_id,
            "encryption": previous.encryption_key.key_id,
        }[kind]
        envelope = AgencyKeys.create_rotation(
            previous,
            previous_signing_key=self.signing_keys[-1],
            signing_key=signing_key,
            ca_key=self.ca_key,
            ca_certificate=self.ca,
            signing_certificate=self.certify(signing_key, "signing"),
            encryption_certificate=self.certify(DecryptionKey.generate(), "encryption"),
            witness_certificate=None,
            compromised=[Compromise(AGENCY, kind, key_id, since, previous.key_number + 1)],
            created_at=at,
        )
        self.statements.append(envelope)
        self.signing_keys.append(signing_key)
        return envelope

    def recover(self, recovery_key: SigningKey, *, at: datetime) -> tuple[Envelope, x509.Certificate]:
        previous = self.latest()
        new_ca = pki.make_agency_ca(AGENCY, now=NOW - timedelta(hours=1))
        signing_key = SigningKey.generate()
        envelope = AgencyKeys.create_recovery(
            previous,
            recovery_key=recovery_key,
            signing_key=signing_key,
            new_ca_key=new_ca[0],
            new_ca_certificate=new_ca[1],
            signing_certificate=self.certify(signing_key, "signing", ca=new_ca),
            encryption_certificate=self.certify(DecryptionKey.generate(), "encryption", ca=new_ca),
            witness_certificate=None,
            compromised=[
                Compromise(AGENCY, "ca", ca_key_id(self.ca), at, previous.key_number + 1)
            ],
            created_at=at,
        )
        return envelope, new_ca[1]


def new_agency() -> Agency:
    ca_key, ca = pki.make_agency_ca(AGENCY, now=NOW - timedelta(days=1))
    agency = Agency(ca_key=ca_key, ca=ca, recovery_key=SigningKey.generate())
    signing_key = SigningKey.generate()
    agency.statements.append(
        AgencyKeys.create(
            agency_id=AGENCY,
            key_number=1,
            signing_key=signing_key,
            signing_certificate=agency.certify(signing_key, "signing"),
            encryption_certificate=agency.certify(DecryptionKey.generate(), "encryption"),
            witness_certificate=None,
            created_at=NOW - timedelta(minutes=30),
            recovery_key=agency.recovery_key.public_key,
        )
    )
    agency.signing_keys.append(signing_key)
    return agency


def signed_by(key: SigningKey) -> Envelope:
    return sign_envelope("application/vnd.exchange.test", b"statement", key)


# --- compromise ----------------------------------------------------------------------------------


def test_a_compromise_flags_what_the_key_signed_from_its_time_on_and_nothing_before() -> None:
    agency = new_agency()
    old_key = agency.signing_keys[-1]
    since = NOW - timedelta(minutes=10)
    agency.compromise("signing", since, at=NOW)
    sequence = replay(agency.statements, agency.ca, now=NOW)
    compromised = sequence.compromised()
    assert set(compromised) == {old_key.public_key.key_id}
    keys = sequence.verify_keys()
    envelope = signed_by(old_key)
    before = since - timedelta(seconds=1)
    assert untrusted_reason(envelope, keys, compromised, signed_at=before, logged_at=before) == ""
    reason = untrusted_reason(envelope, keys, compromised, signed_at=since, logged_at=since)
    assert "compromised since" in reason and old_key.public_key.fingerprint in reason
    # A thief backdates the statement; the hub's log time still gives it away.
    assert untrusted_reason(envelope, keys, compromised, signed_at=before, logged_at=NOW)
    # The new key is trusted, and so is a statement also signed by it.
    assert untrusted_reason(signed_by(agency.signing_keys[-1]), keys, compromised,
                            signed_at=NOW, logged_at=NOW) == ""


def test_a_compromise_dated_after_its_own_statement_is_refused() -> None:
    agency = new_agency()
    with pytest.raises(MalformedError, match="after the statement's own date"):
        agency.compromise("signing", NOW + timedelta(minutes=1), at=NOW)


def test_a_statement_with_an_unknown_key_type_is_refused_by_name() -> None:
    agency = new_agency()
    previous = agency.latest()
    message = previous.message.__class__()
    message.CopyFrom(previous.message)
    message.key_number = 2
    message.previous_keys_hash = previous.hash
    entry = message.compromised.add(key_type="hsm", key_id=previous.verify_key.key_id)
    entry.since.FromDatetime(NOW - timedelta(minutes=1))
    message.created_at.FromDatetime(NOW)
    envelope = sign_envelope(PAYLOAD_TYPE, encode(message), agency.signing_keys[-1])
    with pytest.raises(MalformedError, match="unknown key type 'hsm'") as caught:
        AgencyKeys.verify(envelope, agency.ca, now=NOW)
    assert caught.value.reason == "UNKNOWN_KEY_TYPE"
    with pytest.raises(KeySequenceError) as refused:
        replay([*agency.statements, envelope], agency.ca, now=NOW)
    assert refused.value.reason == INVALID and "unknown key type" in refused.value.message


# --- recovery ------------------------------------------------------------------------------------


def test_the_pinned_recovery_key_replaces_the_ca_without_the_old_ca_or_keys() -> None:
    agency = new_agency()
    pin = replay(agency.statements, agency.ca, now=NOW).pin()
    envelope, new_ca = agency.recover(agency.recovery_key, at=NOW)
    sequence = replay([*agency.statements, envelope], agency.ca, now=NOW, pin=pin)
    assert sequence.latest.is_recovery
    assert sequence.ca_certificate == new_ca
    assert sequence.recovery_key == agency.recovery_key.public_key
    assert ca_key_id(agency.ca) in sequence.compromised()
    # Anyone holding the new CA out of band (the agency itself, a partner that took it) replays
    # from the recovery statement on, with or without a pin.
    from_new = replay([*agency.statements, envelope], new_ca, now=NOW)
    assert [s.key_number for s in from_new.statements] == [2]
    assert replay([*agency.statements, envelope], new_ca, now=NOW, pin=pin).latest.key_number == 2


def test_a_recovery_signed_by_another_key_is_refused() -> None:
    agency = new_agency()
    envelope, _ = agency.recover(SigningKey.generate(), at=NOW)
    with pytest.raises(KeySequenceError) as refused:
        replay([*agency.statements, envelope], agency.ca, now=NOW)
    assert refused.value.reason == UNAUTHORIZED
    assert "not signed by the recovery key pinned" in refused.value.message


def test_a_recovery_without_a_pinned_recovery_key_is_refused() -> None:
    agency = new_agency()
    first = agency.latest()
    message = first.message.__class__()
    message.CopyFrom(first.message)
    message.ClearField("recovery_public_key")
    agency.statements[0] = sign_envelope(PAYLOAD_TYPE, encode(message), agency.signing_keys[0])
    envelope, _ = agency.recover(agency.recovery_key, at=NOW)
    with pytest.raises(KeySequenceError, match="pins no recovery key") as refused:
        replay([*agency.statements, envelope], agency.ca, now=NOW)
    assert refused.value.reason == UNAUTHORIZED


def test_a_plain_rotation_cannot_change_the_recovery_key() -> None:
    agency = new_agency()
    previous = agency.latest()
    signing_key = SigningKey.generate()
    envelope = AgencyKeys.create(
        agency_id=AGENCY,
        key_number=2,
        signing_key=signing_key,
        signing_certificate=agency.certify(signing_key, "signing"),
        encryption_certificate=agency.certify(DecryptionKey.generate(), "encryption"),
        witness_certificate=None,
        created_at=NOW,
        previous_keys_hash=previous.hash,
        recovery_key=SigningKey.generate().public_key,
    )
    envelope = add_ca_signature(
        add_signature(envelope, agency.signing_keys[-1]), agency.ca_key, agency.ca
    )
    with pytest.raises(KeySequenceError, match="names another recovery key") as refused:
        replay([*agency.statements, envelope], agency.ca, now=NOW)
    assert refused.value.reason == UNAUTHORIZED
