"""Conventions both command lines follow, run as an operator's shell runs them (subprocesses).

``--version``, shell completion, a pipe closed early (``| head``), no wrapping off a terminal,
errors as JSON on stderr with ``--json``, and long lists of validation errors cut at 20.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
PROGRAMS = ("exchange", "exchange-hub")
ALERT_ID = "0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10"


def run(
    *args: str, env: dict[str, str] | None = None, stdout: int | None = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        check=False,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        env={**environment, **(env or {})},
    )


@pytest.fixture(scope="module")
def exchange_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("conventions") / "exchange"
    result = run("exchange-hub", "init", str(directory), "--agency", "agency-a",
                 "--agency", "agency-b")
    assert result.returncode == 0, result.stderr
    return directory


@pytest.fixture
def profile(exchange_copy: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "agency-a"
    shutil.copytree(exchange_copy / "agencies" / "agency-a", copy)
    return copy


@pytest.mark.parametrize("program", PROGRAMS)
def test_version(program: str) -> None:
    from exchange.cli_conventions import package_version

    result = run(program, "--version")
    assert result.returncode == 0
    assert result.stdout == f"{program} {package_version()}\n"


@pytest.mark.parametrize("program", PROGRAMS)
def test_show_completion_prints_a_script_for_the_shell(program: str) -> None:
    # --show-completion takes no value: it names the shell it was started from, so start it
    # from bash (whatever shell runs the tests).
    result = subprocess.run(
        ["bash", "-c", '"$0" --show-completion; exit $?', str(BIN / program)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    variable = "_" + program.upper().replace("-", "_") + "_COMPLETE"
    assert variable in result.stdout
    assert "complete " in result.stdout


@pytest.mark.parametrize(
    ("program", "typed", "expected"),
    [("exchange", "pub", "publish"), ("exchange", "watchl", "watchlist"),
     ("exchange-hub", "ag", "agency"), ("exchange-hub", "checkp", "checkpoint-key")],
)
def test_completion_completes_commands(program: str, typed: str, expected: str) -> None:
    variable = "_" + program.upper().replace("-", "_") + "_COMPLETE"
    result = run(program, env={variable: "complete_bash", "COMP_WORDS": f"{program} {typed}",
                               "COMP_CWORD": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [expected]


@pytest.mark.parametrize(
    "command",
    [
        ("exchange", "watchlist", "show"),
        ("exchange", "watchlist", "show", "--json"),
        ("exchange", "--help"),
        ("exchange-hub", "--help"),
    ],
    ids=lambda c: " ".join(c),
)
def test_output_into_a_closed_pipe_ends_quietly_with_exit_0(command: tuple[str, ...]) -> None:
    # `| head -1` once head has gone: the reading end is closed before the first write.
    read, write = os.pipe()
    os.close(read)
    try:
        result = run(*command, stdout=write)
    finally:
        os.close(write)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_the_hub_key_and_a_long_error_stay_on_one_line_in_a_pipe(
    exchange_copy: Path, tmp_path: Path
) -> None:
    key = run("exchange-hub", "checkpoint-key", "--config", str(exchange_copy / "hub.toml"))
    assert key.returncode == 0
    assert len(key.stdout.splitlines()) == 1
    missing = tmp_path / ("a-directory-with-a-rather-long-name-" * 3) / "hub.toml"
    result = run("exchange-hub", "serve", "--config", str(missing))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert len(line) > 80
    assert str(missing) in line


def test_tables_and_lines_in_a_pipe_are_not_cut_at_80_columns(tmp_path: Path) -> None:
    agency = "agency-with-a-rather-long-identifier-to-need-width"
    directory = tmp_path / "exchange"
    assert run("exchange-hub", "init", str(directory), "--agency", agency).returncode == 0
    config = str(directory / "hub.toml")
    added = run("exchange-hub", "agency", "add", "--config", config,
                str(directory / "registry" / agency))
    assert added.returncode == 0, added.stderr
    [line] = added.stdout.splitlines()
    assert line.startswith(f"registered: {agency} (signing key SHA256:")
    listed = run("exchange-hub", "agency", "list", "--config", config)
    [row] = [line for line in listed.stdout.splitlines() if agency in line]
    assert "SHA256:" in row and "active" in row  # the whole record on the agency's own line
    assert len(row) > 80


@pytest.mark.parametrize(
    ("arguments", "error", "reason", "code"),
    [
        (("publish", "DRAFT"), "DraftError", "DRAFT_INVALID", 1),
        (("inbox",), "UnavailableError", "UNAVAILABLE", 1),
        (("show",), "UsageError", "USAGE", 2),  # ALERT_ID missing
        (("watch", "--count", "0"), "UsageError", "USAGE", 2),
    ],
    ids=["bad input", "hub unreachable", "missing argument", "bad option value"],
)
def test_with_json_an_error_is_one_json_object_on_stderr(
    profile: Path,
    dead_hub: str,
    tmp_path: Path,
    arguments: tuple[str, ...],
    error: str,
    reason: str,
    code: int,
) -> None:
    draft = str(many_errors(tmp_path / "bad.json", 1))
    arguments = tuple(draft if a == "DRAFT" else a for a in arguments)
    result = run("exchange", "--profile", str(profile), "--hub", dead_hub, *arguments, "--json")
    assert result.returncode == code
    assert result.stdout == ""
    document = json.loads(result.stderr)
    assert (document["error"], document["reason"]) == (error, reason)
    assert document["message"]


def test_without_json_the_same_error_is_lines_for_people(profile: Path, tmp_path: Path) -> None:
    draft = str(many_errors(tmp_path / "bad.json", 1))
    result = run("exchange", "--profile", str(profile), "publish", draft)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == "error: the draft has 1 problem"


def test_with_json_a_missing_profile_is_a_json_usage_error() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "EXCHANGE_PROFILE"}
    result = subprocess.run([str(BIN / "exchange"), "inbox", "--json"], check=False,
                            capture_output=True, text=True, env=environment, timeout=60)
    assert result.returncode == 2
    document = json.loads(result.stderr)
    assert document["reason"] == "USAGE"
    assert "--profile" in document["message"]


def many_errors(path: Path, count: int) -> Path:
    items = [
        {
            "id": f"note-{n}",
            "colour": "red",
            "policy": {"audience": [], "release": "IMMEDIATE", "tlp": "RED"},
            "note": {"text": "x", "language": "en"},
        }
        for n in range(count)
    ]
    path.write_text(json.dumps({"kind": "GENERAL", "title": "t", "items": items}))
    return path


@pytest.mark.parametrize("command", ["validate", "publish"])
def test_more_than_20_validation_errors_print_the_first_20_and_a_count(
    profile: Path, tmp_path: Path, dead_hub: str, command: str
) -> None:
    draft = many_errors(tmp_path / "many.json", 27)
    result = run("exchange", "--profile", str(profile), "--hub", dead_hub, command, str(draft))
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "the draft has 27 problems" in output
    assert "items[19].colour" in output
    assert "items[20].colour" not in output
    assert "and 7 more" in output
    assert not (profile / "state" / "outbox").exists()


def test_20_validation_errors_are_all_printed(profile: Path, tmp_path: Path) -> None:
    draft = many_errors(tmp_path / "twenty.json", 20)
    result = run("exchange", "validate", str(draft))
    assert "items[19].colour" in result.stdout
    assert "more" not in result.stdout


def test_with_json_every_violation_is_listed(profile: Path, tmp_path: Path) -> None:
    draft = many_errors(tmp_path / "many.json", 27)
    result = run("exchange", "--profile", str(profile), "publish", str(draft), "--json")
    assert result.returncode == 1
    assert len(json.loads(result.stderr)["violations"]) == 27


def test_publish_to_an_unreachable_hub_gives_up_after_retry_seconds(
    profile: Path, dead_hub: str, tmp_path: Path
) -> None:
    draft = tmp_path / "note.json"
    draft.write_text(json.dumps({
        "kind": "GENERAL", "title": "kept",
        "items": [{"id": "n", "policy": {"audience": [], "release": "IMMEDIATE", "tlp": "RED"},
                   "note": {"text": "x", "language": "en"}}],
    }))
    result = run("exchange", "--profile", str(profile), "--hub", dead_hub, "publish", str(draft),
                 "--retry-seconds", "1", "--json")
    assert result.returncode == 1
    document = json.loads(result.stderr)
    assert document["error"] == "UnavailableError"
    assert "in 1 s" in document["message"]
    assert "exchange resend" in document["message"]
    assert len(list((profile / "state" / "outbox").iterdir())) == 1
    refused = run("exchange", "--profile", str(profile), "publish", str(draft),
                  "--retry-seconds", "-1")
    assert refused.returncode == 2


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.__setitem__("title", "t" * 400),
         "title: is 400 characters; the limit is 300 characters"),
        (lambda d: d.__setitem__("items", d["items"] * 201),
         "items: has 201 items; the limit is 200 items"),
        (lambda d: d["items"][0]["note"].__setitem__("text", "x" * 70_000),
         "items[0].note.text: is 70000 characters; the limit is 65536 characters"),
    ],
    ids=["title", "items", "string"],
)
def test_limit_messages_are_worded_one_way(
    tmp_path: Path, change: Any, expected: str
) -> None:
    draft: Any = {
        "kind": "GENERAL", "title": "t",
        "items": [{"id": "n", "policy": {"audience": [], "release": "IMMEDIATE", "tlp": "RED"},
                   "note": {"text": "x", "language": "en"}}],
    }
    change(draft)
    path = tmp_path / "draft.json"
    path.write_text(json.dumps(draft))
    result = run("exchange", "validate", str(path), "--json")
    assert result.returncode == 1
    descriptions = [
        f"{v['field']}: {v['description']}" for v in json.loads(result.stderr)["violations"]
    ]
    assert expected in descriptions
