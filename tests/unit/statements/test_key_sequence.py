"""Numbered key statements: a sequence replays from its pin, and a gap, a fork, a rollback or a
rotation signed by the wrong key is refused, each with its own reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from exchange import pki
from exchange.crypto.dsse import Envelope
from exchange.crypto.keys import DecryptionKey, SigningKey
from exchange.errors import MalformedError
from exchange.statements.agency_keys import (
    AgencyKeys,
    add_ca_signature,
    add_signature,
    verify_ca_signature,
)
from exchange.statements.key_sequence import (
    FORK,
    GAP,
    INVALID,
    ROLLBACK,
    UNAUTHORIZED,
    KeyPin,
    KeySequenceError,
    dump_pins,
    find_forks,
    load_pins,
    replay,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
AGENCY = "agency-a"


@dataclass
class Agency:
    """An agency's CA and the statements it has made, with the keys behind each."""

    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    statements: list[Envelope] = field(default_factory=list)
    signing_keys: list[SigningKey] = field(default_factory=list)
    moment: datetime = NOW

    def certify(self, key: SigningKey | DecryptionKey, purpose: pki.KeyPurpose) -> x509.Certificate:
        return pki.issue_key_certificate(
            self.ca_key, self.ca, AGENCY, key.public_key.native, purpose, now=self.moment
        )

    def latest(self) -> AgencyKeys:
        return AgencyKeys.verify(self.statements[-1], self.ca, now=NOW)

    def rotate(
        self,
        *,
        days: int = 1,
        new_signing: bool = True,
        previous_signing_key: SigningKey | None = None,
    ) -> Envelope:
        previous = self.latest()
        signing_key = SigningKey.generate() if new_signing else self.signing_keys[-1]
        envelope = AgencyKeys.create_rotation(
            previous,
            previous_signing_key=previous_signing_key or self.signing_keys[-1],
            signing_key=signing_key,
            ca_key=self.ca_key,
            ca_certificate=self.ca,
            signing_certificate=self.certify(signing_key, "signing"),
            encryption_certificate=self.certify(DecryptionKey.generate(), "encryption"),
            witness_certificate=self.certify(SigningKey.generate(), "witness"),
            created_at=NOW + timedelta(days=days * len(self.statements)),
        )
        self.statements.append(envelope)
        self.signing_keys.append(signing_key)
        return envelope


def new_agency(rotations: int = 0) -> Agency:
    ca_key, ca = pki.make_agency_ca(AGENCY, now=NOW - timedelta(days=1))
    agency = Agency(ca_key=ca_key, ca=ca)
    signing_key = SigningKey.generate()
    agency.statements.append(
        AgencyKeys.create(
            agency_id=AGENCY,
            key_number=1,
            signing_key=signing_key,
            signing_certificate=agency.certify(signing_key, "signing"),
            encryption_certificate=agency.certify(DecryptionKey.generate(), "encryption"),
            witness_certificate=agency.certify(SigningKey.generate(), "witness"),
            created_at=NOW,
        )
    )
    agency.signing_keys.append(signing_key)
    for _ in range(rotations):
        agency.rotate()
    return agency


def later() -> datetime:
    return NOW + timedelta(days=30)


# --- sequences that replay ---------------------------------------------------------------------


def test_statement_one_alone_replays_as_before() -> None:
    agency = new_agency()
    sequence = replay(agency.statements, agency.ca, now=NOW)
    assert [s.key_number for s in sequence.statements] == [1]
    assert sequence.pin().latest_number == 1


def test_rotations_replay_and_keep_every_old_signing_key() -> None:
    agency = new_agency(rotations=3)
    sequence = replay(agency.statements, agency.ca, now=later())
    assert [s.key_number for s in sequence.statements] == [1, 2, 3, 4]
    assert set(sequence.verify_keys()) == {k.public_key.key_id for k in agency.signing_keys}
    assert sequence.latest.verify_key == agency.signing_keys[-1].public_key


def test_rotation_keeping_the_signing_key_is_signed_by_it_and_the_ca() -> None:
    agency = new_agency()
    envelope = agency.rotate(new_signing=False)
    verify_ca_signature(envelope, agency.ca)
    assert len(envelope.signatures) == 2
    assert replay(agency.statements, agency.ca, now=later()).latest.key_number == 2


def test_replay_from_a_pin_ignores_statements_before_it() -> None:
    agency = new_agency(rotations=1)
    pin = replay(agency.statements, agency.ca, now=later()).pin()
    agency.rotate()
    # Statement 1 is no longer checked: trust starts where it was pinned.
    sequence = replay(agency.statements, agency.ca, now=later(), pin=pin)
    assert sequence.latest.key_number == 3
    assert sequence.first.key_number == 1


