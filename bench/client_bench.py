"""The client library's own cost per publish and per feed event: CPU and fsyncs (issue 12, 3).

A hub (SQLite, loopback mTLS) runs in its own process; this process is the client. It publishes
``--publishes`` alerts through one ``Client``, from 1 thread and then from ``--threads``
threads, then through one ``AsyncClient`` from ``--threads`` tasks, then reads the feed of the
partner with ``subscribe()`` and counts, per publish and per event, the CPU time of this process
(``time.process_time``), the part of it spent sealing (``seal_alert``, timed on the calling
thread's CPU clock) and in the library's state writes (the journal's and the state files'
methods, timed the same way), and the ``os.fsync`` and ``os.fdatasync`` calls the library made
(counted by wrapping both in this process). "Beyond
sealing" is the process's CPU less the sealing: verification of receipts and proofs, state
writes, gRPC's own threads.

    .venv/bin/python bench/client_bench.py [--publishes 400] [--threads 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
sealing_cpu = 0.0
_real_fsync = os.fsync
_real_fdatasync = os.fdatasync
_count_lock = threading.Lock()


def _counting_fsync(fd: int) -> None:
    global fsyncs
    with _count_lock:
        fsyncs += 1
    _real_fsync(fd)


def _counting_fdatasync(fd: int) -> None:
    global fsyncs
    with _count_lock:
        fsyncs += 1
    _real_fdatasync(fd)


def timed_sealing(seal: Callable[..., Any]) -> Callable[..., Any]:
    def seal_alert(*args: Any, **kwargs: Any) -> Any:
        global sealing_cpu
        start = time.thread_time()
        try:
            return seal(*args, **kwargs)
        finally:
            spent = time.thread_time() - start
            with _count_lock:
                sealing_cpu += spent

    return seal_alert


state_cpu = 0.0
_in_state = threading.local()


def timed_state(write: Callable[..., Any]) -> Callable[..., Any]:
    """``write`` (a state write of the library), its thread CPU added to ``state_cpu`` (once
    when one state write calls another)."""

    def timed(*args: Any, **kwargs: Any) -> Any:
        global state_cpu
        if getattr(_in_state, "depth", 0):
            return write(*args, **kwargs)
        _in_state.depth = 1
        start = time.thread_time()
        try:
            return write(*args, **kwargs)
        finally:
            _in_state.depth = 0
            spent = time.thread_time() - start
            with _count_lock:
                state_cpu += spent

    return timed


def time_state_writes() -> None:
    """Count the thread CPU of every state write the library makes per publish and event:
    the journal's (where there is one), and the state files'."""
    from exchange_client._internal import state
    from exchange_client._internal.audit import checkpoint_store

    journal = getattr(state, "Journal", None)
    for owner, names in (
        (
            journal,
            ("put_outbox", "forget_outbox", "file_outbox", "put_checkpoint", "put_cursor", "sync"),
        ),
        (state.ClientState, ("save_outbox", "remove_outbox", "record_published")),
        (state.CursorLock, ("commit", "release")),
        (checkpoint_store.CheckpointStore, ("save",)),
    ):
        for name in names:
            if owner is not None and hasattr(owner, name):
                setattr(owner, name, timed_state(getattr(owner, name)))


def measure(label: str, count: int, work: Callable[[], None]) -> str:
    global fsyncs, sealing_cpu, state_cpu
    fsyncs, sealing_cpu, state_cpu = 0, 0.0, 0.0
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return (
        f"| {label} | {count} | {cpu / count * 1000:.2f} ms | "
        f"{sealing_cpu / count * 1000:.2f} ms | {(cpu - sealing_cpu) / count * 1000:.2f} ms | "
        f"{state_cpu / count * 1000:.3f} ms | {fsyncs / count:.2f} | {count / wall:.0f}/s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publishes", type=int, default=400)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    from exchange.hub.init import init_exchange
    from exchange_client import AsyncClient, Client, Draft, Profile
    from exchange_client._internal import publishing

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
    load = os.getloadavg()
    os.fsync = _counting_fsync
    os.fdatasync = _counting_fdatasync
    publishing.seal_alert = timed_sealing(publishing.seal_alert)
    time_state_writes()
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
        with asyncio.Runner() as runner:
            profile = Profile.load(directory / "agencies" / "agency-a")

            async def connect() -> AsyncClient:
                client = AsyncClient(profile, hub=target)
                await client.publish(draft)  # first contact, outside the measure
                return client

            async_client = runner.run(connect())

            async def tasks() -> None:
                each = args.publishes // args.threads

                async def publish_some() -> None:
                    for _ in range(each):
                        await async_client.publish(draft)

                await asyncio.gather(*(publish_some() for _ in range(args.threads)))

            label = f"publish, {args.threads} tasks through one AsyncClient"
            rows.append(measure(label, per_thread, lambda: runner.run(tasks())))
            runner.run(async_client.close())
        events = 1 + args.publishes + 2 * per_thread + 1
        with Client(Profile.load(directory / "agencies" / "agency-b"), hub=target) as reader:

            def watch() -> None:
                with reader.subscribe(after=0) as subscription:
                    for seen, _ in enumerate(subscription, start=1):
                        if seen == events:
                            break

            rows.append(measure("watch (subscribe), per event", events, watch))
    finally:
        os.fsync = _real_fsync
        os.fdatasync = _real_fdatasync
        hub.stdin.write("\n")
        hub.stdin.close()
        hub.wait(timeout=30)
    print(
        f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; after: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    print(
        "| | operations | client CPU per operation | of it sealing | beyond sealing "
        "| of it state writes | fsyncs per operation | rate |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
