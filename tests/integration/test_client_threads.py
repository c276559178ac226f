"""One ``Client`` shared by many threads, and one profile shared by many processes (issue 9).

Sixteen threads publish, open and watch through one client while a partner publishes to it:
no call fails, every receipt is proven (its alert opens with the acknowledged manifest, and the
whole log verifies at the end), and the trusted checkpoint — in memory and on disk — only ever
moves forward. Then the same with four processes sharing one profile.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exchange.crypto.notes import Checkpoint
from exchange_client import Client, ClientClosedError, Draft, Profile, Receipt
from exchange_client._internal.audit import Auditor, CheckpointStore, checkpoint_text
from exchange_client._internal.calls import Steps
from tests.conftest import fresh_exchange, wall_clock_hub

PUBLISHERS = 11
PUBLISHES_EACH = 120
OPENERS = 2
PROCESSES = 4
PUBLISHES_PER_PROCESS = 60


def draft(title: str, audience: list[str]) -> Draft:
    return Draft.from_dict(
        {
            "kind": "GENERAL",
            "title": title,
            "items": [
                {
                    "id": "n",
                    "policy": {"audience": audience, "release": "IMMEDIATE", "tlp": "AMBER"},
                    "note": {"text": title, "language": "en"},
                }
            ],
        }
    )


@pytest.fixture
def exchange_dir(tmp_path: Path) -> Path:
    return fresh_exchange(tmp_path)


@pytest.fixture
def hub(exchange_dir: Path, tmp_path: Path) -> Iterator[object]:
    # The client is under test here, not the store: one database (SQLite) is enough.
    with wall_clock_hub(exchange_dir, tmp_path, heartbeat_seconds=0.1) as hub:
        yield hub


def client_for(exchange_dir: Path, agency: str, hub: object) -> Client:
    profile = Profile.load(exchange_dir / "agencies" / agency)
    return Client(profile, hub=f"127.0.0.1:{hub.port}", retry_seconds=0)  # type: ignore[attr-defined]


def stored_size(profile_dir: Path) -> int:
    """The size of the checkpoint saved in the profile (0 before the first): the larger of
    ``checkpoint.json``'s and the one the processes' journals hold."""
    note = CheckpointStore(profile_dir / "state").load()
    return 0 if note is None else Checkpoint.from_text(checkpoint_text(note)).size


class Run:
    """What the threads of one test record: failures, receipts, sizes seen in order."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.receipts: list[Receipt] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def thread(self, work: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                work()
            except BaseException as e:  # noqa: BLE001 - the test fails on any of them, below
                with self.lock:
                    self.errors.append(e)
                self.stop.set()

        return threading.Thread(target=guarded)


@pytest.mark.slow
def test_sixteen_threads_share_one_client(exchange_dir: Path, hub: object) -> None:
    shared = client_for(exchange_dir, "agency-a", hub)
    partner = client_for(exchange_dir, "agency-b", hub)
    profile_dir = exchange_dir / "agencies" / "agency-a"
    run = Run()
    published_to_a: list[str] = []
    opened = 0
    events_seen: list[int] = []
    sizes_in_memory: list[int] = []
    sizes_on_disk: list[int] = []

    def publish() -> None:
        for n in range(PUBLISHES_EACH):
            if run.stop.is_set():
                return
            receipt = shared.publish(draft(f"shared {n}", ["agency-b"]))
            with run.lock:
                run.receipts.append(receipt)

    def show() -> None:
        nonlocal opened
        chooser = random.Random(7)
        while not run.stop.is_set():
            with run.lock:
                mine = list(run.receipts[-50:])
                theirs = list(published_to_a[-20:])
            if mine:
                receipt = chooser.choice(mine)
                alert = shared.open(receipt.alert_id, originator="agency-a")
                assert alert.manifest_hash == receipt.manifest_hash
            if theirs:
                alert = shared.open(chooser.choice(theirs), originator="agency-b")
                assert alert.originator == "agency-b"
            with run.lock:
                opened += 1

    def watch() -> None:
        with shared.subscribe(after=0, heartbeats=True) as subscription:
            for event in subscription:
                if not event.is_heartbeat:
                    events_seen.append(event.sequence)
                if run.stop.is_set():
                    break

    def poll() -> None:
        while not run.stop.is_set():
            shared.events(after=0, limit=20)

    def watch_the_checkpoint() -> None:
        while not run.stop.is_set():
            trusted = shared.auditor.trusted
            sizes_in_memory.append(0 if trusted is None else trusted.checkpoint.size)
            sizes_on_disk.append(stored_size(profile_dir))

    def partner_publishes() -> None:
        while not run.stop.is_set():
            receipt = partner.publish(draft("to a", ["agency-a"]))
            with run.lock:
                published_to_a.append(receipt.alert_id)

    publishers = [run.thread(publish) for _ in range(PUBLISHERS)]
    others = [
        *(run.thread(show) for _ in range(OPENERS)),
        run.thread(watch),
        run.thread(poll),
        run.thread(watch_the_checkpoint),
    ]
    assert len(publishers) + len(others) == 16
    helper = run.thread(partner_publishes)
    for thread in [*publishers, *others, helper]:
        thread.start()
    for thread in publishers:
        thread.join()
    run.stop.set()
    for thread in [*others, helper]:
        thread.join()

    assert run.errors == []
    assert len(run.receipts) == PUBLISHERS * PUBLISHES_EACH
    assert opened > 0 and events_seen, "the readers ran alongside the publishers"
    assert events_seen == list(range(1, len(events_seen) + 1))
    assert sizes_in_memory == sorted(sizes_in_memory)
    assert sizes_on_disk == sorted(sizes_on_disk)
    assert shared.cursor() == events_seen[-1]
    # Every receipt: its alert opens with the manifest the hub acknowledged, proven in the log,
    # and the whole log replays under the final checkpoint.
    for receipt in run.receipts:
        alert = shared.open(receipt.alert_id, originator="agency-a")
        assert (alert.manifest_hash, alert.version) == (receipt.manifest_hash, 1)
    report = shared.auditor.verify()
    assert report.ok, report.failures
    trusted = shared.auditor.trusted
    assert trusted is not None and stored_size(profile_dir) == trusted.checkpoint.size
    assert len({r.log_index for r in run.receipts}) == len(run.receipts)
    shared.close()
    partner.close()


