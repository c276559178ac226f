"""Shared fixtures: a throw-away exchange (real CAs and keys), databases, a real hub on port 0.

PostgreSQL tests use the server at ``EXCHANGE_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) and create a fresh database per test
module, dropped afterwards.  They are not skipped when the server is down: they fail, because a
skipped real path hides a defect.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs property tests with a fixed seed, so that a submission is judged on its own change;
# local runs explore new examples (and keep failures in .hypothesis/ to replay).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent
AGENCIES = ("agency-a", "agency-b", "agency-c")
POSTGRES_ADMIN_URL = os.environ.get(
    "EXCHANGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


class FrozenClock:
    """A clock the tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeTime:
    """A monotonic clock that moves only when the code under test sleeps; the sleeps are kept."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def fresh_exchange(tmp_path: Path, agencies: tuple[str, ...] = ("agency-a", "agency-b")) -> Path:
    """An exchange of its own for a test that writes to its profiles' state."""
    from exchange.hub.init import init_exchange

    directory = tmp_path / "exchange"
    init_exchange(directory, list(agencies), listen="127.0.0.1:50051")
    return directory


@contextmanager
def wall_clock_hub(
    exchange_dir: Path, tmp_path: Path, *, heartbeat_seconds: float
) -> Iterator[object]:
    """A hub on port 0 and a SQLite file of its own, on the wall clock: for tests of the client
    under real concurrency, where the store is not what is under test."""
    from exchange.hub.app import Hub
    from exchange.hub.config import HubConfig

    config = HubConfig.from_file(exchange_dir / "hub.toml").with_overrides(
        database_url=f"sqlite:///{tmp_path / 'hub.db'}", listen="127.0.0.1:0"
    )
    hub = Hub(dataclasses.replace(config, heartbeat_interval_seconds=heartbeat_seconds))
    hub.prepare()
    hub.start()
    try:
        yield hub
    finally:
        hub.stop(grace=0)


@pytest.fixture(scope="session")
def exchange_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised exchange (hub + three agencies) shared by the whole run; read-only."""
    from exchange.hub.init import init_exchange

    directory = tmp_path_factory.mktemp("exchange") / "data"
    # Certificates that outlast the frozen clock of tests moving it years ahead (past an item's
    # fixed expiry date); certificate expiry has tests of its own (test_certificate_expiry).
    init_exchange(
        directory, list(AGENCIES), listen="127.0.0.1:50051", tls_days=3000, key_days=3000
    )
    return directory


def _postgres_database() -> Iterator[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(POSTGRES_ADMIN_URL)
    name = f"exchange_test_{uuid.uuid4().hex[:12]}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def dead_hub() -> Iterator[str]:
    """An address where nothing listens, for as long as the test runs.

    The port is bound and never listened on: connections are refused, and no other process
    (a hub of another test, of another run) can take the port meanwhile, as it could a port
    merely bound and released.
    """
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{held.getsockname()[1]}"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def hub_factory(
    exchange_dir: Path, database_url: str, clock: FrozenClock, tmp_path: Path
) -> Iterator[Callable[..., object]]:
    """Start real hubs (mTLS on a loopback port 0) on the test's database; stopped afterwards."""
    from exchange.hub.app import Hub
    from exchange.hub.config import HubConfig

    started: list[Hub] = []

    def start(*, heartbeat_interval_seconds: float = 0.2, **overrides: object) -> Hub:
        config = HubConfig.from_file(exchange_dir / "hub.toml").with_overrides(
            database_url=database_url, listen="127.0.0.1:0"
        )
        config = dataclasses.replace(
            config,
            heartbeat_interval_seconds=heartbeat_interval_seconds,
            log_state_file=tmp_path / "log-state.json",  # not in the shared exchange directory
        )
        hub = Hub(config, clock=clock, **overrides)  # type: ignore[arg-type]
        hub.prepare()
        hub.start()
        started.append(hub)
        return hub

    yield start
    for hub in started:
        hub.stop(grace=0)


@pytest.fixture
def hub(hub_factory: Callable[..., object]) -> object:
    return hub_factory()
