"""No loss across crashes, with real processes: ``exchange-hub serve`` killed with SIGKILL under
1,000 publishes from four client processes, PostgreSQL stopped (fast shutdown) and started under
load, and two replicas on one database with a subscriber switched from one to the other.

Each test prints its figures (publishes tried, acknowledged, found in the recipient's feed,
duplicated); docs/OPERATIONS.md records a run's.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from exchange.hub.config import HubConfig
from exchange.hub.init import init_exchange
from tests.conftest import _postgres_database
from tests.crash.harness import (
    AGENCIES,
    AUDITOR,
    RECIPIENT,
    Figures,
    HubProcess,
    Publishers,
    check_no_loss,
    client_for,
    exchange_cli,
    free_port,
    private_cluster,
    read_feed,
    report,
    start_publishers,
    wait_for,
)

pytestmark = [pytest.mark.crash, pytest.mark.timeout(900)]

PUBLISHES_PER_PROCESS = 250  # four processes: 1,000 publishes


@pytest.fixture
def exchange_dir(tmp_path: Path) -> Path:
    """A fresh exchange: four publishers, a recipient and an auditor, heartbeats every second."""
    directory = tmp_path / "exchange"
    init_exchange(directory, list(AGENCIES), listen=f"127.0.0.1:{free_port()}")
    config_path = directory / "hub.toml"
    config = dataclasses.replace(
        HubConfig.from_file(config_path), heartbeat_interval_seconds=1.0,
        checkpoint_interval_seconds=1.0,
    )
    config_path.write_text(config.to_toml())
    return directory


def save_checkpoint(exchange_dir: Path, hub: str, tmp_path: Path) -> Path:
    """The auditor verifies and keeps the log's checkpoint now, and exports it as a note."""
    done = exchange_cli(exchange_dir, AUDITOR, hub, "audit", "checkpoint", "--raw")
    assert done.returncode == 0, done.stderr
    note = tmp_path / f"checkpoint-{time.monotonic_ns()}.note"
    note.write_text(done.stdout)
    return note


