"""Polled feed events are proven in the audit log, like streamed ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from exchange.errors import VerificationError
from exchange.store.release_tables import release_requests
from exchange.store.schema import alerts, feed_events
from exchange_client import Client, Draft, Profile

DRAFT = {
    "kind": "GENERAL",
    "title": "t",
    "items": [
        {
            "id": "n",
            "policy": {"audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "AMBER"},
            "note": {"text": "x", "language": "en"},
        }
    ],
}


def client_for(exchange_dir: Path, agency: str, hub: object) -> Client:
    profile = Profile.load(exchange_dir / "agencies" / agency)
    return Client(profile, hub=f"127.0.0.1:{hub.port}")  # type: ignore[attr-defined]


@pytest.fixture
def isolated_exchange(tmp_path: Path) -> Path:
    """A fresh exchange: the clients keep checkpoints in their profiles' state."""
    from exchange.hub.init import init_exchange

    directory = tmp_path / "exchange"
    init_exchange(directory, ["agency-a", "agency-b"], listen="127.0.0.1:50051")
    return directory


@pytest.fixture
def own_hub(isolated_exchange: Path, database_url: str, clock: object):  # type: ignore[no-untyped-def]
    import dataclasses

    from exchange.hub.app import Hub
    from exchange.hub.config import HubConfig

    config = HubConfig.from_file(isolated_exchange / "hub.toml").with_overrides(
        database_url=database_url, listen="127.0.0.1:0"
    )
    hub = Hub(dataclasses.replace(config, heartbeat_interval_seconds=0.2))
    hub.prepare()
    hub.start()
    yield hub
    hub.stop(grace=0)


def test_polled_events_are_proven_and_a_rewritten_one_is_refused(
    isolated_exchange: Path, own_hub: object
) -> None:
    with client_for(isolated_exchange, "agency-a", own_hub) as a:
        receipt = a.publish(Draft.from_dict(DRAFT))
    with client_for(isolated_exchange, "agency-b", own_hub) as b:
        [event] = b.events(after=0)
        assert event.alert_id == receipt.alert_id
        with own_hub.db.write() as connection:  # type: ignore[attr-defined]
            connection.execute(
                update(feed_events).values(alert_id="00000000-0000-4000-8000-000000000000")
            )
        with pytest.raises(VerificationError):
            b.events(after=0)


def test_a_release_request_is_made_only_about_a_manifest_proven_in_the_log(
    isolated_exchange: Path, own_hub: object
) -> None:
    held = {
        **DRAFT,
        "items": [
            {
                "id": "held",
                "policy": {"audience": ["agency-b"], "release": "ON_REQUEST", "tlp": "AMBER"},
                "note": {"text": "y", "language": "en"},
            }
        ],
    }
    with client_for(isolated_exchange, "agency-a", own_hub) as a:
        receipt = a.publish(Draft.from_dict(held))
    with own_hub.db.write() as connection:  # type: ignore[attr-defined]
        # The hub points at another leaf than the one that logged this manifest.
        connection.execute(update(alerts).values(log_index=alerts.c.log_index + 1))
    with client_for(isolated_exchange, "agency-b", own_hub) as b, pytest.raises(VerificationError):
        b.request_release(receipt.alert_id, "held", reason="needed")
    with own_hub.db.read() as connection:  # type: ignore[attr-defined]
        assert connection.execute(select(func.count()).select_from(release_requests)).scalar_one() == 0
