"""Fixtures shared by the CLI tests: a running hub in a subprocess (``exchange``)."""

from tests.e2e.test_audit_cli import exchange  # noqa: F401  (the fixture, for every module)
