"""The suite's own rules: no test module reads the clock when it is imported.

A module-level ``NOW = datetime.now(UTC)`` is fixed when the module is collected, while the
certificates and statements it is compared with are made later, by fixtures: once the run takes
longer than some allowance to reach the module, the test fails for the run's duration alone. What
runs at import is the module body, class bodies, decorators and default argument values.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

CLOCK_READS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "monotonic"),
    ("time", "monotonic_ns"),
    ("time", "perf_counter"),
}


def _run_at_import(tree: ast.Module) -> Iterator[ast.AST]:
    """Every node evaluated when the module is imported (function bodies are not)."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            pending.extend(node.decorator_list)
            pending.extend(node.args.defaults)
            pending.extend(d for d in node.args.kw_defaults if d is not None)
            continue
        if isinstance(node, ast.Lambda):
            pending.extend(node.args.defaults)
            continue
        yield node
        pending.extend(ast.iter_child_nodes(node))


def clock_reads_at_import(source: str) -> list[int]:
    """Line numbers of the clock reads in ``source`` that run at import."""
    lines = []
    for node in _run_at_import(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value
        name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
        if (name, node.func.attr) in CLOCK_READS:
            lines.append(node.lineno)
    return sorted(lines)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("NOW = datetime.now(UTC)", [1]),
        ("import time\nSTART = time.time()", [2]),
        ("class Case:\n    at = dt.datetime.now()", [2]),
        ("def f(now=datetime.now(UTC)):\n    pass", [1]),
        ("@pytest.mark.parametrize('t', [time.monotonic()])\ndef test(t):\n    pass", [1]),
        ("def f():\n    return datetime.now(UTC)", []),
        ("clock = lambda: datetime.now(UTC)", []),
        ("NOW = datetime(2030, 1, 15, tzinfo=UTC)", []),
    ],
)
def test_the_check_finds_clock_reads_that_run_at_import(source: str, expected: list[int]) -> None:
    assert clock_reads_at_import(source) == expected


def test_no_test_module_reads_the_clock_at_import() -> None:
    found = {
        str(path.relative_to(TESTS)): lines
        for path in sorted(TESTS.rglob("*.py"))
        if (lines := clock_reads_at_import(path.read_text(encoding="utf-8")))
    }
    assert found == {}, "take the time in a fixture or the test, or use a fixed datetime"
