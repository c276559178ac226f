"""What a new operator meets first: the `make demo` transcript and the drafts in examples/.

The transcript shows each command with its real output (a `--json` command is followed by JSON),
marks the refusals it expects, and explains the inbox's numbers.  The examples address agencies
that the README's `exchange-hub init` creates, and publish through a hub made that way.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.suffix in (".json", ".yaml"))


@pytest.fixture(scope="module")
def transcript() -> list[str]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        check=False, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    return result.stdout.splitlines()


@pytest.mark.slow
def test_every_json_command_shown_is_followed_by_its_real_json_output(
    transcript: list[str],
) -> None:
    shown = [i for i, line in enumerate(transcript) if line.startswith("$ ")]
    json_commands = [i for i in shown if transcript[i].endswith("--json")]
    assert json_commands, "the demo shows no --json command"
    for index in json_commands:
        output = transcript[index + 1].strip()
        assert isinstance(json.loads(output), (dict, list)), transcript[index]


def test_the_demos_own_checks_are_marked_and_never_pass_for_output(transcript: list[str]) -> None:
    checks = [line for line in transcript if line.startswith("  # ")]
    assert checks
    assert all("--json" in line for line in checks)  # each says which command it read


def test_agency_cs_refusals_are_marked_as_expected(transcript: list[str]) -> None:
    refused = [
        i for i, line in enumerate(transcript)
        if line.startswith("$ ") and "agency-c" in line and ("show" in line or "request" in line)
    ]
    assert len(refused) >= 2
    for index in refused:
        following = transcript[index + 1 : index + 4]
        assert any("(refused, as expected: exit 1)" in line for line in following), following


def test_the_inbox_legend_says_what_its_numbers_count(transcript: list[str]) -> None:
    legend = [line for line in transcript if "items readable:" in line]
    assert legend
    assert "can open now" in legend[0] and "of all its items" in legend[0]


def readme_init_command() -> list[str]:
    """The `exchange-hub init` command of the README's "Setting up an exchange" section."""
    text = (ROOT / "README.md").read_text().replace("\\\n", " ")
    [line] = [line for line in text.splitlines() if line.startswith("exchange-hub init ")]
    return shlex.split(line)


@pytest.fixture
def readme_exchange(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An exchange made by the README's init command, and a hub serving it."""
    command = readme_init_command()
    directory = tmp_path / "exchange"
    command[command.index("./exchange")] = str(directory)
    subprocess.run([str(BIN / command[0]), *command[1:]], check=True, capture_output=True)
    hub = subprocess.Popen(
        [str(BIN / "exchange-hub"), "serve", "--config", str(directory / "hub.toml"),
         "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert hub.stdout is not None
    line = hub.stdout.readline().strip()
    assert line.startswith("listening on "), line
    try:
        yield directory, line.removeprefix("listening on ")
    finally:
        hub.terminate()
        hub.wait(timeout=60)


def audiences(example: Path) -> set[str]:
    return set(re.findall(r"agency-[a-z]", example.read_text()))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_each_example_publishes_through_an_exchange_set_up_as_the_readme_says(
    readme_exchange: tuple[Path, str], example: Path
) -> None:
    directory, address = readme_exchange
    created = {p.name for p in (directory / "agencies").iterdir()}
    assert audiences(example) <= created
    publisher = "agency-b" if "watchlist" in example.name else "agency-a"
    result = subprocess.run(
        [str(BIN / "exchange"), "--profile", str(directory / "agencies" / publisher), "--hub",
         address, "publish", str(example), "--json", "--retry-seconds", "0"],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["version"] == 1
