"""Fixtures shared by the CLI tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def profile_dir(exchange_dir: Path, tmp_path: Path) -> Path:
    """A private copy of agency-a's profile, so that its state directory is this test's own."""
    copy = tmp_path / "agency-a"
    shutil.copytree(exchange_dir / "agencies" / "agency-a", copy)
    return copy
