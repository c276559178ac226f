"""The ``exchange`` command line: usage, error lines and exit codes (DESIGN §12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from exchange import errors
from exchange_client import FeedGapError, LogInconsistentError
from exchange_client.cli import app, exit_code_for

COMMANDS = [
    "publish", "resend", "inbox", "show", "watch", "agencies",
    "request", "requests", "approve", "deny", "revoke", "retract", "feedback", "receipts",
]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.VerificationError("x"), 3),
        (errors.SignatureError("x"), 3),
        (errors.KeyCommitmentError("x"), 3),
        (errors.CertificateError("x"), 3),
        (FeedGapError("x", missing_sequence=4), 3),
        (LogInconsistentError("x"), 3),
        (errors.NotPermittedError("x"), 4),
        (errors.NotAuthenticatedError("x"), 4),
        (errors.NotFoundError("x"), 1),
        (errors.DraftError("x"), 1),
        (errors.UnavailableError("x"), 1),
        (errors.ConfigurationError("x"), 1),
        (errors.ExchangeError("x"), 1),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_exit_codes(error: errors.ExchangeError, code: int) -> None:
    assert exit_code_for(error) == code


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(runner: CliRunner, command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output
    assert "--help" in result.output


@pytest.mark.parametrize(
    "arguments",
    [
        ["request", "0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10", "bank"],  # no --reason
        ["deny", "ab" * 32],  # no --reason
        ["retract", "0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10"],  # no --reason
        ["feedback", "0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10"],  # no --outcome
        ["feedback", "0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10", "--outcome", "ARRESTED"],
        ["approve"],
        ["revoke", "0b0e3c1e-8f5d-4d5e-9a57-3f0d0f6f2a10"],  # no item
    ],
    ids=["request", "deny", "retract", "feedback", "outcome", "approve", "revoke"],
)
def test_release_commands_refuse_missing_or_bad_arguments_before_any_call(
    runner: CliRunner, profile_dir: Path, dead_hub: str, arguments: list[str]
) -> None:
    result = runner.invoke(app, ["--profile", str(profile_dir), "--hub", dead_hub, *arguments])
    assert result.exit_code == 2, result.output


def test_no_profile_is_a_usage_error_saying_what_to_do(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EXCHANGE_PROFILE", raising=False)
    result = runner.invoke(app, ["inbox"])
    assert result.exit_code == 2
    assert "no profile: pass --profile DIR or set EXCHANGE_PROFILE" in result.stderr
    assert "Traceback" not in result.output


def test_a_missing_profile_directory_is_one_error_line(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["inbox"], env={"EXCHANGE_PROFILE": str(tmp_path / "nowhere")})
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "exchange-hub init" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_bad_hub_address_is_a_usage_error(runner: CliRunner, profile_dir: Path) -> None:
    result = runner.invoke(app, ["--profile", str(profile_dir), "--hub", "nohost", "inbox"])
    assert result.exit_code == 2


def test_an_unreachable_hub_says_what_to_check(
    runner: CliRunner, profile_dir: Path, dead_hub: str
) -> None:
    result = runner.invoke(app, ["--profile", str(profile_dir), "--hub", dead_hub, "inbox"])
    assert result.exit_code == 1
    assert dead_hub in result.stderr
    assert "hub address" in result.stderr
    assert "Traceback" not in result.output


def test_an_invalid_draft_names_each_field(
    runner: CliRunner, profile_dir: Path, tmp_path: Path
) -> None:
    draft = tmp_path / "draft.json"
    draft.write_text(
        json.dumps(
            {
                "kind": "SHIPMENT",
                "title": "t",
                "items": [
                    {
                        "id": "s",
                        "policy": {"audience": [], "release": "IMMEDIATE", "tlp": "AMBER-ish"},
                        "note": {"text": "x", "language": "en"},
                    }
                ],
            }
        )
    )
    result = runner.invoke(app, ["--profile", str(profile_dir), "publish", str(draft), "--json"])
    assert result.exit_code == 1
    assert "items[0].policy.tlp" in result.stderr
    assert result.stdout == ""


def test_offline_commands_are_registered(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert "validate" in result.output
