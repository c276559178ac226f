"""``Client`` behaviour that needs no hub: the outbox is written before the first send."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from exchange.statements.codec import parse_canonical
from exchange.v1 import alerts_pb2, statements_pb2
from exchange_client import Client, Draft, InvalidInputError, Profile, UnavailableError
from tests.conftest import FakeTime

OWN_EYES_ONLY = {
    "kind": "GENERAL",
    "title": "kept to ourselves",
    "items": [
        {
            "id": "note-1",
            "policy": {"audience": [], "release": "IMMEDIATE", "tlp": "RED"},
            "note": {"text": "for the originator only", "language": "en"},
        }
    ],
}


@pytest.fixture
def profile(exchange_dir: Path, tmp_path: Path) -> Profile:
    loaded = Profile.load(exchange_dir / "agencies" / "agency-a")
    return dataclasses.replace(loaded, state_dir=tmp_path / "state")


def test_a_sealed_alert_is_kept_and_resent_with_backoff_for_30_seconds_while_the_hub_is_down(
    profile: Profile, dead_hub: str
) -> None:
    time = FakeTime()
    with Client(profile, hub=dead_hub, timeout=2) as client:
        client._sleep, client._monotonic = time.sleep, time.monotonic
        with pytest.raises(UnavailableError) as raised:
            client.publish(Draft.from_dict(OWN_EYES_ONLY))
    assert time.now == pytest.approx(30)
    assert time.sleeps[0] <= 0.5
    assert max(time.sleeps) <= 5  # capped: the hub is tried at least every 5 s
    assert f"Tried {len(time.sleeps) + 1} times in 30 s" in raised.value.message
    [kept] = (profile.state_dir / "outbox").iterdir()
    assert str(kept) in raised.value.message
    assert "exchange resend" in raised.value.message
    request = parse_canonical(alerts_pb2.PublishRequest, kept.read_bytes(), what="outbox")
    manifest = statements_pb2.AlertManifest.FromString(request.manifest.payload)
    assert kept.name == f"{manifest.alert_id}.v1.pb"
    assert manifest.originator == "agency-a"
    assert len(request.items) == 2  # the encrypted summary and the note
    assert {grant.recipient for grant in request.grants} == {"agency-a"}


@pytest.mark.parametrize("where", ["client", "call"])
def test_retry_seconds_bounds_the_resending(profile: Profile, dead_hub: str, where: str) -> None:
    time = FakeTime()
    budget = {"retry_seconds": 3.0}
    with Client(profile, hub=dead_hub, **(budget if where == "client" else {})) as client:
        client._sleep, client._monotonic = time.sleep, time.monotonic
        with pytest.raises(UnavailableError):
            client.publish(Draft.from_dict(OWN_EYES_ONLY), **(budget if where == "call" else {}))
    assert time.now == pytest.approx(3)


def test_no_retry_seconds_means_one_attempt(profile: Profile, dead_hub: str) -> None:
    time = FakeTime()
    with Client(profile, hub=dead_hub) as client:
        client._sleep, client._monotonic = time.sleep, time.monotonic
        with pytest.raises(UnavailableError, match="Tried 1 time in 0 s"):
            client.publish(Draft.from_dict(OWN_EYES_ONLY), retry_seconds=0)
    assert time.sleeps == []


def test_a_negative_retry_budget_is_refused(profile: Profile, dead_hub: str) -> None:
    with Client(profile, hub=dead_hub) as client, pytest.raises(InvalidInputError):
        client.publish(Draft.from_dict(OWN_EYES_ONLY), retry_seconds=-1)
    assert not (profile.state_dir / "outbox").exists()


def test_superseding_needs_an_alert_id(profile: Profile, dead_hub: str) -> None:
    with Client(profile, hub=dead_hub) as client, pytest.raises(Exception) as raised:
        client.publish(Draft.from_dict(OWN_EYES_ONLY), supersedes="not-a-uuid")
    assert "is not an alert id" in str(raised.value)
    assert not (profile.state_dir / "outbox").exists()


def test_the_profile_names_the_hub_unless_overridden(profile: Profile) -> None:
    with Client(profile) as client:
        assert client.target == profile.hub_address
    with Client(profile, hub="127.0.0.1:1") as client:
        assert client.target == "127.0.0.1:1"


def test_the_partner_keys_are_asked_for_within_the_same_budget(
    profile: Profile, dead_hub: str
) -> None:
    shared: Any = copy.deepcopy(OWN_EYES_ONLY)
    shared["items"][0]["policy"]["audience"] = ["agency-b"]
    time = FakeTime()
    told: list[float] = []
    with Client(profile, hub=dead_hub, on_retry=lambda s, e: told.append(s)) as client:
        client._sleep, client._monotonic = time.sleep, time.monotonic
        with pytest.raises(UnavailableError):
            client.publish(Draft.from_dict(shared), retry_seconds=10)
    assert time.now == pytest.approx(10)  # the directory was asked again until the budget ended
    assert told == time.sleeps
    assert not (profile.state_dir / "outbox").exists()  # nothing was sealed without the keys
