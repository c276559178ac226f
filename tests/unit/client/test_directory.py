"""Partner keys are checked against the CA certificates in our profile, never the hub's copy.

Each case builds the directory record a hub would serve, from the real material
``exchange-hub init`` made, and checks what the client concludes from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

import pytest

from exchange import pki
from exchange.config.profile import ProfileData, load_profile
from exchange.statements.codec import envelope_to_proto
from exchange.v1 import directory_pb2
from exchange_client import Client, Profile
from exchange_client._internal.partners import agency_info, check_record


@pytest.fixture(scope="module")
def material(exchange_dir: Path) -> dict[str, ProfileData]:
    return {
        agency: load_profile(exchange_dir / "agencies" / agency)
        for agency in ("agency-a", "agency-b", "agency-c")
    }


@pytest.fixture
def now(material: dict[str, ProfileData]) -> datetime:
    """The moment the material was made, read from its certificates: never the wall clock.

    However long the run took to reach this module, the certificates are valid at it.
    """
    return material["agency-a"].ca_certificate.not_valid_before_utc + pki.CLOCK_SKEW_ALLOWANCE


@pytest.fixture
def client(material: dict[str, ProfileData], tmp_path: Path) -> Iterator[Client]:
    profile = dataclasses.replace(
        Profile.from_data(material["agency-a"]), state_dir=tmp_path / "state"
    )
    with Client(profile, hub="127.0.0.1:1") as client:
        yield client


def record(
    material: dict[str, ProfileData], agency: str, *, keys_of: tuple[str, ...] | None = None
) -> directory_pb2.AgencyRecord:
    """The record a hub serves for ``agency``, with the key statements of ``keys_of``."""
    return directory_pb2.AgencyRecord(
        agency_id=agency,
        ca_certificate=pki.certificate_to_der(material[agency].ca_certificate),
        keys=[envelope_to_proto(material[a].keys_envelope) for a in keys_of or (agency,)],
    )


def test_a_partner_whose_keys_chain_to_its_own_ca_is_verified(
    client: Client, material: dict[str, ProfileData], now: datetime
) -> None:
    partner = check_record(record(material, "agency-b"), client.profile.partner_cas, now)
    assert partner.verified
    assert partner.problem == ""
    assert partner.latest is not None
    assert partner.latest.encryption_key == material["agency-b"].encryption_key.public_key
    info = agency_info(partner)
    assert info.signing_key_fingerprint == material["agency-b"].signing_key.public_key.fingerprint
    assert info.key_number == 1


def test_a_key_slipped_in_by_the_hub_is_not_verified_and_never_encrypted_to(
    client: Client, material: dict[str, ProfileData], now: datetime
) -> None:
    swapped = record(material, "agency-b", keys_of=("agency-c",))
    partner = check_record(swapped, client.profile.partner_cas, now)
    assert not partner.verified
    assert "does not verify" in partner.problem
    assert partner.verify_keys == {}


def test_an_agency_without_a_ca_in_the_profile_is_not_verified(
    client: Client, material: dict[str, ProfileData], now: datetime
) -> None:
    trimmed = dict(client.profile.partner_cas)
    del trimmed["agency-b"]
    client.profile = dataclasses.replace(client.profile, partner_cas=MappingProxyType(trimmed))
    partner = check_record(record(material, "agency-b"), client.profile.partner_cas, now)
    assert not partner.verified
    assert "[partners]" in partner.problem


def test_the_hubs_copy_of_a_ca_is_ignored_but_a_difference_is_reported(
    client: Client, material: dict[str, ProfileData], now: datetime
) -> None:
    served = record(material, "agency-b")
    served.ca_certificate = pki.certificate_to_der(material["agency-c"].ca_certificate)
    partner = check_record(served, client.profile.partner_cas, now)
    assert partner.verified  # checked against the profile's CA, which the keys chain to
    assert "differs" in partner.problem


def test_a_sequence_with_a_foreign_statement_leaves_no_key_at_all(
    client: Client, material: dict[str, ProfileData], now: datetime
) -> None:
    # Numbered key statements are trusted as one sequence: a second statement 1 (here another
    # agency's) is a fork, and a forked sequence gives no key, old or new.
    partner = check_record(
        record(material, "agency-b", keys_of=("agency-b", "agency-c")),
        client.profile.partner_cas,
        now,
    )
    assert not partner.verified
    assert partner.tampered
    assert partner.verify_keys == {}
    assert "KEY_SEQUENCE" in partner.problem or "names both" in partner.problem
