"""One hub per address and per SQLite database, checked on the hub object itself."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from exchange.errors import ConfigurationError
from exchange.hub.app import Hub
from exchange.hub.config import HubConfig


def test_the_hubs_port_cannot_be_shared_by_another_server(
    hub_factory: Callable[..., Hub],
) -> None:
    hub = hub_factory()
    # A grpc server asks for SO_REUSEPORT by default; it gets the port only if the hub's
    # socket allowed sharing too.
    intruder = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    with pytest.raises(RuntimeError):
        intruder.add_insecure_port(f"127.0.0.1:{hub.port}")
    intruder.stop(grace=0)


def sqlite_hub(exchange_dir: Path, database: Path) -> Hub:
    config = HubConfig.from_file(exchange_dir / "hub.toml").with_overrides(
        database_url=f"sqlite:///{database}", listen="127.0.0.1:0"
    )
    return Hub(dataclasses.replace(config, heartbeat_interval_seconds=0.2))


def test_a_second_hub_on_one_sqlite_database_is_refused_until_the_first_stops(
    exchange_dir: Path, tmp_path: Path
) -> None:
    database = tmp_path / "hub.db"
    first = sqlite_hub(exchange_dir, database)
    first.prepare()
    first.start()
    try:
        with pytest.raises(ConfigurationError) as refused:
            sqlite_hub(exchange_dir, database).prepare()
        assert refused.value.reason == "DATABASE_IN_USE"
        assert str(database) in refused.value.message
    finally:
        first.stop(grace=0)
    after = sqlite_hub(exchange_dir, database)
    after.prepare()  # the lock went with the first hub
    after.stop(grace=0)


def test_a_refused_start_releases_what_it_took(exchange_dir: Path, tmp_path: Path) -> None:
    database = tmp_path / "hub.db"
    database.write_bytes(b"this is no SQLite database, but it is in the way" * 100)
    with pytest.raises(ConfigurationError, match="not an SQLite database"):
        sqlite_hub(exchange_dir, database).prepare()
    database.unlink()
    hub = sqlite_hub(exchange_dir, database)
    hub.prepare()  # no lock left behind by the refused start
    hub.stop(grace=0)
