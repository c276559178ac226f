"""Fixtures shared by the CLI tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
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


@pytest.fixture(scope="module")
def dead_hub() -> Iterator[str]:
    """An address on which nothing listens any more."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    server.stop(grace=0).wait()
    yield f"127.0.0.1:{port}"
