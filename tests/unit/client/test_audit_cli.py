"""``exchange audit`` without a hub: help, usage errors, and the profile's cosigner settings."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from typer.testing import CliRunner

import exchange_client
from exchange.audit import errors as audit_errors
from exchange.config.profile import ProfileConfig
from exchange.errors import ConfigurationError
from exchange_client import Profile
from exchange_client.cli import app

AUDIT_COMMANDS = ["checkpoint", "compare", "verify", "history"]


def set_audit(profile_dir: Path, **settings: Any) -> None:
    path = profile_dir / "profile.toml"
    document = tomllib.loads(path.read_text())
    document["audit"].update(settings)
    path.write_text(tomli_w.dumps(document))


@pytest.mark.parametrize("command", AUDIT_COMMANDS)
def test_every_audit_command_has_help(runner: CliRunner, command: str) -> None:
    result = runner.invoke(app, ["audit", command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_audit_lists_its_commands(runner: CliRunner) -> None:
    result = runner.invoke(app, ["audit", "--help"])
    assert result.exit_code == 0
    assert all(command in result.output for command in AUDIT_COMMANDS)


@pytest.mark.parametrize(
    "arguments", [["compare"], ["history"], ["checkpoint", "--frobnicate"]], ids=str
)
def test_usage_errors_exit_2(
    runner: CliRunner, profile_dir: Path, dead_hub: str, arguments: list[str]
) -> None:
    result = runner.invoke(
        app, ["--profile", str(profile_dir), "--hub", dead_hub, "audit", *arguments]
    )
    assert result.exit_code == 2, result.output


def test_an_unreadable_partner_note_is_an_error_before_any_call(
    runner: CliRunner, profile_dir: Path, dead_hub: str, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such.note"
    result = runner.invoke(
        app, ["--profile", str(profile_dir), "--hub", dead_hub, "audit", "compare", str(missing)]
    )
    assert result.exit_code == 1
    assert "cannot read the note" in result.output


def test_an_unreachable_hub_is_exit_1_with_json_saying_why(
    runner: CliRunner, profile_dir: Path, dead_hub: str
) -> None:
    result = runner.invoke(
        app, ["--profile", str(profile_dir), "--hub", dead_hub, "audit", "verify", "--json"]
    )
    assert result.exit_code == 1
    assert '"error": "UnavailableError"' in result.output


def test_the_profile_names_required_cosigners(profile_dir: Path) -> None:
    assert Profile.load(profile_dir).require_cosigners == ()
    set_audit(profile_dir, require_cosigners=["agency-b"], max_cosignature_age_seconds=600)
    profile = Profile.load(profile_dir)
    assert profile.require_cosigners == ("agency-b",)
    assert profile.max_cosignature_age_seconds == 600
    written = tomllib.loads(ProfileConfig.from_file(profile_dir).to_toml())
    assert written["audit"]["require_cosigners"] == ["agency-b"]


@pytest.mark.parametrize(
    "settings",
    [
        {"require_cosigners": "agency-b"},
        {"require_cosigners": ["Agency B"]},
        {"max_cosignature_age_seconds": 0},
        {"max_cosignature_age_seconds": "an hour"},
        {"require_cosignature": ["agency-b"]},
    ],
    ids=["not a list", "bad id", "zero age", "text age", "misspelt"],
)
def test_bad_cosigner_settings_are_refused(profile_dir: Path, settings: dict[str, Any]) -> None:
    set_audit(profile_dir, **settings)
    with pytest.raises(ConfigurationError) as refused:
        Profile.load(profile_dir)
    assert "[audit]" in refused.value.message


def test_the_client_raises_the_audit_errors_themselves() -> None:
    assert exchange_client.LogInconsistentError is audit_errors.LogInconsistentError
    assert exchange_client.FeedGapError is audit_errors.FeedGapError
