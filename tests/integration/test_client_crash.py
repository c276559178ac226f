"""A client process killed (SIGKILL) at random points while it publishes or reads its feed, then
started again on the same profile, against a real hub over mTLS (issue 12, 3).

After each kill the journal it left gets a torn last record (as after a crash of the machine in
the middle of an append). What must hold after every restart: nothing the hub stored is lost from the outbox before its
receipt is had (every alert the hub holds from the publisher was acknowledged to it, at once or
by the resend of its outbox after a restart); no alert is sent twice as two alerts; the trusted
checkpoint never goes back below one a receipt was proven under; a feed reader's cursor never
skips an event it had not processed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exchange_client import Client, Draft, Profile
from exchange_client._internal.state import journal_record
from tests.conftest import fresh_exchange, wall_clock_hub

ROUNDS = 6
SEED = 20261207
TORN_ALERT = "00000000-0000-4000-8000-000000000000"

PUBLISHER = """
import dataclasses, itertools, json, os, sys
from pathlib import Path
from exchange_client import Client, Draft, Profile

profile_dir, state_dir, hub, log_path, round_ = sys.argv[1:6]
profile = dataclasses.replace(Profile.load(Path(profile_dir)), state_dir=Path(state_dir))

def log(out, **fields):
    out.write(json.dumps(fields) + "\\n")
    out.flush()
    os.fsync(out.fileno())

with open(log_path, "a", encoding="utf-8") as out, Client(profile, hub=hub) as client:
    trusted = client.auditor.trusted
    log(out, start=round_, size=0 if trusted is None else trusted.checkpoint.size)
    for receipt in client.flush_outbox():  # what the last kill left
        log(out, resent=receipt.alert_id)
    print("publishing", flush=True)
    for index in itertools.count():
        tag = f"{round_}-{index}"
        log(out, tried=tag)
        receipt = client.publish(Draft.from_dict({"kind": "GENERAL", "title": tag, "items": [
            {"id": "n", "policy": {"audience": ["agency-b"], "release": "IMMEDIATE",
             "tlp": "AMBER"}, "note": {"text": tag, "language": "en"}}]}))
        log(out, acknowledged=receipt.alert_id, tag=tag,
            size=client.auditor.trusted.checkpoint.size)
"""

READER = """
import dataclasses, json, os, sys
from pathlib import Path
from exchange_client import Client, Profile

profile_dir, state_dir, hub, log_path = sys.argv[1:5]
profile = dataclasses.replace(Profile.load(Path(profile_dir)), state_dir=Path(state_dir))
with open(log_path, "a", encoding="utf-8") as out, Client(profile, hub=hub) as client:
    out.write(json.dumps({"start": client.cursor()}) + "\\n")
    out.flush()
    print("reading", flush=True)
    with client.subscribe() as feed:
        for event in feed:
            out.write(json.dumps({"processed": event.sequence}) + "\\n")
            out.flush()
            os.fsync(out.fileno())
"""


def draft(tag: str) -> Draft:
    return Draft.from_dict(
        {
            "kind": "GENERAL",
            "title": tag,
            "items": [
                {
                    "id": "n",
                    "policy": {"audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "AMBER"},
                    "note": {"text": tag, "language": "en"},
                }
            ],
        }
    )


@pytest.fixture
def exchange_dir(tmp_path: Path) -> Path:
    return fresh_exchange(tmp_path)


@pytest.fixture
def hub(exchange_dir: Path, tmp_path: Path) -> Iterator[object]:
    # The client's state is under test, not the store: one database (SQLite) is enough.
    with wall_clock_hub(exchange_dir, tmp_path, heartbeat_seconds=0.2) as hub:
        yield hub


def run_then_kill(script: str, args: list[str], *, ready: str, alive_for: float) -> None:
    """Start ``script``, let it work ``alive_for`` seconds once it says ``ready``, SIGKILL it."""
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != ready:
        process.kill()
        raise AssertionError(f"the client process failed: {process.communicate()[1]}")
    time.sleep(alive_for)  # a random point in its work, not a wait for an outcome
    os.kill(process.pid, signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, stderr


def log_lines(path: Path) -> list[dict[str, Any]]:
    # The last line may be cut by the kill: the log is the test's, not the library's.
    lines = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            continue
    return lines


def tried_by_round(lines: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The tags each round tried, in order (a tag is ``round-index``)."""
    rounds: dict[str, list[str]] = {}
    for line in lines:
        if "tried" in line:
            rounds.setdefault(line["tried"].split("-")[0], []).append(line["tried"])
    return rounds


