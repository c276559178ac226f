"""The client library's partner keys against a real hub: publishing reuses recently verified keys,
and a hub refusal caused by a partner revoked since makes the client fetch the directory again."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exchange.store import registry
from exchange_client import Client, Draft, InvalidInputError, Profile


def draft_for(*audience: str) -> Draft:
    return Draft.from_dict(
        {
            "kind": "SHIPMENT",
            "title": "Acetic anhydride declared as vinegar",
            "items": [
                {
                    "id": "note",
                    "policy": {"audience": list(audience), "release": "IMMEDIATE", "tlp": "AMBER"},
                    "note": {"text": "Container MSKU 123456-5", "language": "en"},
                }
            ],
        }
    )


@pytest.fixture
def agency_a(hub: object, exchange_dir: Path, tmp_path: Path) -> Iterator[Client]:
    profile = dataclasses.replace(
        Profile.load(exchange_dir / "agencies" / "agency-a"), state_dir=tmp_path / "agency-a"
    )
    with Client(profile, hub=f"127.0.0.1:{hub.port}") as client:  # type: ignore[attr-defined]
        yield client


def revoke(hub: object, agency_id: str) -> None:
    with hub.db.write() as connection:  # type: ignore[attr-defined]
        registry.revoke_agency(connection, agency_id, now=datetime.now(UTC))
    hub.directory.refresh()  # type: ignore[attr-defined]


def test_publishing_again_reuses_the_verified_partner_keys(agency_a: Client) -> None:
    agency_a.publish(draft_for("agency-b"))
    fetched_at = agency_a._partners.fetched_at
    agency_a.publish(draft_for("agency-b", "agency-c"))
    assert agency_a._partners.fetched_at == fetched_at  # no directory fetch for the second


def test_a_partner_revoked_since_the_keys_were_fetched_is_named(
    hub: object, agency_a: Client
) -> None:
    agency_a.publish(draft_for("agency-b", "agency-c"))
    revoke(hub, "agency-c")
    # The held keys still list agency-c; the hub refuses the audience, the client fetches the
    # directory again and reports the revocation instead of the hub's generic refusal.
    with pytest.raises(InvalidInputError) as refused:
        agency_a.publish(draft_for("agency-b", "agency-c"))
    assert refused.value.reason == "RECIPIENT_REVOKED"
    assert "agency-c" in refused.value.message
    assert agency_a.publish(draft_for("agency-b")).version == 1
    assert list(agency_a._state.outbox()) == []
