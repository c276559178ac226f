"""The client library's own cost per publish and per feed event: CPU and fsyncs (issue 12, 3).

A hub (SQLite, loopback mTLS) runs in its own process; this process is the client. It publishes
``--publishes`` alerts through one ``Client``, from 1 thread and then from ``--threads``
threads, then reads the feed of the partner with ``subscribe()`` and counts, per publish and per
event, the CPU time of this process (``time.process_time``) and the ``os.fsync`` calls the
library made (counted by wrapping ``os.fsync`` in this process).

    .venv/bin/python bench/client_bench.py [--publishes 400] [--threads 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

HUB_SCRIPT = """
import dataclasses, sys, time
from exchange.hub.app import Hub
from exchange.hub.config import HubConfig
config = HubConfig.from_file(sys.argv[1] + "/hub.toml").with_overrides(
    database_url="sqlite:///" + sys.argv[1] + "/hub.db", listen="127.0.0.1:0")
hub = Hub(dataclasses.replace(config, heartbeat_interval_seconds=1.0))
hub.prepare(); hub.start()
print(hub.port, flush=True)
sys.stdin.readline()
hub.stop(grace=0)
"""

DRAFT = {
    "kind": "GENERAL",
    "title": "bench",
    "items": [
        {
            "id": "n",
            "policy": {"audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "AMBER"},
            "note": {"text": "x" * 1000, "language": "en"},
        }
    ],
}

fsyncs = 0
_real_fsync = os.fsync
_count_lock = threading.Lock()


def _counting_fsync(fd: int) -> None:
    global fsyncs
    with _count_lock:
        fsyncs += 1
    _real_fsync(fd)


def measure(label: str, count: int, work: Callable[[], None]) -> str:
    global fsyncs
    fsyncs = 0
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return (
        f"| {label} | {count} | {cpu / count * 1000:.2f} ms | {fsyncs / count:.2f} | "
        f"{count / wall:.0f}/s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publishes", type=int, default=400)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    from exchange.hub.init import init_exchange
    from exchange_client import Client, Draft, Profile

    directory = Path(tempfile.mkdtemp()) / "exchange"
    init_exchange(directory, ["agency-a", "agency-b"], listen="127.0.0.1:50051")
    hub = subprocess.Popen(
        [sys.executable, "-c", HUB_SCRIPT, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert hub.stdout is not None and hub.stdin is not None
    target = f"127.0.0.1:{hub.stdout.readline().strip()}"
    os.fsync = _counting_fsync
    rows = []
    try:
        draft = Draft.from_dict(DRAFT)
        with Client(Profile.load(directory / "agencies" / "agency-a"), hub=target) as client:
            client.publish(draft)  # first contact: keys and the first checkpoint

            def serial() -> None:
                for _ in range(args.publishes):
                    client.publish(draft)

            def threaded() -> None:
                each = args.publishes // args.threads

                def publish_some() -> None:
                    for _ in range(each):
                        client.publish(draft)

                threads = [threading.Thread(target=publish_some) for _ in range(args.threads)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()

            rows.append(measure("publish, 1 thread", args.publishes, serial))
            per_thread = args.publishes // args.threads * args.threads
            rows.append(measure(f"publish, {args.threads} threads", per_thread, threaded))
        events = 1 + 2 * args.publishes // args.threads * args.threads
        with Client(Profile.load(directory / "agencies" / "agency-b"), hub=target) as reader:

            def watch() -> None:
                with reader.subscribe(after=0) as subscription:
                    for seen, _ in enumerate(subscription, start=1):
                        if seen == events:
                            break

            rows.append(measure("watch (subscribe), per event", events, watch))
    finally:
        os.fsync = _real_fsync
        hub.stdin.write("\n")
        hub.stdin.close()
        hub.wait(timeout=30)
    print("| | operations | client CPU per operation | fsyncs per operation | rate |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