PROCESS_SCRIPT = """
import json, sys
from pathlib import Path
from exchange_client import Client, Draft, Profile

profile_dir, hub, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
draft = Draft.from_dict({"kind": "GENERAL", "title": "p", "items": [{"id": "n", "policy": {
    "audience": ["agency-b"], "release": "IMMEDIATE", "tlp": "AMBER"},
    "note": {"text": "p", "language": "en"}}]})
sizes = []
with Client(Profile.load(profile_dir), hub=hub, retry_seconds=0) as client:
    for _ in range(count):
        receipt = client.publish(draft)
        opened = client.open(receipt.alert_id, originator="agency-a")
        assert opened.manifest_hash == receipt.manifest_hash
        sizes.append(client.auditor.trusted.checkpoint.size)
        print(json.dumps({"alert_id": receipt.alert_id, "hash": receipt.manifest_hash.hex(),
                          "log_index": receipt.log_index}), flush=True)
print(json.dumps({"sizes": sizes}), flush=True)
"""


@pytest.mark.slow
def test_four_processes_share_one_profile(exchange_dir: Path, hub: object) -> None:
    profile_dir = exchange_dir / "agencies" / "agency-a"
    target = f"127.0.0.1:{hub.port}"  # type: ignore[attr-defined]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                PROCESS_SCRIPT,
                str(profile_dir),
                target,
                str(PUBLISHES_PER_PROCESS),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    sizes_on_disk = []
    while any(p.poll() is None for p in processes):
        sizes_on_disk.append(stored_size(profile_dir))
    outputs = [p.communicate(timeout=60) for p in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    receipts = []
    for stdout, _ in outputs:
        lines = [json.loads(line) for line in stdout.splitlines()]
        *published, last = lines
        assert last["sizes"] == sorted(last["sizes"]), "a process's trusted checkpoint went back"
        receipts.extend(published)
    assert len(receipts) == PROCESSES * PUBLISHES_PER_PROCESS
    assert sizes_on_disk == sorted(sizes_on_disk)
    with client_for(exchange_dir, "agency-a", hub) as client:
        for receipt in receipts:
            alert = client.open(receipt["alert_id"], originator="agency-a")
            assert alert.manifest_hash.hex() == receipt["hash"]
        report = client.auditor.verify()
        assert report.ok, report.failures


def test_threads_ask_for_consistency_proofs_one_at_a_time(
    exchange_dir: Path, hub: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Receipts of threads publishing side by side name checkpoints the trusted one has moved
    past; the proofs linking them are asked for one at a time (a proof asked for while another
    thread's moved the trusted checkpoint on would be asked for again), and every receipt is
    still proven."""
    asking = 0
    most = 0
    count = threading.Lock()
    consistency_proof_steps = Auditor.consistency_proof_steps

    def observed(self: Auditor, first: int, second: int) -> Steps[list[bytes]]:
        nonlocal asking, most
        if min(first, second) == 0 or first == second:  # no proof to ask for
            return (yield from consistency_proof_steps(self, first, second))
        with count:
            asking += 1
            most = max(most, asking)
        try:
            return (yield from consistency_proof_steps(self, first, second))
        finally:
            with count:
                asking -= 1

    monkeypatch.setattr(Auditor, "consistency_proof_steps", observed)
    run = Run()
    with client_for(exchange_dir, "agency-a", hub) as shared:
        shared.publish(draft("first", ["agency-b"]))

        def publish_some() -> None:
            for n in range(15):
                receipt = shared.publish(draft(f"t{n}", ["agency-b"]))
                with run.lock:
                    run.receipts.append(receipt)

        threads = [run.thread(publish_some) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not run.errors, run.errors
    assert len(run.receipts) == 8 * 15
    assert most == 1


# --- concurrent misuse: a clear error, never a damaged state file ----------------------------------


def state_files(profile_dir: Path) -> dict[str, bytes]:
    state = profile_dir / "state"
    return {
        str(path.relative_to(state)): path.read_bytes()
        for path in sorted(state.rglob("*"))
        if path.is_file() and not path.name.endswith(".lock")
    }


def test_a_closed_client_refuses_every_call_and_writes_nothing(
    exchange_dir: Path, hub: object
) -> None:
    profile_dir = exchange_dir / "agencies" / "agency-a"
    client = client_for(exchange_dir, "agency-a", hub)
    receipt = client.publish(draft("before", ["agency-b"]))
    client.close()
    client.close()  # idempotent
    before = state_files(profile_dir)
    calls: dict[str, Callable[[], object]] = {
        "publish": lambda: client.publish(draft("after", ["agency-b"])),
        "open": lambda: client.open(receipt.alert_id, originator="agency-a"),
        "inbox": client.inbox,
        "events": client.events,
        "commit_cursor": lambda: client.commit_cursor(5),
        "subscribe": lambda: next(client.subscribe(give_up_after=0)),
        "flush_outbox": client.flush_outbox,
        "audit": client.auditor.follow,
    }
    for name, call in calls.items():
        with pytest.raises(ClientClosedError, match="this client is closed") as refused:
            call()
        assert refused.value.reason == "CLIENT_CLOSED", name
    assert state_files(profile_dir) == before


def in_forked_child(work: Callable[[], object]) -> str:
    """Run ``work`` in a forked child; what it raised (or ``"no error"``), as text."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, and leave without running the parent's clean-up
        os.close(read)
        try:
            work()
            result = "no error"
        except BaseException as e:  # noqa: BLE001 - reported to the parent, which checks it
            result = f"{type(e).__name__} {getattr(e, 'reason', '')}: {e}"
        os.write(write, result.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        result = pipe.read()
    os.waitpid(pid, 0)
    return result


@pytest.mark.slow
def test_a_client_used_in_a_forked_child_refuses_and_the_parent_goes_on(
    exchange_dir: Path, hub: object, request: pytest.FixtureRequest
) -> None:
    if os.environ.get("GRPC_ENABLE_FORK_SUPPORT") != "1":
        # Without its fork support (read when grpc is imported) grpc aborts a forked child at
        # a moment of its choosing: run this test again in an interpreter that has it on.
        again = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", request.node.nodeid],
            check=False,
            env={**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "1"},
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert "1 passed" in again.stdout
        return
    profile_dir = exchange_dir / "agencies" / "agency-a"
    partner = client_for(exchange_dir, "agency-b", hub)
    partner.publish(draft("to a", ["agency-a"]))
    with client_for(exchange_dir, "agency-a", hub) as client:
        client.publish(draft("before", ["agency-b"]))
        subscription = client.subscribe(after=0)
        first = next(subscription)
        before = state_files(profile_dir)
        for work in (
            lambda: client.publish(draft("in the child", ["agency-b"])),
            client.inbox,
            lambda: client.commit_cursor(first.sequence),
            lambda: next(subscription),
            subscription.close,
        ):
            result = in_forked_child(work)
            assert result.startswith("ClientForkedError CLIENT_FORKED: this "), result
            assert "create a new client in the child process" in result
        assert state_files(profile_dir) == before
        # The parent's stream, cursor lock and channel are untouched.
        partner.publish(draft("to a, again", ["agency-a"]))
        second = next(subscription)
        assert second.sequence == first.sequence + 1
        subscription.close()
        assert client.cursor() == second.sequence
        client.publish(draft("after", ["agency-b"]))
    partner.close()
