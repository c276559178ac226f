"""Fixtures shared by the CLI tests: a running hub in a subprocess (``exchange``).

The CLI's tests run on both databases, but the PostgreSQL run of each is marked ``slow``: the
database code under the CLI is the same as under the library, whose integration tests run on
both databases in the default ``make test``; the CLI on PostgreSQL runs in ``make test
TESTS=all`` (and so in CI).
"""

from pathlib import Path

import pytest

from tests.e2e.test_audit_cli import exchange  # noqa: F401  (the fixture, for every module)

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if (
            callspec is not None
            and callspec.params.get("database_url") == "postgresql"
            and item.path.is_relative_to(HERE)
        ):
            item.add_marker(pytest.mark.slow)
