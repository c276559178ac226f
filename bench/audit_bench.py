"""Audit-log benchmark: appends, tree building, proofs and their verification, full-log replay.

For each database (SQLite by default; PostgreSQL with ``--postgres URL``) this measures:

1. **append throughput**: ``append_entry`` as the hub calls it, one entry per write transaction
   (each state change is its own transaction, durably committed), then 100 per transaction;
2. for each log size (10^4, 10^5, 10^6 by default), on a fresh database filled with synthetic
   leaves through ``executemany``:

   * **tree building**: ``TreeBuilder.extend`` hashing every leaf into the subtree table,
     in leaves per second;
   * **proof generation**: random inclusion and consistency proofs at the full size, each in its
     own read transaction as the servicer does, with the statements each one issued (counted
     with a SQLAlchemy event) — O(log n) shows as a flat count and a slowly growing time;
   * **proof verification**: the client's ``verify_inclusion``/``verify_consistency``;
   * **full-log verification**: ``verify_log`` over every leaf and a signed checkpoint, in
     entries per second (what ``exchange audit verify`` does once it has fetched the log).

Run from the repository root::

    .venv/bin/python bench/audit_bench.py
    .venv/bin/python bench/audit_bench.py --postgres postgresql+psycopg://postgres@127.0.0.1/postgres \\
        --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, update
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exchange.audit import merkle
from exchange.audit.leaves import FEED_EVENT, make_leaf
from exchange.audit.verify import verify_log
from exchange.crypto.notes import Checkpoint, NoteSigner, sign_note
from exchange.store.db import Database
from exchange.store.log import append_entry
from exchange.store.schema import log_entries, log_head
from exchange.store.tree import StoredTree, TreeBuilder

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SALT = b"s" * 16
SIGNER = NoteSigner("bench.example/log", bytes(range(32)))


@dataclass(frozen=True)
class LeafRow:
    index: int
    data: bytes


@contextmanager
def fresh_database(postgres: str | None) -> Iterator[Database]:
    """An empty, migrated database: a SQLite file in a temporary directory, or a new PG database."""
    if postgres is None:
        with tempfile.TemporaryDirectory() as directory:
            db = Database.from_url(f"sqlite:///{directory}/bench.db")
            db.migrate()
            try:
                yield db
            finally:
                db.dispose()
        return
    import psycopg

    admin = make_url(postgres)
    name = f"exchange_bench_{uuid.uuid4().hex[:10]}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    db = Database.from_url(admin.set(database=name).render_as_string(hide_password=False))
    try:
        db.migrate()
        yield db
    finally:
        db.dispose()
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class StatementCounter:
    """Counts the SQL statements (transaction control excluded) run on an engine."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        event.listen(db.engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, *args: Any) -> None:
        if not str(args[2]).lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            self.count += 1


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def bench_appends(db: Database, count: int, per_transaction: int) -> float:
    """Entries per second appended with ``append_entry``, ``per_transaction`` per commit."""
    body = b"x" * 200

    def run() -> None:
        for _ in range(count // per_transaction):
            with db.write() as connection:
                for _ in range(per_transaction):
                    append_entry(
                        connection,
                        entry_type=FEED_EVENT,
                        body=body,
                        references=["agency-b", "1", "agency-a", "alert"],
                        entitled=["agency-b"],
                        now=NOW,
                    )

    return count / timed(run)


def fill(db: Database, size: int) -> list[bytes]:
    """Insert ``size`` synthetic leaves (rows only, as appends leave them); return their data."""
    leaves = [
        make_leaf(FEED_EVENT, NOW, i.to_bytes(8, "big"), SALT, ["agency-b"]) for i in range(size)
    ]
    chunk = 50_000
    for start in range(0, size, chunk):
        with db.write() as connection:
            connection.execute(
                insert(log_entries),
                [
                    {
                        "idx": start + offset,
                        "entry_type": FEED_EVENT,
                        "logged_at": NOW,
                        "leaf": leaf,
                        "leaf_hash": merkle.leaf_hash(leaf),
                        "body": None,
                        "salt": SALT,
                        "entitled": "agency-b",
                    }
                    for offset, leaf in enumerate(leaves[start : start + chunk])
                ],
            )
    with db.write() as connection:
        connection.execute(update(log_head).values(size=size))
    return leaves


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def bench_size(db: Database, size: int, samples: int) -> dict[str, float]:
    leaves = fill(db, size)
    build_seconds = timed(TreeBuilder(db).extend)
    with db.read() as connection:
        root = StoredTree(connection).root(size)
    rng = random.Random(size)
    counter = StatementCounter(db)

    inclusion_times: list[float] = []
    inclusion_statements: list[int] = []
    inclusion_proofs: list[tuple[int, list[bytes]]] = []
    for _ in range(samples):
        index = rng.randrange(size)
        before = counter.count
        start = time.perf_counter()
        with db.read() as connection:
            proof = StoredTree(connection).inclusion_proof(index, size)
        inclusion_times.append(time.perf_counter() - start)
        inclusion_statements.append(counter.count - before)
        inclusion_proofs.append((index, proof))

    consistency_times: list[float] = []
    consistency_statements: list[int] = []
    consistency_proofs: list[tuple[int, bytes, list[bytes]]] = []
    for _ in range(samples):
        first = rng.randint(1, size)
        with db.read() as connection:
            first_root = StoredTree(connection).root(first)
        before = counter.count
        start = time.perf_counter()
        with db.read() as connection:
            proof = StoredTree(connection).consistency_proof(first, size)
        consistency_times.append(time.perf_counter() - start)
        consistency_statements.append(counter.count - before)
        consistency_proofs.append((first, first_root, proof))

    start = time.perf_counter()
    for index, proof in inclusion_proofs:
        merkle.verify_inclusion(merkle.leaf_hash(leaves[index]), index, size, proof, root)
    verify_inclusion_seconds = (time.perf_counter() - start) / samples
    start = time.perf_counter()
    for first, first_root, proof in consistency_proofs:
        merkle.verify_consistency(first, size, first_root, root, proof)
    verify_consistency_seconds = (time.perf_counter() - start) / samples

    note = sign_note(Checkpoint(SIGNER.name, size, root).to_text(), [SIGNER])
    rows = [LeafRow(i, leaf) for i, leaf in enumerate(leaves)]
    replay_seconds = timed(lambda: _replay(rows, note))
    return {
        "build_leaves_per_s": size / build_seconds,
        "inclusion_p50_us": percentile(inclusion_times, 0.5) * 1e6,
        "inclusion_p99_us": percentile(inclusion_times, 0.99) * 1e6,
        "inclusion_statements": statistics.mean(inclusion_statements),
        "inclusion_hashes": statistics.mean(len(p) for _, p in inclusion_proofs),
        "consistency_p50_us": percentile(consistency_times, 0.5) * 1e6,
        "consistency_p99_us": percentile(consistency_times, 0.99) * 1e6,
        "consistency_statements": statistics.mean(consistency_statements),
        "verify_inclusion_us": verify_inclusion_seconds * 1e6,
        "verify_consistency_us": verify_consistency_seconds * 1e6,
        "replay_entries_per_s": size / replay_seconds,
    }


def _replay(rows: list[LeafRow], note: str) -> None:
    report = verify_log(rows, [note], log_verifier=SIGNER.verifier())
    if not report.ok:
        raise SystemExit(f"full-log verification failed: {report.failures}")


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"- nproc: {os.cpu_count()}; CPU: {cpu or 'unknown'}\n"
        f"- uname -a: `{_uname()}`\n"
        f"- Python {platform.python_version()}; SQLite {_sqlite_version()}"
    )


