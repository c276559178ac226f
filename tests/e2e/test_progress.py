"""Progress on long work: a bar on a terminal's stderr, never on stdout, never with --json.

The CLI runs with its stderr on a pseudo-terminal (as an operator's shell has it) and its stdout
on a pipe; the bar appears once the work has lasted a second.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
WAIT = 120.0

NOTE = {
    "kind": "GENERAL",
    "title": "progress",
    "items": [{"id": "n", "policy": {"audience": [], "release": "IMMEDIATE", "tlp": "RED"},
               "note": {"text": "x", "language": "en"}}],
}


class Terminal:
    """A pseudo-terminal for a child's stderr, and everything written to it."""

    def __init__(self) -> None:
        self.controller, self.child_end = pty.openpty()
        self._text = ""
        self._changed = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while True:
            try:
                chunk = os.read(self.controller, 4096)
            except OSError:  # the child end closed
                return
            if not chunk:
                return
            with self._changed:
                self._text += chunk.decode("utf-8", "replace")
                self._changed.notify_all()

    def wait_for(self, text: str) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: text in self._text, timeout=WAIT):
                pytest.fail(f"{text!r} never appeared on the terminal: {self._text!r}")

    @property
    def text(self) -> str:
        with self._changed:
            return self._text


@pytest.fixture
def profile(exchange_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "agency-a"
    shutil.copytree(exchange_dir / "agencies" / "agency-a", copy)
    return copy


def publish_on_a_terminal(
    profile: Path, dead_hub: str, draft: Path, *extra: str
) -> tuple[subprocess.Popen[str], Terminal]:
    terminal = Terminal()
    process = subprocess.Popen(
        [str(BIN / "exchange"), "--profile", str(profile), "--hub", dead_hub, "publish",
         str(draft), "--retry-seconds", "4", *extra],
        stdout=subprocess.PIPE, stderr=terminal.child_end, text=True,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "120"},
    )
    os.close(terminal.child_end)
    return process, terminal


def test_work_over_a_second_shows_a_bar_on_the_terminal_and_nothing_on_stdout(
    profile: Path, dead_hub: str, tmp_path: Path
) -> None:
    draft = tmp_path / "note.json"
    draft.write_text(json.dumps(NOTE))
    process, terminal = publish_on_a_terminal(profile, dead_hub, draft)
    terminal.wait_for("publishing 1 item")
    stdout, _ = process.communicate(timeout=WAIT)
    assert process.returncode == 1
    assert stdout == ""
    assert "resending in" in terminal.text


def test_with_json_there_is_no_bar(profile: Path, dead_hub: str, tmp_path: Path) -> None:
    draft = tmp_path / "note.json"
    draft.write_text(json.dumps(NOTE))
    process, terminal = publish_on_a_terminal(profile, dead_hub, draft, "--json")
    stdout, _ = process.communicate(timeout=WAIT)
    assert process.returncode == 1
    assert stdout == ""
    assert "publishing" not in terminal.text
    error = json.loads(terminal.text.strip())  # stderr holds the error object alone
    assert error["error"] == "UnavailableError"


def test_off_a_terminal_there_is_no_bar(profile: Path, dead_hub: str, tmp_path: Path) -> None:
    draft = tmp_path / "note.json"
    draft.write_text(json.dumps(NOTE))
    result = subprocess.run(
        [str(BIN / "exchange"), "--profile", str(profile), "--hub", dead_hub, "publish",
         str(draft), "--retry-seconds", "2"],
        check=False, capture_output=True, text=True, timeout=WAIT,
    )
    assert result.returncode == 1
    assert "publishing 1 item" not in result.stderr
    assert "resending in" in result.stderr  # the notices still say what is happening


def test_watch_count_shows_how_many_events_have_come(
    exchange_dir: Path, tmp_path: Path
) -> None:
    hub = subprocess.Popen(
        [str(BIN / "exchange-hub"), "serve", "--config", str(exchange_dir / "hub.toml"),
         "--listen", "127.0.0.1:0", "--database", f"sqlite:///{tmp_path / 'hub.db'}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert hub.stdout is not None
        address = hub.stdout.readline().strip().removeprefix("listening on ")
        profiles = {}
        for agency in ("agency-a", "agency-b"):
            profiles[agency] = tmp_path / agency
            shutil.copytree(exchange_dir / "agencies" / agency, profiles[agency])
        draft = tmp_path / "shared.json"
        shared = json.loads(json.dumps(NOTE))
        shared["items"][0]["policy"]["audience"] = ["agency-b"]
        draft.write_text(json.dumps(shared))

        def publish() -> None:
            subprocess.run(
                [str(BIN / "exchange"), "--profile", str(profiles["agency-a"]), "--hub", address,
                 "publish", str(draft), "--json"],
                check=True, capture_output=True, timeout=WAIT,
            )

        terminal = Terminal()
        watch = subprocess.Popen(
            [str(BIN / "exchange"), "--profile", str(profiles["agency-b"]), "--hub", address,
             "watch", "--count", "2"],
            stdout=subprocess.PIPE, stderr=terminal.child_end, text=True,
            env={**os.environ, "TERM": "xterm", "COLUMNS": "120"},
        )
        os.close(terminal.child_end)
        publish()
        terminal.wait_for("1/2")  # one event of two, while watch waits for the next
        assert "waiting for 2 events" in terminal.text
        publish()
        stdout, _ = watch.communicate(timeout=WAIT)
        assert watch.returncode == 0
        assert stdout.count("ALERT_PUBLISHED") == 2
        assert "waiting for" not in stdout
    finally:
        hub.terminate()
        hub.wait(timeout=60)