def audit_passes(exchange_dir: Path, hub: str, *notes: Path) -> None:
    """``exchange audit verify`` replays the log from the auditor's saved checkpoint; each
    note saved earlier is proven consistent with the log as it is now."""
    verify = exchange_cli(exchange_dir, AUDITOR, hub, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    for note in notes:
        compare = exchange_cli(exchange_dir, AUDITOR, hub, "audit", "compare", str(note))
        assert compare.returncode == 0, compare.stdout + compare.stderr


def recipient_figures(
    exchange_dir: Path, hub: str, publishers: Publishers, tmp_path: Path, scenario: str
) -> Figures:
    """The no-loss check over the recipient's whole feed, its figures reported; every publish
    tried was acknowledged in the end (the library's outbox resends what a crash cut off)."""
    with client_for(exchange_dir, RECIPIENT, hub, tmp_path / "recipient") as client:
        figures = check_no_loss(publishers, read_feed(client))
    report(figures.report(scenario))
    assert figures.acknowledged == figures.tried
    return figures


def test_kill_9_during_a_thousand_publishes_loses_nothing(
    exchange_dir: Path, database_url: str, tmp_path: Path
) -> None:
    hub = HubProcess(exchange_dir / "hub.toml", database_url=database_url, port=free_port(),
                     log=tmp_path / "hub.log")
    hub.start()
    publishers = start_publishers(exchange_dir, [hub.address], PUBLISHES_PER_PROCESS, tmp_path)
    try:
        wait_for(lambda: len(publishers.acknowledged()) >= 150, timeout=600,
                 what="150 acknowledged publishes")
        before = save_checkpoint(exchange_dir, hub.address, tmp_path)
        wait_for(lambda: len(publishers.acknowledged()) >= 400, timeout=600,
                 what="400 acknowledged publishes")
        hub.kill()
        acknowledged_at_kill = len(publishers.acknowledged())
        hub.start()
        publishers.wait()

        scenario = (f"kill -9 ({database_url.split(':')[0].split('+')[0]}, killed after "
                    f"{acknowledged_at_kill} acknowledged)")
        figures = recipient_figures(exchange_dir, hub.address, publishers, tmp_path, scenario)
        assert figures.tried == 4 * PUBLISHES_PER_PROCESS
        audit_passes(exchange_dir, hub.address, before)
        publishes = [line for line in hub.log_lines() if line.get("method") ==
                     "AlertService/Publish"]
        assert len(publishes) >= figures.tried  # both hub processes logged every call
        assert {"time", "level", "event", "agency", "status", "duration_ms", "request_id"} <= set(
            publishes[0])
    finally:
        publishers.kill()
        hub.stop()


@pytest.mark.postgres
def test_postgresql_restarted_under_load_the_hub_recovers_by_itself(
    exchange_dir: Path, tmp_path: Path
) -> None:
    with private_cluster() as cluster:
        hub = HubProcess(exchange_dir / "hub.toml", database_url=cluster.url, port=free_port(),
                         log=tmp_path / "hub.log")
        hub.start()
        publishers = start_publishers(exchange_dir, [hub.address], 100, tmp_path)
        try:
            wait_for(lambda: len(publishers.acknowledged()) >= 60, timeout=600,
                     what="60 acknowledged publishes")
            before = save_checkpoint(exchange_dir, hub.address, tmp_path)
            cluster.stop("fast")
            wait_for(lambda: hub.health() == "NOT_SERVING", timeout=30,
                     what="the hub to report NOT_SERVING")
            cluster.start()
            wait_for(lambda: hub.health() == "SERVING", timeout=60,
                     what="the hub to report SERVING again")
            publishers.wait()

            assert hub.process is not None and hub.process.poll() is None and hub.starts == 1
            figures = recipient_figures(exchange_dir, hub.address, publishers, tmp_path,
                                        "PostgreSQL fast shutdown and start under load")
            assert figures.tried == 400
            audit_passes(exchange_dir, hub.address, before)
        finally:
            publishers.kill()
            hub.stop()


@pytest.mark.postgres
def test_two_replicas_one_log_and_a_subscriber_switched_mid_stream(
    exchange_dir: Path, tmp_path: Path
) -> None:
    databases = _postgres_database()
    url = next(databases)
    first = HubProcess(exchange_dir / "hub.toml", database_url=url, port=free_port(),
                       log=tmp_path / "hub-1.log")
    second = HubProcess(exchange_dir / "hub.toml", database_url=url, port=free_port(),
                        log=tmp_path / "hub-2.log")
    first.start()
    second.start()
    publishers = start_publishers(exchange_dir, [first.address, second.address], 50, tmp_path)
    received: list[int] = []
    try:
        with (
            client_for(exchange_dir, RECIPIENT, first.address, tmp_path / "recipient") as c,
            c.subscribe(heartbeats=True) as feed,
        ):
            for event in feed:
                if not event.is_heartbeat:
                    received.append(event.sequence)
                if len(received) >= 60:
                    break  # leaving the block saves the cursor: the switch is clean
        note_from_first = save_checkpoint(exchange_dir, first.address, tmp_path)
        publishers.wait()
        total = len(set(publishers.acknowledged()))
        deadline = time.monotonic() + 300
        with client_for(exchange_dir, RECIPIENT, second.address, tmp_path / "recipient") as c:
            with c.subscribe(heartbeats=True) as feed:
                for event in feed:
                    if not event.is_heartbeat:
                        received.append(event.sequence)
                    if len(received) >= total or time.monotonic() > deadline:
                        break
            feed_events = read_feed(c)

        assert received == list(range(1, total + 1)), "the feed is not one continuous sequence"
        figures = check_no_loss(publishers, feed_events)
        report(figures.report("two replicas, subscriber switched after 60 events"))
        assert figures.acknowledged == figures.tried == 200
        audit_passes(exchange_dir, second.address, note_from_first)
        audit_passes(exchange_dir, first.address, save_checkpoint(
            exchange_dir, second.address, tmp_path))
    finally:
        publishers.kill()
        first.stop()
        second.stop()
        databases.close()