def test_pins_round_trip_through_json() -> None:
    agency = new_agency(rotations=1)
    pins = {AGENCY: replay(agency.statements, agency.ca, now=later()).pin()}
    assert load_pins(dump_pins(pins)) == pins


# --- sequences that are refused, by name ---------------------------------------------------------


def _signed_by_wrong_key(agency: Agency) -> list[Envelope]:
    """A rotation signed by the CA and the new key, but not by the signing key it replaces."""
    previous = agency.latest()
    intruder = SigningKey.generate()
    envelope = AgencyKeys.create(
        agency_id=AGENCY,
        key_number=2,
        signing_key=intruder,
        signing_certificate=agency.certify(intruder, "signing"),
        encryption_certificate=agency.certify(DecryptionKey.generate(), "encryption"),
        witness_certificate=None,
        created_at=NOW + timedelta(days=1),
        previous_keys_hash=previous.hash,
    )
    return [agency.statements[0], add_ca_signature(envelope, agency.ca_key, agency.ca)]


def _without_ca_signature(agency: Agency) -> list[Envelope]:
    """A rotation signed by the old and the new signing key, with no CA signature."""
    previous = agency.latest()
    new_key = SigningKey.generate()
    envelope = AgencyKeys.create(
        agency_id=AGENCY,
        key_number=2,
        signing_key=new_key,
        signing_certificate=agency.certify(new_key, "signing"),
        encryption_certificate=agency.certify(DecryptionKey.generate(), "encryption"),
        witness_certificate=None,
        created_at=NOW + timedelta(days=1),
        previous_keys_hash=previous.hash,
    )
    return [agency.statements[0], add_signature(envelope, agency.signing_keys[0])]


def _signed_by_another_ca(agency: Agency) -> list[Envelope]:
    other_key, other_ca = pki.make_agency_ca(AGENCY, now=NOW - timedelta(days=1))
    stranger = Agency(ca_key=other_key, ca=other_ca)
    previous = agency.latest()
    new_key = SigningKey.generate()
    envelope = AgencyKeys.create(
        agency_id=AGENCY,
        key_number=2,
        signing_key=new_key,
        signing_certificate=stranger.certify(new_key, "signing"),
        encryption_certificate=stranger.certify(DecryptionKey.generate(), "encryption"),
        witness_certificate=None,
        created_at=NOW + timedelta(days=1),
        previous_keys_hash=previous.hash,
    )
    envelope = add_signature(envelope, agency.signing_keys[0])
    return [agency.statements[0], add_ca_signature(envelope, other_key, other_ca)]


def _skipping_a_number(agency: Agency) -> list[Envelope]:
    agency.rotate()
    agency.rotate()
    return [agency.statements[0], agency.statements[2]]


def _two_statements_one_number(agency: Agency) -> list[Envelope]:
    first = agency.rotate()
    del agency.statements[-1], agency.signing_keys[-1]
    second = agency.rotate()
    return [agency.statements[0], first, second]


def _not_linked_to_its_predecessor(agency: Agency) -> list[Envelope]:
    fork = new_agency()
    fork.ca_key, fork.ca = agency.ca_key, agency.ca
    # Same number 2, but chained to another statement 1 than the one served.
    other_first = AgencyKeys.create(
        agency_id=AGENCY,
        key_number=1,
        signing_key=agency.signing_keys[0],
        signing_certificate=agency.certify(agency.signing_keys[0], "signing"),
        encryption_certificate=agency.certify(DecryptionKey.generate(), "encryption"),
        witness_certificate=None,
        created_at=NOW,
    )
    fork.statements = [other_first]
    fork.signing_keys = [agency.signing_keys[0]]
    return [agency.statements[0], fork.rotate()]


def _dated_before_its_predecessor(agency: Agency) -> list[Envelope]:
    agency.rotate(days=-1)
    return agency.statements


def _number_repeated(agency: Agency) -> list[Envelope]:
    previous = agency.latest()
    new_key = SigningKey.generate()
    envelope = AgencyKeys.create(
        agency_id=AGENCY,
        key_number=1,
        signing_key=new_key,
        signing_certificate=agency.certify(new_key, "signing"),
        encryption_certificate=agency.certify(DecryptionKey.generate(), "encryption"),
        witness_certificate=None,
        created_at=NOW + timedelta(days=1),
        previous_keys_hash=previous.hash,
    )
    return [agency.statements[0], envelope]


def _unknown_field(agency: Agency) -> list[Envelope]:
    statement = agency.statements[0]
    payload = statement.payload + b"\xf8\x01\x01"  # field 31, varint 1: not in AgencyKeys
    return [Envelope(payload=payload, payload_type=statement.payload_type, signatures=())]


