"""``scripts/check_proto.sh``: buf lint, and buf breaking against the previous commit on main.

Each case is a small git history of the project's own proto/ in a temporary repository, checked
by the real script with the buf that the dev extra installs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = Path(sys.executable).parent / "buf"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
        env={**os.environ, **GIT_IDENTITY},
    ).stdout


def check(repo: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(repo / "scripts" / "check_proto.sh")], check=False, capture_output=True,
        text=True, timeout=120, env={**os.environ, "BUF": str(BUF), **env},
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A main branch whose first commit holds the project's proto/ and the script."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    shutil.copytree(ROOT / "proto", repo / "proto")
    (repo / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "check_proto.sh", repo / "scripts")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "proto")
    return repo


def commit(repo: Path, message: str) -> None:
    git(repo, "commit", "--quiet", "--allow-empty", "-am", message)


def rename_a_field(repo: Path) -> None:
    alerts = repo / "proto" / "exchange" / "v1" / "alerts.proto"
    text = alerts.read_text()
    alerts.write_text(text.replace("string alert_id = 1;", "string alert_uuid = 1;", 1))


def test_the_first_commit_has_nothing_to_compare_with(repo: Path) -> None:
    result = check(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "buf lint: proto/ follows" in result.stdout
    assert "skipped: HEAD~1 does not exist" in result.stdout


def test_a_last_commit_that_did_not_touch_proto_passes(repo: Path) -> None:
    (repo / "README").write_text("docs only\n")
    git(repo, "add", "README")
    commit(repo, "docs")
    result = check(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "compatible with HEAD~1" in result.stdout


def test_a_renamed_field_on_main_fails_naming_it(repo: Path) -> None:
    rename_a_field(repo)
    commit(repo, "rename")
    result = check(repo)
    assert result.returncode != 0
    assert "alert_uuid" in result.stdout + result.stderr


def test_an_uncommitted_break_on_a_branch_is_judged_against_main(repo: Path) -> None:
    git(repo, "checkout", "--quiet", "-b", "feature")
    (repo / "README").write_text("a commit of the branch\n")
    git(repo, "add", "README")
    commit(repo, "branch work")
    rename_a_field(repo)  # not committed
    result = check(repo)
    assert result.returncode != 0
    assert "alert_uuid" in result.stdout + result.stderr


def test_a_lint_failure_fails(repo: Path) -> None:
    alerts = repo / "proto" / "exchange" / "v1" / "alerts.proto"
    alerts.write_text(alerts.read_text() + "\nmessage lower_case_name {}\n")
    result = check(repo)
    assert result.returncode != 0
    assert "lower_case_name" in result.stdout + result.stderr


def test_a_shallow_clone_fetches_the_previous_commit(repo: Path, tmp_path: Path) -> None:
    commit(repo, "second")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{repo}", str(clone)],
                   check=True)
    result = check(clone)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "compatible with HEAD~1" in result.stdout


def test_a_shallow_clone_that_cannot_fetch_says_so(repo: Path, tmp_path: Path) -> None:
    commit(repo, "second")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{repo}", str(clone)],
                   check=True)
    shutil.rmtree(repo)
    result = check(clone)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not in this shallow clone" in result.stdout
