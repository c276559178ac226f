"""The crash tests' figures close the test run's output, so every run shows them."""

from __future__ import annotations

import pytest

from tests.crash.harness import REPORTED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORTED:
        terminalreporter.section("crash-test figures")
        for line in REPORTED:
            terminalreporter.write_line(line)
