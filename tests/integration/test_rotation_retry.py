"""A rotation whose answer is lost after the hub took the statement (SQLite and PostgreSQL).

The hub commits statement 2 but the answer never reaches the agency: the profile must stay as it
was (statement 1, old keys, the rotation pending), and the next run must send the same statement,
be answered alike and finish, leaving one statement 2 in the hub and one log entry for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from exchange.config.profile import load_profile
from exchange.crypto.dsse import Envelope
from exchange.errors import ConfigurationError, UnavailableError
from exchange.hub.app import Hub
from exchange.hub.config import HubConfig
from exchange.hub.init import init_exchange
from exchange.statements.agency_keys import parse_unverified
from exchange.store.schema import agency_keys, log_entries
from exchange_client import Profile
from exchange_client._internal import key_rotation
from exchange_client._internal.key_rotation import (
    RotationUnfinishedError,
    publish_with_transport,
    rotate_keys,
)
from tests.conftest import FrozenClock


@pytest.fixture
def exchange(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> Iterator[tuple[Path, Hub, int]]:
    directory = tmp_path / "exchange"
    init_exchange(directory, ["agency-a", "agency-b"], listen="127.0.0.1:50051", now=clock.now)
    config = HubConfig.from_file(directory / "hub.toml").with_overrides(
        database_url=database_url, listen="127.0.0.1:0"
    )
    hub = Hub(dataclasses.replace(config, log_state_file=tmp_path / "log-state.json"), clock=clock)
    hub.prepare()
    port = hub.start()
    try:
        yield directory, hub, port
    finally:
        hub.stop(grace=0)


def statements_held(hub: Hub, agency_id: str) -> int:
    with hub.db.read() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(agency_keys).where(
                    agency_keys.c.agency_id == agency_id
                )
            ).scalar_one()
        )


def key_entries(hub: Hub) -> int:
    with hub.db.read() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(log_entries).where(
                    log_entries.c.entry_type == "agency_keys"
                )
            ).scalar_one()
        )


def test_a_retry_after_a_lost_answer_finishes_the_rotation(
    exchange: tuple[Path, Hub, int], clock: FrozenClock
) -> None:
    directory, hub, port = exchange
    profile_dir = directory / "agencies" / "agency-a"
    clock.advance(seconds=1)
    sent: list[bytes] = []

    def publish(profile: Profile, envelope: Envelope) -> int:
        target = dataclasses.replace(profile, hub_address=f"127.0.0.1:{port}")
        sent.append(envelope.payload)
        return publish_with_transport(target, envelope)

    def answer_lost(profile: Profile, envelope: Envelope) -> int:
        publish(profile, envelope)  # the hub commits it...
        raise UnavailableError("connection reset")  # ...and the answer never arrives

    before = load_profile(profile_dir)
    with pytest.raises(RotationUnfinishedError) as unfinished:
        rotate_keys(profile_dir, ["encryption", "signing"], publish=answer_lost, now=clock.now)
    assert "run `exchange keys rotate` again" in unfinished.value.message
    assert statements_held(hub, "agency-a") == 2
    still = load_profile(profile_dir)
    assert still.keys_envelope == before.keys_envelope
    assert still.encryption_key.public_key == before.encryption_key.public_key
    assert still.signing_key.public_key == before.signing_key.public_key
    assert (profile_dir / "rotation").is_dir()

    result = rotate_keys(profile_dir, ["witness"], publish=publish, now=clock.now)
    assert result.resumed and result.kinds == ("signing", "encryption")
    assert sent[0] == sent[1]  # the same statement, answered alike
    after = load_profile(profile_dir)
    assert parse_unverified(after.keys_envelope).key_number == 2
    assert after.keys_envelope.payload == sent[0]
    assert after.encryption_key.public_key != before.encryption_key.public_key
    assert before.encryption_key.public_key.key_id in after.retired_encryption_keys
    assert not (profile_dir / "rotation").exists()
    assert statements_held(hub, "agency-a") == 2
    assert key_entries(hub) == 1


def test_a_crash_while_the_files_are_switched_is_finished_by_the_next_run(
    exchange: tuple[Path, Hub, int], clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The crash is injected in the one step that cannot be interrupted from outside at a chosen
    # point: the switch stops after its first file, as a killed process would.
    directory, hub, port = exchange
    profile_dir = directory / "agencies" / "agency-b"
    clock.advance(seconds=1)

    def publish(profile: Profile, envelope: Envelope) -> int:
        return publish_with_transport(
            dataclasses.replace(profile, hub_address=f"127.0.0.1:{port}"), envelope
        )

    def crash_after_one_file(pending: Path, plan: object) -> None:
        files = plan.files  # type: ignore[attr-defined]
        name, target = next(iter(files.items()))
        Path(target).write_bytes((pending / name).read_bytes())  # the first rename, then a crash
        raise KeyboardInterrupt

    before = load_profile(profile_dir)
    with monkeypatch.context() as patched:
        patched.setattr(key_rotation, "_move", crash_after_one_file)
        with pytest.raises(KeyboardInterrupt):
            rotate_keys(profile_dir, ["signing"], publish=publish, now=clock.now)
    assert statements_held(hub, "agency-b") == 2
    with pytest.raises(ConfigurationError):  # half switched: its key and certificate differ
        load_profile(profile_dir)

    result = rotate_keys(profile_dir, ["tls"], publish=publish, now=clock.now)
    assert result.resumed and result.kinds == ("signing",) and result.key_number == 2
    after = load_profile(profile_dir)
    assert after.signing_key.public_key != before.signing_key.public_key
    assert parse_unverified(after.keys_envelope).key_number == 2
    assert statements_held(hub, "agency-b") == 2
