"""Real processes for the crash tests: hubs (``exchange-hub serve``), publishers, a private
PostgreSQL cluster, and the no-loss check over a recipient's feed."""

from __future__ import annotations

import dataclasses
import glob
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from exchange.hub.health import check_health
from exchange_client import Client, ExchangeError, Profile

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PUBLISHERS = ("pub-1", "pub-2", "pub-3", "pub-4")
RECIPIENT = "recipient"
AUDITOR = "auditor"
AGENCIES = (*PUBLISHERS, RECIPIENT, AUDITOR)


def free_port() -> int:
    """A port free now, kept by the test for every restart of one hub (clients dial it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


class HubProcess:
    """``exchange-hub serve`` on a fixed port (kept across restarts) with a health port."""

    def __init__(self, config: Path, *, database_url: str, port: int, log: Path) -> None:
        self.config = config
        self.database_url = database_url
        self.port = port
        self.log = log
        self.health_port: int | None = None
        self.process: subprocess.Popen[str] | None = None
        self.starts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log = self.log.open("a")
        self.process = subprocess.Popen(
            [str(BIN / "exchange-hub"), "serve", "--config", str(self.config),
             "--database", self.database_url, "--listen", self.address,
             "--health-listen", "127.0.0.1:0", "--log-format", "json"],
            stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT,
        )
        log.close()
        lines: list[str] = []
        ready = threading.Event()

        def read(stream: Sequence[str]) -> None:
            for line in stream:
                lines.append(line)
                if line.startswith("health on"):
                    ready.set()
            ready.set()  # the process ended

        assert self.process.stdout is not None
        threading.Thread(target=read, args=(self.process.stdout,), daemon=True).start()
        if not ready.wait(120) or self.process.poll() is not None:
            raise AssertionError(f"the hub did not start; its log:\n{self.log.read_text()[-3000:]}")
        health = next(line for line in lines if line.startswith("health on"))
        self.health_port = int(health.rsplit(":", 1)[1])

    def kill(self) -> None:
        """``kill -9``: no shutdown of any kind."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)

    def log_lines(self) -> list[dict[str, object]]:
        """The hub's log (``--log-format json``): every line must be one JSON object."""
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def health(self) -> str:
        assert self.health_port is not None
        try:
            status = check_health(f"127.0.0.1:{self.health_port}", timeout=2)
        except ExchangeError:
            return "UNREACHABLE"
        return "SERVING" if status == 1 else "NOT_SERVING"


@dataclasses.dataclass
class Publishers:
    """The four publishing processes and the files they report to."""

    processes: list[subprocess.Popen[bytes]]
    outputs: list[Path]

    def lines(self) -> list[dict[str, str]]:
        found = []
        for path in self.outputs:
            if path.exists():
                for line in path.read_text().splitlines():
                    if line.endswith("}"):  # a line being written is not read half
                        found.append(json.loads(line))
        return found

    def acknowledged(self) -> list[str]:
        return [line["acknowledged"] for line in self.lines() if "acknowledged" in line]

    def tried(self) -> int:
        return sum(1 for line in self.lines() if "tried" in line)

    def kill(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait(30)

    def wait(self, timeout: float = 600) -> None:
        for process in self.processes:
            assert process.wait(timeout) == 0, "a publisher failed; see its output file"


def start_publishers(
    exchange_dir: Path, hubs: Sequence[str], count: int, out_dir: Path
) -> Publishers:
    """Four processes, each publishing ``count`` alerts to ``recipient`` through ``hubs[i % n]``."""
    processes, outputs = [], []
    for index, agency in enumerate(PUBLISHERS):
        output = out_dir / f"{agency}.jsonl"
        outputs.append(output)
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.crash.publisher",
                 str(exchange_dir / "agencies" / agency), hubs[index % len(hubs)],
                 str(count), str(output)],
                cwd=ROOT, stderr=(out_dir / f"{agency}.stderr").open("w"),
            )
        )
    return Publishers(processes, outputs)