REFUSED: dict[str, tuple[Callable[[Agency], list[Envelope]], str]] = {
    "rotation not signed by the key it replaces": (_signed_by_wrong_key, UNAUTHORIZED),
    "rotation without the CA's signature": (_without_ca_signature, UNAUTHORIZED),
    "rotation certified by another CA": (_signed_by_another_ca, INVALID),
    "a number skipped": (_skipping_a_number, GAP),
    "two statements with one number": (_two_statements_one_number, FORK),
    "a statement chained to another predecessor": (_not_linked_to_its_predecessor, FORK),
    "a statement dated before its predecessor": (_dated_before_its_predecessor, ROLLBACK),
    "statement 1 served twice, differently": (_number_repeated, FORK),
    "a statement with an unknown field": (_unknown_field, INVALID),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_forged_sequence_is_refused(case: str) -> None:
    make, reason = REFUSED[case]
    agency = new_agency()
    served = make(agency)
    with pytest.raises(KeySequenceError) as caught:
        replay(served, agency.ca, now=later())
    assert caught.value.reason == reason, caught.value.message


def test_a_rollback_below_what_was_seen_is_refused() -> None:
    agency = new_agency(rotations=2)
    pin = replay(agency.statements, agency.ca, now=later()).pin()
    with pytest.raises(KeySequenceError) as caught:
        replay(agency.statements[:2], agency.ca, now=later(), pin=pin)
    assert caught.value.reason == ROLLBACK
    assert caught.value.key_number == 3


def test_a_latest_statement_other_than_the_one_seen_is_a_fork() -> None:
    agency = new_agency(rotations=1)
    pin = replay(agency.statements, agency.ca, now=later()).pin()
    del agency.statements[-1], agency.signing_keys[-1]
    agency.rotate()
    with pytest.raises(KeySequenceError) as caught:
        replay(agency.statements, agency.ca, now=later(), pin=pin)
    assert caught.value.reason == FORK
    assert caught.value.key_number == 2


def test_a_pinned_first_statement_swapped_is_a_fork() -> None:
    agency = new_agency()
    pin = replay(agency.statements, agency.ca, now=NOW).pin()
    with pytest.raises(KeySequenceError) as caught:
        replay(_rebuilt_first(agency), agency.ca, now=NOW, pin=pin)
    assert caught.value.reason == FORK


def _rebuilt_first(agency: Agency) -> list[Envelope]:
    key = SigningKey.generate()
    return [
        AgencyKeys.create(
            agency_id=AGENCY,
            key_number=1,
            signing_key=key,
            signing_certificate=agency.certify(key, "signing"),
            encryption_certificate=agency.certify(DecryptionKey.generate(), "encryption"),
            witness_certificate=None,
            created_at=NOW,
        )
    ]


def test_rotation_with_a_signing_key_that_is_not_the_latest_is_refused_before_signing() -> None:
    agency = new_agency()
    with pytest.raises(Exception) as caught:
        agency.rotate(previous_signing_key=SigningKey.generate())
    assert "signing key given is not the one of key statement 1" in str(caught.value)


def test_superseded_statements_are_checked_at_their_own_date() -> None:
    agency = new_agency(rotations=1)
    # Statement 1's certificates expire after 825 days; statement 2's were issued later.
    agency.moment = NOW + timedelta(days=800)
    agency.rotate(days=400)
    sequence = replay(agency.statements, agency.ca, now=NOW + timedelta(days=1000))
    assert sequence.latest.key_number == 3
    # The latest statement itself is checked at ``now``: once its certificates expire, refused.
    with pytest.raises(KeySequenceError) as caught:
        replay(agency.statements, agency.ca, now=NOW + timedelta(days=3000))
    assert caught.value.key_number == 3
    assert caught.value.reason == INVALID


def test_forks_in_the_log_are_named() -> None:
    agency = new_agency()
    first = agency.rotate()
    del agency.statements[-1], agency.signing_keys[-1]
    second = agency.rotate()
    forks = find_forks([agency.statements[0], first, second, first])
    assert list(forks) == [(AGENCY, 2)]
    assert len(forks[(AGENCY, 2)]) == 2
    assert find_forks(agency.statements) == {}


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"agency_id": AGENCY, "first_number": 0},
        {
            "agency_id": AGENCY,
            "first_number": 2,
            "first_hash": "",
            "latest_number": 1,
            "latest_hash": "",
        },
        "pin",
    ],
)
def test_a_malformed_pin_is_refused(document: object) -> None:
    with pytest.raises(MalformedError):
        KeyPin.from_json(document)
