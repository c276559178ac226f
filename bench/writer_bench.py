"""The publish writer's cost per publish by batch size, on SQLite or PostgreSQL, in one process.

``publish_bench.py`` measures the whole hub under gRPC load, where the batch sizes are whatever
the load makes them. This script drives :class:`exchange.store.publish_writer.PublishWriter`'s
batch step directly, with batches of a chosen size of already-checked publishes (the benchmark's
alert: a summary and 3 note items of 1 KB to one partner), against a real hub's store, and
reports per batch size the writer thread's CPU per publish (``time.thread_time``: the SQL, the
leaves, the checkpoint, the proofs and the durable commit's system time) and the wall time per
batch (which includes waiting for the disk's flush). A fresh exchange and database per run.

The CPU is given as the median batch's, and as the 10th percentile's and the fastest batch's:
on a shared machine other processes' work lands in some batches (a descheduled thread's cache
misses, a busy disk's longer flush), and the low end of the distribution moves much less from
run to run than the median, so it shows a change of a few per cent that the median's noise hides.

Run from the repository root::

    .venv/bin/python bench/writer_bench.py                       # a temporary SQLite file
    .venv/bin/python bench/writer_bench.py --database postgresql+psycopg://postgres@127.0.0.1/x
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients" / "python"))

from publish_bench import PUBLISHER, SUBSCRIBER, bench_draft


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--sizes", default="1,8,32", help="batch sizes; default 1,8,32")
    parser.add_argument("--batches", type=int, default=8, help="batches per size; default 8")
    arguments = parser.parse_args(argv)
    sizes = [int(size) for size in arguments.sizes.split(",")]

    from exchange.alerts.draft import Draft
    from exchange.hub.app import Hub
    from exchange.hub.config import HubConfig
    from exchange.hub.init import init_exchange
    from exchange.statements.publish import PublishLimits, check_publish
    from exchange.statements.sealing import PlainItem, seal_alert, summary_item
    from exchange.store.publish_writer import PublishWriter, QueuedPublish, Receipt
    from exchange_client import Profile

    with tempfile.TemporaryDirectory(prefix="exchange-writer-bench-") as temporary:
        root = Path(temporary)
        init_exchange(root / "exchange", [PUBLISHER, SUBSCRIBER], listen="127.0.0.1:50051")
        config = HubConfig.from_file(root / "exchange" / "hub.toml").with_overrides(
            database_url=arguments.database or f"sqlite:///{root / 'hub.db'}",
            listen="127.0.0.1:0",
        )
        hub = Hub(dataclasses.replace(config, log_state_file=root / "log-state.json"))
        hub.prepare()
        hub.start()
        try:
            assert hub.checkpointer is not None
            publisher = Profile.load(root / "exchange" / "agencies" / PUBLISHER)
            subscriber = Profile.load(root / "exchange" / "agencies" / SUBSCRIBER)
            draft = Draft.from_dict(bench_draft(3, 1024))
            items = [PlainItem(i.id, i.policy, i.payload) for i in draft.items]
            checked = []
            for _ in range(sum(sizes) * arguments.batches):
                sealed = seal_alert(
                    originator=PUBLISHER,
                    alert_id=str(uuid.uuid4()),
                    version=1,
                    items=[summary_item(draft.summary(), items), *items],
                    signing_key=publisher.signing_key,
                    own_key=publisher.decryption_key.public_key,
                    recipient_keys={SUBSCRIBER: subscriber.decryption_key.public_key},
                    created_at=datetime.now(UTC),
                )
                checked.append(
                    check_publish(
                        sealed.request,
                        caller=PUBLISHER,
                        caller_keys=hub.directory.signing_keys(PUBLISHER),
                        encryption_key_ids=hub.directory.encryption_key_ids(),
                        limits=PublishLimits(),
                    )
                )
            writer: PublishWriter[int] = PublishWriter(
                hub.db,
                clock=lambda: datetime.now(UTC),
                deliver=lambda results: None,
                sign=hub.checkpointer.sign_batch,
            )
            queued = iter(checked)
            print(f"database: {hub.db.engine.url.get_backend_name()}; "
                  f"{arguments.batches} batches per size")
            print("batch size   writer CPU per publish (median, p10, fastest)   wall per batch")
            with hub.db.engine.connect() as connection:
                for size in sizes:
                    cpu, wall = [], []
                    for _ in range(arguments.batches):
                        batch = [
                            QueuedPublish(next(queued), known_size=0, token=i)
                            for i in range(size)
                        ]
                        started, started_cpu = time.perf_counter(), time.thread_time()
                        results = writer.write_batch(connection, batch)
                        cpu.append(time.thread_time() - started_cpu)
                        wall.append(time.perf_counter() - started)
                        failed = [r for _, r in results if not isinstance(r, Receipt)]
                        if failed:
                            raise RuntimeError(f"a publish failed: {failed[0]!r}")
                    p10 = statistics.quantiles(cpu, n=10)[0] if len(cpu) > 1 else cpu[0]
                    print(
                        f"{size:10d}   {1000 * statistics.median(cpu) / size:17.3f} ms"
                        f" {1000 * p10 / size:8.3f} ms {1000 * min(cpu) / size:8.3f} ms"
                        f"   {1000 * statistics.median(wall):11.2f} ms"
                    )
        finally:
            hub.stop(grace=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
