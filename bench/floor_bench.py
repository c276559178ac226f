"""The floor under a publish: the CPU that the design's fixed steps cost, each measured on its own.

``publish_bench.py`` compares publishing with a raw gRPC echo.  This script measures, in one
process and one thread, the work that any implementation of the design must do per publish
whatever its storage, so that the benchmark's ratios can be read against what is possible:

- **sealing** (client): ``seal_alert`` for the benchmark's alert (a summary and 3 note items of
  1 KB to one partner: 4 item encryptions, 8 HPKE grants — one per item for each of the two
  agencies — and one Ed25519 signature);
- **checking** (hub): ``check_publish`` on that request (the signature, every header's
  commitment and ciphertext hash, the policies and grants);
- **a durable SQLite commit** (hub): one small ``BEGIN IMMEDIATE … COMMIT`` in WAL mode with
  ``synchronous=FULL``, as the hub's store opens it;
- **a durable file replace** (client): the write, ``fsync``, rename and directory ``fsync`` the
  client library makes for its outbox entry, its trusted checkpoint and its feed cursor.

Wall time is what a caller waits; CPU time (``time.process_time``) is what the two cores must
supply.  Run from the repository root::

    .venv/bin/python bench/floor_bench.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients" / "python"))

from publish_bench import PUBLISHER, SUBSCRIBER, bench_draft

from exchange.alerts.draft import Draft
from exchange.crypto.keys import DecryptionKey, SigningKey
from exchange.statements.publish import PublishLimits, check_publish
from exchange.statements.sealing import PlainItem, SealedAlert, seal_alert, summary_item
from exchange_client._internal.state import write_atomically


class Keys:
    """Fresh keys for the two agencies (what an ``exchange-hub init`` directory would hold)."""

    def __init__(self) -> None:
        self.signing = SigningKey.generate()
        self.own = DecryptionKey.generate()
        self.partner = DecryptionKey.generate()


def seal(keys: Keys, draft: Draft) -> SealedAlert:
    items = [PlainItem(item_id=i.id, policy=i.policy, payload=i.payload) for i in draft.items]
    return seal_alert(
        originator=PUBLISHER,
        alert_id=str(uuid.uuid4()),
        version=1,
        items=[summary_item(draft.summary(), items), *items],
        signing_key=keys.signing,
        own_key=keys.own.public_key,
        recipient_keys={SUBSCRIBER: keys.partner.public_key},
        created_at=datetime.now(UTC),
    )


def measure(step: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median wall time and mean CPU time of ``step``, in milliseconds."""
    step()  # warm-up
    walls = []
    cpu_start = time.process_time()
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        walls.append(time.perf_counter() - start)
    cpu = (time.process_time() - cpu_start) / rounds
    return statistics.median(walls) * 1e3, cpu * 1e3


def sqlite_commit(directory: Path) -> Callable[[], None]:
    connection = sqlite3.connect(directory / "floor.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, body BLOB)")
    body = os.urandom(512)

    def commit() -> None:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO rows (body) VALUES (?)", (body,))
        connection.execute("COMMIT")

    return commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2000, help="repetitions per step (2000)")
    args = parser.parse_args()
    keys = Keys()
    draft = Draft.from_dict(bench_draft(items=3, item_bytes=1024))  # publish_bench's alert
    sealed = seal(keys, draft)
    signing_public = keys.signing.public_key
    encryption_ids = {
        PUBLISHER: keys.own.public_key.key_id,
        SUBSCRIBER: keys.partner.public_key.key_id,
    }

    def check() -> None:
        check_publish(
            sealed.request,
            caller=PUBLISHER,
            caller_keys={signing_public.key_id: signing_public},
            encryption_key_ids=encryption_ids,
            limits=PublishLimits(),
        )

    with tempfile.TemporaryDirectory(prefix="floor-", dir=Path.cwd()) as temporary:
        directory = Path(temporary)
        record = os.urandom(9000)
        steps: list[tuple[str, Callable[[], object]]] = [
            ("sealing (client: seal_alert)", lambda: seal(keys, draft)),
            ("checking (hub: check_publish)", check),
            ("durable SQLite commit (hub)", sqlite_commit(directory)),
            ("durable file replace (client)", lambda: write_atomically(directory / "f", record)),
        ]
        print(f"{args.rounds} rounds each; Python {sys.version.split()[0]}, "
              f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} cores\n")
        print(f"{'step':34} {'wall p50 ms':>12} {'CPU ms':>8}")
        for name, step in steps:
            wall, cpu = measure(step, args.rounds)
            print(f"{name:34} {wall:12.3f} {cpu:8.3f}")


if __name__ == "__main__":
    main()