def client_for(exchange_dir: Path, agency: str, hub: str, state_dir: Path) -> Client:
    profile = dataclasses.replace(
        Profile.load(exchange_dir / "agencies" / agency), state_dir=state_dir
    )
    return Client(profile, hub=hub)


@dataclasses.dataclass(frozen=True)
class Figures:
    tried: int
    acknowledged: int
    found: int
    duplicated: int
    feed_events: int
    from_outbox: int
    """Publishes the library gave up on while the hub was away, resent from its outbox."""

    def report(self, title: str) -> str:
        return (
            f"{title}: tried {self.tried}, acknowledged {self.acknowledged} "
            f"({self.from_outbox} of them resent from the outbox), found {self.found}, "
            f"duplicated {self.duplicated}; feed sequences 1..{self.feed_events} without a gap"
        )


def read_feed(client: Client) -> list[tuple[int, str]]:
    """Every (sequence, alert id) of the client's feed, polled (each page proven by the client)."""
    events: list[tuple[int, str]] = []
    after = 0
    while page := client.events(after, limit=500):
        events += [(event.sequence, event.alert_id) for event in page]
        after = page[-1].sequence
    return events


def check_no_loss(publishers: Publishers, feed: Sequence[tuple[int, str]]) -> Figures:
    """Every acknowledged publish is in the feed exactly once; the feed's sequences are 1..n."""
    sequences = [sequence for sequence, _ in feed]
    assert sequences == list(range(1, len(feed) + 1)), "a feed sequence is skipped or repeated"
    in_feed = Counter(alert_id for _, alert_id in feed)
    acknowledged = set(publishers.acknowledged())
    figures = Figures(
        tried=publishers.tried(),
        acknowledged=len(acknowledged),
        found=sum(1 for alert_id in acknowledged if in_feed[alert_id] >= 1),
        duplicated=sum(1 for count in in_feed.values() if count > 1),
        feed_events=len(feed),
        from_outbox=sum(1 for line in publishers.lines() if line.get("tag") == "outbox"),
    )
    missing = sorted(alert_id for alert_id in acknowledged if in_feed[alert_id] == 0)
    assert not missing, f"acknowledged but not in the feed: {missing[:5]}"
    assert figures.duplicated == 0
    return figures


def exchange_cli(
    exchange_dir: Path, agency: str, hub: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """The operator CLI as the agency (its state in the profile's ``state/``)."""
    return subprocess.run(
        [str(BIN / "exchange"), "--profile", str(exchange_dir / "agencies" / agency),
         "--hub", hub, *args],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )


REPORTED: list[str] = []
"""Figures of this run, printed at the end of the test run (``tests/crash/conftest.py``)."""


def report(line: str) -> None:
    """Figures into the test output: now (seen with ``-s``) and in the run's closing summary."""
    print(line, flush=True)
    REPORTED.append(line)


# --- a private PostgreSQL cluster ------------------------------------------------------------


class PrivateCluster:
    """A PostgreSQL cluster of the test's own (never the shared server), run as ``postgres``."""

    def __init__(self) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        assert binaries, "PostgreSQL's server binaries are missing (/usr/lib/postgresql/*/bin)"
        self._bin = Path(binaries[-1]).parent
        self.directory = Path(tempfile.mkdtemp(prefix="exchange-crash-pg-"))
        shutil.chown(self.directory, "postgres", "postgres")
        self.data = self.directory / "data"
        self.port = free_port()
        self._as_postgres("initdb", "--pgdata", str(self.data), "--auth", "trust",
                          "--username", "postgres", "--no-sync", "--encoding", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, tool: str, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self._bin / tool), *args],
            check=True, capture_output=True, timeout=120, cwd=self.directory,
        )

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.directory} -c fsync=on")
        self._as_postgres("pg_ctl", "--pgdata", str(self.data), "--log",
                          str(self.directory / "server.log"), "--options", options,
                          "--wait", "start")

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres("pg_ctl", "--pgdata", str(self.data), "--mode", mode, "--wait", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    cluster = PrivateCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()

