"""``bench/scale_bench.py`` runs through on a tiny store of each kind: the store it fills by hand
is one a real hub serves, proves and lets two agencies verify in full (the script exits non-zero
when ``audit verify`` fails), and it reports every figure it promises. No figure is checked: the
benchmark measures, the tests only make sure it still runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_ADMIN_URL

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_the_scale_benchmark_runs_on_a_tiny_store(backend: str) -> None:
    command = [
        sys.executable,
        str(ROOT / "bench" / "scale_bench.py"),
        "--sizes",
        "24",
        "40",
        "--samples",
        "2",
        "--streams",
        "3",
    ]
    if backend == "postgresql":
        command += ["--postgres", POSTGRES_ADMIN_URL]
    finished = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = finished.stdout
    assert "| 24 alerts | 40 alerts | ratio |" in report
    for row in ("inbox (`ListAlerts`, 100)", "inclusion proof, store", "feed resume"):
        assert row in report
    assert "| log entries | 48 | 80 |" in report  # an alert and its recipient's feed event each
    assert "not run" not in report  # both agencies' full-log verification passed
    assert "hub RSS MiB" in report
