"""A database restored from a backup older than a checkpoint the hub already signed is refused:
the hub remembers its latest checkpoint in a state file a restore does not touch."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from exchange.hub.app import Hub
from exchange.hub.log_state import LogBehindError
from exchange.statements.sealing import summary_item
from exchange.v1 import payloads_pb2
from tests.integration.agency import TestAgency, note_item


def publish_one(hub: Hub, exchange_dir: Path) -> None:
    assert hub.port is not None
    a = TestAgency(exchange_dir, "agency-a", hub.port)
    try:
        items = [note_item("note", "a note", ["agency-b"])]
        summary = payloads_pb2.Summary(kind=payloads_pb2.Summary.GENERAL, title="t")
        a.alerts.Publish(a.seal([summary_item(summary, items), *items]).request, timeout=10)
    finally:
        a.close()


class Backups:
    """Take and restore a whole-database backup, the way each database does it."""

    def __init__(self, database_url: str) -> None:
        self.url = make_url(database_url)

    def _admin(self) -> psycopg.Connection:  # type: ignore[type-arg]
        conninfo = self.url.set(drivername="postgresql", database="postgres")
        return psycopg.connect(conninfo.render_as_string(hide_password=False), autocommit=True)

    def take(self) -> None:
        if self.url.get_backend_name() == "sqlite":
            assert self.url.database is not None
            with sqlite3.connect(self.url.database) as source, sqlite3.connect(
                self.url.database + ".backup"
            ) as target:
                source.backup(target)
            return
        with self._admin() as admin:
            admin.execute(f'CREATE DATABASE "{self.url.database}_backup" '
                          f'TEMPLATE "{self.url.database}"')

    def restore(self) -> None:
        if self.url.get_backend_name() == "sqlite":
            assert self.url.database is not None
            for suffix in ("-wal", "-shm"):
                Path(self.url.database + suffix).unlink(missing_ok=True)
            with sqlite3.connect(self.url.database + ".backup") as source, sqlite3.connect(
                self.url.database
            ) as target:
                source.backup(target)
            return
        with self._admin() as admin:
            admin.execute(f'DROP DATABASE "{self.url.database}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{self.url.database}" '
                          f'TEMPLATE "{self.url.database}_backup"')
            admin.execute(f'DROP DATABASE "{self.url.database}_backup"')


def test_a_restored_database_behind_the_signed_checkpoint_is_refused(
    hub_factory: Callable[..., Hub], database_url: str, exchange_dir: Path
) -> None:
    first = hub_factory()
    publish_one(first, exchange_dir)
    backed_up_at = first.checkpoint_now().size
    first.stop(grace=0)
    backups = Backups(database_url)
    backups.take()

    second = hub_factory()  # the same database, as it was: served
    publish_one(second, exchange_dir)
    signed = second.checkpoint_now().size
    second.stop(grace=0)
    assert signed > backed_up_at
    backups.restore()

    with pytest.raises(LogBehindError) as refused:
        hub_factory()
    message = refused.value.message
    assert f"this hub already signed a checkpoint of {signed} entries" in message
    assert str(second.config.log_state_path) in message
    assert "restored from a backup" in message
    assert refused.value.reason == "LOG_BEHIND_CHECKPOINT"


def test_a_database_with_another_root_at_the_signed_size_is_refused(
    hub_factory: Callable[..., Hub], exchange_dir: Path
) -> None:
    hub = hub_factory()
    publish_one(hub, exchange_dir)
    hub.checkpoint_now()
    hub.stop(grace=0)
    state_file = hub.config.log_state_path
    document = json.loads(state_file.read_text())
    for record in document["databases"].values():
        record["root_hash"] = "00" * 32  # the record of a log this database is not
    state_file.write_text(json.dumps(document))

    with pytest.raises(LogBehindError) as refused:
        hub_factory()
    assert refused.value.reason == "LOG_FORKED"


def test_every_adopted_checkpoint_is_remembered_outside_the_database(
    hub_factory: Callable[..., Hub], exchange_dir: Path
) -> None:
    hub = hub_factory()
    publish_one(hub, exchange_dir)
    latest = hub.checkpoint_now()
    head = hub.log_state.head
    assert head is not None and (head.size, head.root_hash) == (latest.size, latest.root_hash)
    stored = json.loads(hub.config.log_state_path.read_text())["databases"]
    assert [record["size"] for record in stored.values()] == [latest.size]