def alerts_at_hub(exchange_dir: Path, hub: object) -> list[str]:
    """The alert ids of every publication the recipient's feed shows, in feed order."""
    profile = Profile.load(exchange_dir / "agencies" / "agency-b")
    ids = []
    with Client(profile, hub=f"127.0.0.1:{hub.port}") as reader:  # type: ignore[attr-defined]
        after = 0
        while events := reader.events(after=after, limit=500):
            ids += [e.alert_id for e in events if e.kind == "ALERT_PUBLISHED"]
            after = events[-1].sequence
    return ids


@pytest.mark.slow
def test_a_publisher_killed_at_random_loses_nothing_and_its_checkpoint_never_goes_back(
    exchange_dir: Path, hub: object, tmp_path: Path
) -> None:
    target = f"127.0.0.1:{hub.port}"  # type: ignore[attr-defined]
    state_dir, log = tmp_path / "publisher-state", tmp_path / "publisher.log"
    profile_dir = exchange_dir / "agencies" / "agency-a"
    chance = random.Random(SEED)
    for round_ in range(ROUNDS):
        args = [str(profile_dir), str(state_dir), target, str(log), str(round_)]
        run_then_kill(PUBLISHER, args, ready="publishing", alive_for=chance.uniform(0.3, 2.0))
        # As if the machine had crashed in the middle of one more append: a torn record of a
        # request that was never sent, which the next start must leave out.
        for left in (state_dir / "journal").glob("*.wal"):
            torn = journal_record(
                {"kind": "outbox", "alert_id": TORN_ALERT, "version": 1, "request": "AAAA"}
            )
            with left.open("ab") as journal:
                journal.write(torn[: chance.randrange(1, len(torn))])
    # A last, clean run resends what the last kill left.
    profile = dataclasses.replace(Profile.load(profile_dir), state_dir=state_dir)
    with Client(profile, hub=target) as last:
        resent = [r.alert_id for r in last.flush_outbox()]
        assert last.flush_outbox() == []
    lines = log_lines(log)

    acknowledged = {line["acknowledged"] for line in lines if "acknowledged" in line}
    resent += [line["resent"] for line in lines if "resent" in line]
    at_hub = alerts_at_hub(exchange_dir, hub)
    assert acknowledged, "the publisher got receipts before it was killed"
    # No alert sent twice as two alerts, none acknowledged that the hub does not hold.
    assert len(at_hub) == len(set(at_hub)) and TORN_ALERT not in at_hub
    assert acknowledged | set(resent) <= set(at_hub)
    # None the hub holds without its receipt at the client -- except that a kill can fall
    # between the library recording a receipt and this script logging it: such an alert must be
    # the last one its round tried.
    tried = [line["tried"] for line in lines if "tried" in line]
    last_tried = {tags[-1] for tags in tried_by_round(lines).values()}
    unlogged = set(at_hub) - acknowledged - set(resent)
    assert len(unlogged) <= ROUNDS
    with Client(Profile.load(exchange_dir / "agencies" / "agency-b"), hub=target) as reader:
        for alert_id in unlogged:
            title = reader.open(alert_id).title
            assert title in last_tried, f"{alert_id} ({title}) is at the hub, never acknowledged"
    assert len(at_hub) <= len(tried) <= len(at_hub) + ROUNDS  # at most one cut off per kill
    # The trusted checkpoint after each restart is at least the largest one a receipt was
    # proven under before the kill.
    proven = 0
    for line in lines:
        if "start" in line:
            assert line["size"] >= proven, f"round {line['start']}: the checkpoint went back"
        elif "acknowledged" in line:
            proven = max(proven, line["size"])
    assert sum(1 for line in lines if "start" in line) == ROUNDS


@pytest.mark.slow
def test_a_feed_reader_killed_at_random_resumes_without_skipping_an_event(
    exchange_dir: Path, hub: object, tmp_path: Path
) -> None:
    target = f"127.0.0.1:{hub.port}"  # type: ignore[attr-defined]
    state_dir, log = tmp_path / "reader-state", tmp_path / "reader.log"
    profile_dir = exchange_dir / "agencies" / "agency-b"
    chance = random.Random(SEED)
    publisher = Client(Profile.load(exchange_dir / "agencies" / "agency-a"), hub=target)
    with publisher:
        for round_ in range(ROUNDS):
            for index in range(chance.randrange(5, 40)):
                publisher.publish(draft(f"{round_}-{index}"))
            args = [str(profile_dir), str(state_dir), target, str(log)]
            run_then_kill(READER, args, ready="reading", alive_for=chance.uniform(0.2, 1.5))
        total = len(alerts_at_hub(exchange_dir, hub))
    lines = log_lines(log)
    processed = 0
    for line in lines:
        if "start" in line:
            # Resumes at or before what was processed: never after (an event skipped).
            assert line["start"] <= processed, "the cursor is ahead of what was processed"
            expected = line["start"] + 1
        else:
            assert line["processed"] == expected, "an event was skipped or came twice in a run"
            expected += 1
            processed = max(processed, line["processed"])
    assert 0 < processed <= total
