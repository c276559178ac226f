"""Long-running clients ride out a hub restart: the real hub and CLI in subprocesses.

`exchange watch` says "reconnecting in N s" while the hub is away and resumes from its cursor;
`exchange publish` resends the same sealed bytes until the hub is back (within
``--retry-seconds``), and the alert is stored once.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

BIN = Path(sys.executable).parent
WAIT = 120.0
"""The longest any step may take before the test fails (never reached when things work)."""

NOTE = {
    "kind": "GENERAL",
    "title": "hub restart",
    "items": [
        {
            "id": "note",
            "policy": {"audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "GREEN"},
            "note": {"text": "sent across a restart", "language": "en"},
        }
    ],
}


class Lines:
    """The lines a subprocess writes to one stream, read as they come."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))

    def until(self, text: str) -> str:
        """The first line (from now on) containing ``text``."""
        while True:
            try:
                line = self._queue.get(timeout=WAIT)
            except queue.Empty:
                pytest.fail(f"no line with {text!r} within {WAIT} s; saw {self.seen}")
            self.seen.append(line)
            if text in line:
                return line


class Hub:
    def __init__(self, config: Path, listen: str) -> None:
        self.process = subprocess.Popen(
            [str(BIN / "exchange-hub"), "serve", "--config", str(config), "--listen", listen],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line.startswith("listening on "), line
        self.address = line.removeprefix("listening on ")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=WAIT)


@pytest.fixture
def exchange(tmp_path: Path) -> Path:
    directory = tmp_path / "exchange"
    subprocess.run(
        [str(BIN / "exchange-hub"), "init", str(directory), "--agency", "agency-a",
         "--agency", "agency-b"],
        check=True, capture_output=True,
    )
    return directory


@pytest.fixture
def hubs() -> Iterator[list[Hub]]:
    started: list[Hub] = []
    yield started
    for hub in started:
        hub.stop()


def exchange_command(exchange: Path, agency: str, address: str, *args: str) -> list[str]:
    return [str(BIN / "exchange"), "--profile", str(exchange / "agencies" / agency),
            "--hub", address, *args]


def test_watch_and_publish_ride_out_a_hub_restart(
    exchange: Path, tmp_path: Path, hubs: list[Hub]
) -> None:
    config = exchange / "hub.toml"
    hubs.append(Hub(config, "127.0.0.1:0"))
    address = hubs[0].address
    draft = tmp_path / "note.json"
    draft.write_text(json.dumps(NOTE))

    def publish(*extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            exchange_command(exchange, "agency-a", address, "publish", str(draft), *extra),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    watch = subprocess.Popen(
        exchange_command(exchange, "agency-b", address, "watch", "--count", "2", "--json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert watch.stdout is not None and watch.stderr is not None
        events, notices = Lines(watch.stdout), Lines(watch.stderr)
        first_publish = publish("--json")
        first_receipt = json.loads(first_publish.communicate(timeout=WAIT)[0])
        first_event = json.loads(events.until("ALERT_PUBLISHED"))
        assert first_event["alert_id"] == first_receipt["alert_id"]

        hubs[0].stop()
        notice = notices.until("reconnecting in")
        assert address in notice

        # A publish while the hub is down waits and resends; the hub comes back meanwhile.
        second_publish = publish("--retry-seconds", "60")
        assert second_publish.stderr is not None
        retries = Lines(second_publish.stderr)
        assert "resending in" in retries.until("resending in")
        hubs.append(Hub(config, address))

        output, _ = second_publish.communicate(timeout=WAIT)
        assert second_publish.returncode == 0, retries.seen
        assert "published" in output.lower() or "alert" in output.lower()
        second_event = json.loads(events.until("ALERT_PUBLISHED"))
        assert second_event["sequence"] == first_event["sequence"] + 1  # resumed, none twice
        assert second_event["alert_id"] != first_receipt["alert_id"]
        assert watch.wait(timeout=WAIT) == 0
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()

    inbox = subprocess.run(
        exchange_command(exchange, "agency-b", address, "inbox", "--json"),
        check=True, capture_output=True, text=True, timeout=WAIT,
    )
    listed = json.loads(inbox.stdout)
    assert len(listed) == 2  # the resent publish was stored once
    assert second_event["alert_id"] in {entry["alert_id"] for entry in listed}