def _uname() -> str:
    try:
        return subprocess.run(
            ["uname", "-a"], check=False, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return " ".join(platform.uname())


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--samples", type=int, default=500, help="proofs timed per size")
    parser.add_argument("--appends", type=int, default=2_000, help="entries appended")
    parser.add_argument("--postgres", metavar="URL", help="benchmark PostgreSQL instead of SQLite")
    args = parser.parse_args(argv)
    backend = "PostgreSQL" if args.postgres else "SQLite (WAL, synchronous=FULL)"

    print(f"### {backend}\n")
    print(f"{machine()}\n- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    with fresh_database(args.postgres) as db:
        single = bench_appends(db, args.appends, 1)
        batched = bench_appends(db, args.appends * 5, 100)
    print("| append | entries/s |\n|---|---:|")
    print(f"| 1 entry per transaction | {single:,.0f} |")
    print(f"| 100 entries per transaction | {batched:,.0f} |\n")

    print(
        "| entries | tree build leaves/s | inclusion proof p50 / p99 µs | statements | hashes "
        "| consistency proof p50 / p99 µs | statements | verify inclusion µs "
        "| verify consistency µs | full-log verify entries/s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        with fresh_database(args.postgres) as db:
            r = bench_size(db, size, args.samples)
        print(
            f"| {size:,} | {r['build_leaves_per_s']:,.0f} "
            f"| {r['inclusion_p50_us']:,.0f} / {r['inclusion_p99_us']:,.0f} "
            f"| {r['inclusion_statements']:.0f} | {r['inclusion_hashes']:.1f} "
            f"| {r['consistency_p50_us']:,.0f} / {r['consistency_p99_us']:,.0f} "
            f"| {r['consistency_statements']:.0f} "
            f"| {r['verify_inclusion_us']:,.0f} | {r['verify_consistency_us']:,.0f} "
            f"| {r['replay_entries_per_s']:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
