"""Publish throughput and publish→delivery latency, measured against a raw gRPC echo.

Everything runs on loopback with mutual TLS, in separate processes as in a deployment: the hub
(``exchange-hub serve`` from an ``exchange-hub init`` directory made for the run, on a temporary
SQLite file unless ``--database`` names another), an
echo server built like the hub's server with the hub's certificate (``bench/_echo.py``), one
subscriber process holding agency-b's ``Subscribe`` stream through the client library, and N
client processes, each with its own mutual-TLS channels as agency-a.  Sealing is CPU work, so
the clients are processes, not threads.

Each round runs four phases back to back, so that the echo and the exchange see the same machine
state:

1. echo throughput: N clients call the echo in a closed loop with a payload as large as a sealed
   publish request;
2. publish throughput: N clients publish through ``exchange_client.Client.publish`` in a closed
   loop (draft → seal → sign → outbox → send → receipt), alerts of ``--items`` notes of
   ``--item-bytes`` each, to agency-b; ``--client core`` seals with the core's functions and
   sends one Publish call instead, to show what the library adds;
3. echo latency: one client, closed loop;
4. publish latency: one publisher, closed loop; each alert's latency runs from just before
   ``publish()`` is called (so sealing counts) to the moment agency-b's subscriber is handed
   the feed event.  Both ends read ``time.monotonic()``, one system-wide clock on Linux.

Results are the medians over rounds, and the ratios the project sets targets for: publish
throughput ≥ 25 % of the echo's, publish→delivery p50 ≤ 5 × the echo's p50.

Run from the repository root::

    .venv/bin/python bench/publish_bench.py --output markdown
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import multiprocessing
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import _echo

if TYPE_CHECKING:
    from exchange.alerts.draft import Draft
    from exchange_client import Profile

PUBLISHER = "agency-a"
SUBSCRIBER = "agency-b"
THROUGHPUT_TARGET = 0.25
"""Publish throughput must be at least this fraction of the echo's."""
LATENCY_TARGET = 5.0
"""Publish→delivery p50 must be at most this multiple of the echo's p50."""
START_MARGIN_SECONDS = 0.5
"""Lead time for every process of a phase to receive its order and start together."""
STARTUP_TIMEOUT_SECONDS = 120.0
DELIVERY_TIMEOUT_SECONDS = 30.0
BENCH_DIR = Path(__file__).resolve().parent

PhaseKind = Literal["echo", "publish"]
ClientKind = Literal["library", "core"]
CLIENT_DESCRIPTIONS: Mapping[ClientKind, str] = {
    "library": "`exchange_client.Client.publish`",
    "core": "the core's `seal_alert` and one raw Publish call (`--client core`)",
}


# --- what is measured ----------------------------------------------------------------------------


def note_text(index: int, size: int) -> str:
    """A readable English note of exactly ``size`` characters."""
    sentence = (
        f"Item {index}: container declared as industrial cleaning agent, suspected precursor; "
        "inspect before customs clearance. "
    )
    return (sentence * (size // len(sentence) + 1))[:size]


def bench_draft(items: int, item_bytes: int) -> dict[str, object]:
    """The alert every publisher sends: ``items`` notes of ``item_bytes`` each, to agency-b."""
    return {
        "kind": "SHIPMENT",
        "grading": {"source": "B", "information": "2"},
        "title": "Benchmark shipment alert",
        "items": [
            {
                "id": f"n{index}",
                "policy": {"audience": [SUBSCRIBER], "release": "IMMEDIATE", "tlp": "AMBER"},
                "note": {"text": note_text(index, item_bytes), "language": "en"},
            }
            for index in range(items)
        ],
    }


def sealed_request_size(exchange_dir: Path, draft_data: Mapping[str, object]) -> int:
    """Bytes of the publish request the client sends for the draft: the echo's payload size."""
    from exchange.alerts.draft import Draft
    from exchange.statements.codec import encode
    from exchange.statements.sealing import PlainItem, seal_alert, summary_item
    from exchange_client import Profile

    publisher = Profile.load(exchange_dir / "agencies" / PUBLISHER)
    subscriber = Profile.load(exchange_dir / "agencies" / SUBSCRIBER)
    draft = Draft.from_dict(draft_data)
    items = [PlainItem(item_id=i.id, policy=i.policy, payload=i.payload) for i in draft.items]
    sealed = seal_alert(
        originator=PUBLISHER,
        alert_id="00000000-0000-4000-8000-000000000000",
        version=1,
        items=[summary_item(draft.summary(), items), *items],
        signing_key=publisher.signing_key,
        own_key=publisher.decryption_key.public_key,
        recipient_keys={SUBSCRIBER: subscriber.decryption_key.public_key},
        created_at=datetime.now(UTC),
    )
    return len(encode(sealed.request))


# --- client processes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseOrder:
    """Tells a client process what to run, from when and for how long (monotonic seconds)."""

    kind: PhaseKind
    start_at: float
    duration: float


@dataclass
class PhaseReport:
    """What one client process did in a phase.

    ``completed`` counts calls that finished before the phase ended; ``latencies`` holds every
    call's duration; ``sent`` holds, for publishes, each alert id with the time just before its
    ``publish()`` began (the call in flight at the end is completed and recorded too).
    """

    worker: int
    completed: int = 0
    latencies: list[float] = field(default_factory=list)
    sent: list[tuple[str, float]] = field(default_factory=list)
    error: str = ""


@dataclass(frozen=True)
class ClientSetup:
    """What every client process needs to connect, as plain picklable data."""

    exchange_dir: Path
    hub_target: str
    echo_target: str
    payload_size: int
    draft_data: Mapping[str, object]
    client: ClientKind


def _wait_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _run_echo_phase(
    call: Callable[[bytes], bytes], payload: bytes, order: PhaseOrder, report: PhaseReport
) -> None:
    _wait_until(order.start_at)
    end = order.start_at + order.duration
    while (started := time.monotonic()) < end:
        answer = call(payload)
        finished = time.monotonic()
        if len(answer) != len(payload):
            raise RuntimeError(f"echo returned {len(answer)} bytes for {len(payload)}")
        report.latencies.append(finished - started)
        if finished <= end:
            report.completed += 1


def _run_publish_phase(publish: Callable[[], str], order: PhaseOrder, report: PhaseReport) -> None:
    _wait_until(order.start_at)
    end = order.start_at + order.duration
    while (started := time.monotonic()) < end:
        alert_id = publish()
        finished = time.monotonic()
        report.sent.append((alert_id, started))
        report.latencies.append(finished - started)
        if finished <= end:
            report.completed += 1


def core_publisher(profile: Profile, hub_target: str, draft: Draft) -> Callable[[], str]:
    """Publishing with the core's sealing functions only, as the integration tests do.

    Partner keys are fetched and verified against the profile's CAs once, not per publish, and
    nothing is written to the profile's state directory: what remains is sealing, one Publish
    call and the hub.  Compared with the client library, it shows what the library adds.
    """
    from exchange.statements.agency_keys import AgencyKeys
    from exchange.statements.codec import envelope_from_proto
    from exchange.statements.sealing import PlainItem, seal_alert, summary_item
    from exchange.v1 import alerts_pb2_grpc, directory_pb2, directory_pb2_grpc

    channel = _echo.mutual_tls_channel(
        hub_target,
        root_pem=profile.hub_ca_certificate_pem,
        key_pem=profile.tls_key_pem,
        certificate_pem=profile.tls_certificate_pem,
    )
    directory = directory_pb2_grpc.DirectoryServiceStub(channel)
    alerts = alerts_pb2_grpc.AlertServiceStub(channel)
    now = datetime.now(UTC)
    records = directory.ListAgencies(directory_pb2.ListAgenciesRequest(), timeout=30).agencies
    recipient_keys = {
        record.agency_id: AgencyKeys.verify(
            envelope_from_proto(record.keys[-1]), profile.partner_cas[record.agency_id], now=now
        ).encryption_key
        for record in records
        if record.agency_id != profile.agency_id
    }
    items = [PlainItem(item_id=i.id, policy=i.policy, payload=i.payload) for i in draft.items]
    plain = [summary_item(draft.summary(), items), *items]

    def publish() -> str:
        sealed = seal_alert(
            originator=profile.agency_id,
            alert_id=str(uuid.uuid4()),
            version=1,
            items=plain,
            signing_key=profile.signing_key,
            own_key=profile.decryption_key.public_key,
            recipient_keys=recipient_keys,
            created_at=datetime.now(UTC),
        )
        alerts.Publish(sealed.request, timeout=30)
        return sealed.manifest.alert_id

    return publish


def client_process_main(
    worker: int,
    setup: ClientSetup,
    orders: multiprocessing.Queue[PhaseOrder | None],
    reports: multiprocessing.Queue[PhaseReport],
) -> None:
    """Body of one client process: connect as agency-a to the hub and the echo, then obey orders.

    One warm-up call of each kind is made before reporting ready, so that TLS handshakes and
    the client's first directory fetch are not measured.
    """
    import traceback

    import grpc

    from exchange_client import Client, Draft, ExchangeError, Profile

    profile = Profile.load(setup.exchange_dir / "agencies" / PUBLISHER)
    client = Client(profile, hub=setup.hub_target)
    draft = Draft.from_dict(setup.draft_data)

    def library_publish() -> str:
        alert_id: str = client.publish(draft).alert_id
        return alert_id

    publish = (
        library_publish
        if setup.client == "library"
        else core_publisher(profile, setup.hub_target, draft)
    )
    channel = _echo.mutual_tls_channel(
        setup.echo_target,
        root_pem=profile.hub_ca_certificate_pem,
        key_pem=profile.tls_key_pem,
        certificate_pem=profile.tls_certificate_pem,
    )
    echo = _echo.echo_stub(channel)
    payload = os.urandom(setup.payload_size)

    def call_echo(request: bytes) -> bytes:
        answer: bytes = echo(request, timeout=30)
        return answer

    call_echo(payload)
    publish()
    reports.put(PhaseReport(worker=worker))
    while (order := orders.get()) is not None:
        report = PhaseReport(worker=worker)
        try:
            if order.kind == "echo":
                _run_echo_phase(call_echo, payload, order, report)
            else:
                _run_publish_phase(publish, order, report)
        except (ExchangeError, grpc.RpcError, RuntimeError):  # the parent stops the run with it
            report.error = traceback.format_exc()
        reports.put(report)
    channel.close()
    client.close()


# --- the subscriber process ----------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriberReply:
    """The subscriber's answer: receipt times by alert id, or why it stopped following the feed."""

    delivered: dict[str, float] = field(default_factory=dict)
    failure: str = ""


@dataclass(frozen=True)
class CollectOrder:
    """Asks the subscriber for the receipt times of these alerts, waiting up to ``timeout``."""

    alert_ids: frozenset[str]
    timeout: float


def subscriber_process_main(
    setup: ClientSetup,
    orders: multiprocessing.Queue[CollectOrder | None],
    replies: multiprocessing.Queue[SubscriberReply],
) -> None:
    """Body of the subscriber: hold agency-b's feed stream and note when each alert arrives.

    A thread iterates ``Client.subscribe()`` and records ``time.monotonic()`` as each event is
    handed out; the main thread answers the parent's requests for those times.  Ready is
    reported on the first heartbeat, which the hub sends once catch-up is done.
    """
    from exchange_client import Client, ExchangeError, Profile

    client = Client(
        Profile.load(setup.exchange_dir / "agencies" / SUBSCRIBER), hub=setup.hub_target
    )
    received: dict[str, float] = {}
    arrived = threading.Condition()
    ready = threading.Event()
    failure: list[str] = []

    def follow_feed() -> None:
        try:
            for event in client.subscribe(heartbeats=True):
                if event.is_heartbeat:
                    ready.set()
                    continue
                moment = time.monotonic()
                with arrived:
                    received.setdefault(event.alert_id, moment)
                    arrived.notify_all()
        except ExchangeError as e:  # reported to the parent instead of dying silently
            failure.append(f"{type(e).__name__}: {e}")
            ready.set()
            with arrived:
                arrived.notify_all()

    threading.Thread(target=follow_feed, name="feed", daemon=True).start()
    ready.wait(STARTUP_TIMEOUT_SECONDS)
    replies.put(SubscriberReply(failure=failure[0] if failure else ""))
    while (order := orders.get()) is not None:
        deadline = time.monotonic() + order.timeout
        with arrived:
            while not failure and not order.alert_ids <= received.keys():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                arrived.wait(remaining)
            found = {i: received.pop(i) for i in order.alert_ids if i in received}
        replies.put(SubscriberReply(delivered=found, failure=failure[0] if failure else ""))


# --- server processes ----------------------------------------------------------------------------


@dataclass
class ServerProcess:
    """A server started as a subprocess that announced ``listening on HOST:PORT``."""

    name: str
    process: subprocess.Popen[str]
    target: str
    log_path: Path

    def stop(self) -> None:
        """Ask it to stop (SIGTERM) and wait; kill it if it does not."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(name: str, command: Sequence[str], log_path: Path) -> ServerProcess:
    """Run ``command`` and wait for its ``listening on HOST:PORT`` line on stdout."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            list(command), stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1
        )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("listening on "):
        process.kill()
        raise RuntimeError(
            f"{name} did not start (said {line!r}); its log:\n{log_path.read_text()}"
        )
    return ServerProcess(name, process, line.removeprefix("listening on "), log_path)


def exchange_hub_command() -> str:
    """The ``exchange-hub`` script installed beside this interpreter."""
    beside = Path(sys.executable).parent / "exchange-hub"
    found = str(beside) if beside.exists() else shutil.which("exchange-hub")
    if found is None:
        raise RuntimeError("exchange-hub is not installed: run `pip install -e .` first")
    return found


def init_exchange_dir(directory: Path) -> Path:
    """``exchange-hub init`` for the two agencies; returns the hub's configuration file.

    The per-agency rate limit is lifted in the run's own ``hub.toml``: the benchmark measures
    what the hub can carry, not the throttle an operator sets.
    """
    subprocess.run(
        [
            exchange_hub_command(),
            "init",
            str(directory),
            "--agency",
            PUBLISHER,
            "--agency",
            SUBSCRIBER,
            "--listen",
            "127.0.0.1:50051",
        ],
        check=True,
        capture_output=True,
    )
    from exchange.hub.config import HubConfig

    config_path = directory / "hub.toml"
    config = dataclasses.replace(
        HubConfig.from_file(config_path), rate_limit_per_agency=1e9, rate_limit_burst=10**9
    )
    config_path.write_text(config.to_toml())
    return config_path


# --- running phases ------------------------------------------------------------------------------


@dataclass
class Fleet:
    """The client processes and the subscriber, with their queues."""

    context: SpawnContext
    clients: list[SpawnProcess]
    client_orders: list[multiprocessing.Queue[PhaseOrder | None]]
    reports: multiprocessing.Queue[PhaseReport]
    subscriber: SpawnProcess
    collect_orders: multiprocessing.Queue[CollectOrder | None]
    collected: multiprocessing.Queue[SubscriberReply]

    def pids(self) -> dict[str, int]:
        """Process ids by role, for attaching a profiler."""
        pids = {f"client-{i}": p.pid for i, p in enumerate(self.clients) if p.pid is not None}
        if self.subscriber.pid is not None:
            pids["subscriber"] = self.subscriber.pid
        return pids

    def run_phase(self, kind: PhaseKind, processes: int, duration: float) -> list[PhaseReport]:
        """Run one phase on the first ``processes`` clients; raise if any of them failed."""
        start_at = time.monotonic() + START_MARGIN_SECONDS
        for orders in self.client_orders[:processes]:
            orders.put(PhaseOrder(kind=kind, start_at=start_at, duration=duration))
        reports = [
            self.reports.get(timeout=duration + STARTUP_TIMEOUT_SECONDS) for _ in range(processes)
        ]
        failed = [r for r in reports if r.error]
        if failed:
            raise RuntimeError(f"client {failed[0].worker} failed:\n{failed[0].error}")
        return reports

    def delivery_times(self, alert_ids: frozenset[str]) -> dict[str, float]:
        """When the subscriber was handed each alert's event (missing: never, within timeout)."""
        self.collect_orders.put(CollectOrder(alert_ids, DELIVERY_TIMEOUT_SECONDS))
        answer = self.collected.get(timeout=DELIVERY_TIMEOUT_SECONDS + 30)
        if answer.failure:
            raise RuntimeError(f"the subscriber failed: {answer.failure}")
        return answer.delivered

    def stop(self) -> None:
        for orders in self.client_orders:
            orders.put(None)
        self.collect_orders.put(None)
        for process in [*self.clients, self.subscriber]:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join()


@contextmanager
def start_fleet(setup: ClientSetup, processes: int) -> Iterator[Fleet]:
    """Start the subscriber and ``processes`` client processes; wait until all are ready."""
    context = multiprocessing.get_context("spawn")
    collect_orders: multiprocessing.Queue[CollectOrder | None] = context.Queue()
    collected: multiprocessing.Queue[SubscriberReply] = context.Queue()
    subscriber = context.Process(
        target=subscriber_process_main, args=(setup, collect_orders, collected), name="subscriber"
    )
    subscriber.start()
    reports: multiprocessing.Queue[PhaseReport] = context.Queue()
    client_orders: list[multiprocessing.Queue[PhaseOrder | None]] = []
    clients = []
    for worker in range(processes):
        orders: multiprocessing.Queue[PhaseOrder | None] = context.Queue()
        process = context.Process(
            target=client_process_main,
            args=(worker, setup, orders, reports),
            name=f"client-{worker}",
        )
        process.start()
        client_orders.append(orders)
        clients.append(process)
    fleet = Fleet(context, clients, client_orders, reports, subscriber, collect_orders, collected)
    try:
        status = collected.get(timeout=STARTUP_TIMEOUT_SECONDS)
        if status.failure:
            raise RuntimeError(f"the subscriber failed: {status.failure}")
        for _ in range(processes):
            reports.get(timeout=STARTUP_TIMEOUT_SECONDS)
        yield fleet
    finally:
        fleet.stop()


# --- CPU accounting ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the command name: state is field 3 of stat(5), utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine have used since boot, from ``/proc/stat``."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait are busy.
    busy = sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4))
    return busy / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuMeter:
    """Process ids by role, to charge each phase's CPU time to hub, echo server and clients."""

    roles: Mapping[str, Sequence[int]]

    def snapshot(self) -> dict[str, float]:
        return {role: sum(cpu_seconds(pid) for pid in pids) for role, pids in self.roles.items()}

    def per_call(
        self, before: Mapping[str, float], roles: Sequence[str], calls: int
    ) -> dict[str, float]:
        """CPU milliseconds per call that each of ``roles`` spent since ``before``."""
        after = self.snapshot()
        return {role: 1000 * (after[role] - before[role]) / max(calls, 1) for role in roles}


# --- statistics ----------------------------------------------------------------------------------


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass(frozen=True)
class Round:
    """One round's measurements; rates in calls per second, latencies in seconds."""

    echo_rate: float
    publish_rate: float
    echo_p50: float
    echo_p99: float
    delivery_p50: float
    delivery_p99: float
    publish_call_p50: float
    loaded_delivery_p50: float
    loaded_delivery_p99: float
    echo_calls: int
    publishes: int
    latency_samples: int
    undelivered: int
    echo_cpu_ms: Mapping[str, float]
    publish_cpu_ms: Mapping[str, float]

    @property
    def throughput_ratio(self) -> float:
        return self.publish_rate / self.echo_rate

    @property
    def latency_ratio(self) -> float:
        return self.delivery_p50 / self.echo_p50


def _delivery_latencies(fleet: Fleet, reports: Sequence[PhaseReport]) -> tuple[list[float], int]:
    sent = [pair for report in reports for pair in report.sent]
    delivered = fleet.delivery_times(frozenset(alert_id for alert_id, _ in sent))
    latencies = [delivered[a] - t0 for a, t0 in sent if a in delivered]
    return latencies, len(sent) - len(latencies)


def run_round(fleet: Fleet, settings: Settings, meter: CpuMeter) -> Round:
    """Echo and publish, throughput then latency, alternating.

    The CPU time of every process is charged per call in the throughput phases (the calls in
    flight when a phase ends included), which shows where the machine's cores go.
    """
    duration = settings.duration
    before = meter.snapshot()
    echo_load = fleet.run_phase("echo", settings.publishers, duration)
    echo_cpu = meter.per_call(
        before, ("echo server", "clients"), sum(len(r.latencies) for r in echo_load)
    )
    before = meter.snapshot()
    publish_load = fleet.run_phase("publish", settings.publishers, duration)
    publish_cpu = meter.per_call(
        before, ("hub", "clients", "subscriber"), sum(len(r.sent) for r in publish_load)
    )
    loaded_latencies, loaded_missing = _delivery_latencies(fleet, publish_load)
    echo_single = fleet.run_phase("echo", 1, duration)
    publish_single = fleet.run_phase("publish", 1, duration)
    latencies, missing = _delivery_latencies(fleet, publish_single)
    echo_latencies = echo_single[0].latencies
    if not latencies or not loaded_latencies:
        raise RuntimeError("no publish was delivered to the subscriber")
    return Round(
        echo_rate=sum(r.completed for r in echo_load) / duration,
        publish_rate=sum(r.completed for r in publish_load) / duration,
        echo_p50=statistics.median(echo_latencies),
        echo_p99=percentile(echo_latencies, 0.99),
        delivery_p50=statistics.median(latencies),
        delivery_p99=percentile(latencies, 0.99),
        publish_call_p50=statistics.median(publish_single[0].latencies),
        loaded_delivery_p50=statistics.median(loaded_latencies),
        loaded_delivery_p99=percentile(loaded_latencies, 0.99),
        echo_calls=sum(r.completed for r in echo_load),
        publishes=sum(r.completed for r in publish_load),
        latency_samples=len(latencies),
        undelivered=missing + loaded_missing,
        echo_cpu_ms=echo_cpu,
        publish_cpu_ms=publish_cpu,
    )


# --- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The command line, parsed."""

    duration: float
    publishers: int
    items: int
    item_bytes: int
    rounds: int
    warmup: float
    database_url: str | None
    output: Literal["text", "markdown"]
    client: ClientKind
    profile_dir: Path | None
    echo_server: Literal["threads", "aio"] = "threads"


@dataclass(frozen=True)
class Outcome:
    """Every round of a run, with the sizes that were measured."""

    settings: Settings
    rounds: tuple[Round, ...]
    payload_size: int
    database_url: str
    started: datetime
    elapsed: float
    hot_spots: Mapping[str, str]
    other_cores: float
    """Cores' worth of CPU that processes outside the benchmark used during the rounds."""

    def median(self, name: str) -> float:
        return float(statistics.median(float(getattr(r, name)) for r in self.rounds))

    def median_cpu(self, phase: Literal["echo", "publish"]) -> dict[str, float]:
        """Median CPU milliseconds per call by role, over rounds, for one kind of load."""
        per_round = [r.echo_cpu_ms if phase == "echo" else r.publish_cpu_ms for r in self.rounds]
        return {role: statistics.median(m[role] for m in per_round) for role in per_round[0]}

    def cpu_line(self, phase: Literal["echo", "publish"]) -> str:
        costs = self.median_cpu(phase)
        parts = ", ".join(f"{role} {ms:.2f}" for role, ms in costs.items())
        return f"{parts}; total {sum(costs.values()):.2f} ms"

    @property
    def throughput_ratio(self) -> float:
        return self.median("publish_rate") / self.median("echo_rate")

    @property
    def latency_ratio(self) -> float:
        return self.median("delivery_p50") / self.median("echo_p50")


def run(settings: Settings) -> Outcome:
    """Set up a throw-away exchange, start every process, run warm-up and rounds, tear down."""
    started = datetime.now(UTC)
    clock = time.monotonic()
    with ExitStack() as stack:
        temporary = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="exchange-bench-")))
        config_path = init_exchange_dir(temporary / "exchange")
        database_url = settings.database_url or f"sqlite:///{temporary / 'hub.db'}"
        hub = start_server(
            "exchange-hub",
            [
                exchange_hub_command(),
                "serve",
                "--config",
                str(config_path),
                "--listen",
                "127.0.0.1:0",
                "--database",
                database_url,
            ],
            temporary / "hub.log",
        )
        stack.callback(hub.stop)
        echo = start_server(
            "echo server",
            [
                sys.executable,
                str(BENCH_DIR / "_echo.py"),
                "--config",
                str(config_path),
                "--listen",
                "127.0.0.1:0",
                *(["--aio"] if settings.echo_server == "aio" else []),
            ],
            temporary / "echo.log",
        )
        stack.callback(echo.stop)
        draft_data = bench_draft(settings.items, settings.item_bytes)
        setup = ClientSetup(
            exchange_dir=temporary / "exchange",
            hub_target=hub.target,
            echo_target=echo.target,
            payload_size=sealed_request_size(temporary / "exchange", draft_data),
            draft_data=draft_data,
            client=settings.client,
        )
        fleet = stack.enter_context(start_fleet(setup, settings.publishers))
        if settings.warmup > 0:
            fleet.run_phase("echo", settings.publishers, settings.warmup)
            _delivery_latencies(
                fleet, fleet.run_phase("publish", settings.publishers, settings.warmup)
            )
        hot_spots: dict[str, str] = {}
        if settings.profile_dir is not None:
            hot_spots = profile_publish_phase(fleet, hub, settings)
        meter = CpuMeter(
            {
                "hub": [hub.process.pid],
                "echo server": [echo.process.pid],
                "subscriber": [fleet.pids()["subscriber"]],
                "clients": [pid for role, pid in fleet.pids().items() if role.startswith("client")],
            }
        )
        own_before = sum(meter.snapshot().values()) + cpu_seconds(os.getpid())
        busy_before, rounds_started = machine_busy_seconds(), time.monotonic()
        rounds = tuple(run_round(fleet, settings, meter) for _ in range(settings.rounds))
        own = sum(meter.snapshot().values()) + cpu_seconds(os.getpid()) - own_before
        other = machine_busy_seconds() - busy_before - own
        return Outcome(
            settings=settings,
            rounds=rounds,
            payload_size=setup.payload_size,
            database_url=database_url if settings.database_url else "temporary SQLite file",
            started=started,
            elapsed=time.monotonic() - clock,
            hot_spots=hot_spots,
            other_cores=max(other, 0.0) / (time.monotonic() - rounds_started),
        )
    raise AssertionError("unreachable")


# --- profiling -----------------------------------------------------------------------------------


PROFILE_SKIPPED_MODULES = frozenset(
    {"threading.py", "thread.py", "spawn.py", "process.py", "<string>", "publish_bench.py"}
)
"""Frames every sample passes through (thread and process start-up): left out of totals."""


def profile_publish_phase(fleet: Fleet, hub: ServerProcess, settings: Settings) -> dict[str, str]:
    """Run one extra publish-throughput phase under ``py-spy``; return a summary per role.

    The hub, the subscriber and every client process are sampled (threads on CPU only); the
    collapsed stacks are written to ``--profile-dir`` and summarised as the functions with the
    most samples, by self time and by total time, the clients' stacks added together.  Not part
    of the measured rounds.
    """
    assert settings.profile_dir is not None
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        raise RuntimeError(f"{spy} not found: `pip install py-spy` into this environment")
    settings.profile_dir.mkdir(parents=True, exist_ok=True)
    targets = {"hub": hub.process.pid, **fleet.pids()}
    recorders = [
        subprocess.Popen(
            [
                str(spy),
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--nonblocking",
                "--rate",
                "250",
                "--duration",
                str(int(settings.duration) + 1),
                "--output",
                str(settings.profile_dir / f"{name}.collapsed"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in targets.items()
    ]
    time.sleep(1.0)
    fleet.run_phase("publish", settings.publishers, settings.duration)
    for recorder in recorders:
        recorder.wait(timeout=60)
    files = {name: settings.profile_dir / f"{name}.collapsed" for name in targets}
    return {
        "hub": summarise_collapsed([files["hub"]]),
        "publisher processes": summarise_collapsed(
            [path for name, path in files.items() if name.startswith("client")]
        ),
        "subscriber": summarise_collapsed([files["subscriber"]]),
    }


def summarise_collapsed(paths: Sequence[Path], top: int = 15) -> str:
    """The functions with the most samples in py-spy collapsed-stack files, self and total."""
    self_samples: collections.Counter[str] = collections.Counter()
    total_samples: collections.Counter[str] = collections.Counter()
    samples = 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_short_frame(frame) for frame in stack.split(";")]
            samples += count
            self_samples[frames[-1]] += count
            for frame in set(frames):
                if frame.rpartition("(")[2].rstrip(")") not in PROFILE_SKIPPED_MODULES:
                    total_samples[frame] += count
    if not samples:
        return "no samples"

    def table(counter: collections.Counter[str]) -> str:
        return "\n".join(
            f"  {100 * n / samples:5.1f} %  {frame}" for frame, n in counter.most_common(top)
        )

    return (
        f"{samples} samples of threads on CPU\n"
        f" by self time:\n{table(self_samples)}\n by total time:\n{table(total_samples)}"
    )


def _short_frame(frame: str) -> str:
    """``function (path/to/module.py:line)`` → ``function (module.py)``."""
    name, _, location = frame.partition(" (")
    module = location.rstrip(")").rpartition(":")[0]
    return f"{name} ({Path(module).name})" if module else name


# --- reporting -----------------------------------------------------------------------------------


def _shell(command: str) -> str:
    try:
        return subprocess.run(
            command, shell=True, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError as e:
        return f"({command}: {e})"


def machine_description() -> list[tuple[str, str]]:
    """What the numbers were measured on, as label and text."""
    import cryptography
    import grpc

    cpu_models = (
        sorted(
            {
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            }
        )
        if Path("/proc/cpuinfo").exists()
        else [platform.processor()]
    )
    import sqlite3

    return [
        ("nproc", _shell("nproc")),
        ("CPU", "; ".join(cpu_models)),
        ("free -h", _shell("free -h")),
        ("uname -a", _shell("uname -a")),
        ("Python", platform.python_version()),
        (
            "grpcio / cryptography / SQLite",
            f"{grpc.__version__} / {cryptography.__version__} / {sqlite3.sqlite_version}",
        ),
        ("code measured", code_description()),
    ]


def code_description() -> str:
    """Where the ``exchange`` package came from, and its commit if that is a git checkout.

    Uncommitted changes under ``exchange/`` and ``clients/`` are counted, since the hub and the
    client run from that tree.
    """
    import exchange

    root = Path(exchange.__file__).resolve().parent.parent
    quoted = shlex.quote(str(root))
    commit = _shell(f"git -C {quoted} rev-parse --short HEAD 2>/dev/null")
    if not commit:
        return f"{root} (not a git checkout)"
    changed = _shell(f"git -C {quoted} status --porcelain -- exchange clients").splitlines()
    state = (
        f"{len(changed)} uncommitted changes under exchange/ and clients/" if changed else "clean"
    )
    return f"{root} at commit {commit} ({state})"


def command_line() -> str:
    """The command as typed from the repository root, with ``PYTHONPATH`` if it was set.

    ``PYTHONPATH`` decides which ``exchange`` is measured (see README.md), so it is part of
    the command.
    """
    executable = Path(sys.executable)
    try:
        shown = str(executable.relative_to(Path.cwd()))
    except ValueError:
        shown = str(executable)
    python_path = os.environ.get("PYTHONPATH")
    prefix = f"PYTHONPATH={shlex.quote(python_path)} " if python_path else ""
    return prefix + shlex.join([shown, *sys.argv])


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def render_text(outcome: Outcome) -> str:
    """A plain report for the terminal."""
    s = outcome.settings
    lines = [
        (
            f"{s.rounds} rounds of {s.duration:g} s phases; {s.publishers} client processes ({s.client}); "
            f"alerts of {s.items} items × {s.item_bytes} B; echo payload {outcome.payload_size} B"
        ),
        "",
        (
            f"{'round':>5} {'echo/s':>9} {'publish/s':>9} {'ratio':>7} {'echo p50':>10} "
            f"{'deliv p50':>10} {'deliv p99':>10} {'ratio':>7} {'loaded p50':>11}"
        ),
    ]
    for index, r in enumerate(outcome.rounds, start=1):
        lines.append(
            f"{index:>5} {r.echo_rate:>9.0f} {r.publish_rate:>9.1f} {r.throughput_ratio:>7.1%} "
            f"{_ms(r.echo_p50):>10} {_ms(r.delivery_p50):>10} {_ms(r.delivery_p99):>10} "
            f"{r.latency_ratio:>6.1f}× {_ms(r.loaded_delivery_p50):>11}"
        )
    lines += [
        "",
        (
            f"publish throughput / echo throughput = {outcome.throughput_ratio:.1%} "
            f"(target ≥ {THROUGHPUT_TARGET:.0%}: {_verdict(outcome.throughput_ratio >= THROUGHPUT_TARGET)})"
        ),
        (
            f"publish→delivery p50 / echo p50 = {outcome.latency_ratio:.1f}× "
            f"(target ≤ {LATENCY_TARGET:g}×: {_verdict(outcome.latency_ratio <= LATENCY_TARGET)})"
        ),
        "",
        f"CPU ms per echo call:  {outcome.cpu_line('echo')}",
        f"CPU ms per publish:    {outcome.cpu_line('publish')}",
        f"other processes on the machine used {outcome.other_cores:.2f} cores during the rounds",
    ]
    for name, summary in outcome.hot_spots.items():
        lines += ["", f"profile of {name} during an extra publish phase: {summary}"]
    return "\n".join(lines)


def render_markdown(outcome: Outcome) -> str:
    """A section for ``bench/RESULTS.md``: machine, command, date, numbers, ratios, verdicts."""
    s = outcome.settings
    date = _shell("date -u") or outcome.started.isoformat()
    machine = machine_description()
    rows = [
        ("publish throughput (alerts/s)", f"{outcome.median('publish_rate'):.1f}"),
        ("echo throughput (calls/s)", f"{outcome.median('echo_rate'):.0f}"),
        (
            "publish→delivery p50 / p99, one publisher",
            f"{_ms(outcome.median('delivery_p50'))} / {_ms(outcome.median('delivery_p99'))}",
        ),
        (
            "of which the publishing call (sealing to the hub's answer), p50",
            _ms(outcome.median("publish_call_p50")),
        ),
        (
            "echo p50 / p99, one client",
            f"{_ms(outcome.median('echo_p50'))} / {_ms(outcome.median('echo_p99'))}",
        ),
        (
            f"publish→delivery p50 / p99 under the {s.publishers}-publisher load",
            (
                f"{_ms(outcome.median('loaded_delivery_p50'))} / "
                f"{_ms(outcome.median('loaded_delivery_p99'))}"
            ),
        ),
    ]
    out = [
        f"### Run of {date}",
        "",
        "```",
        f"{command_line()}",
        "```",
        "",
        "Machine:",
        "",
    ]
    for label, text in machine:
        if "\n" in text:
            out += [
                f"- `{label}`:",
                "",
                "  ```",
                *(f"  {line}" for line in text.splitlines()),
                "  ```",
            ]
        else:
            out.append(f"- `{label}`: {text}")
    out += [
        "",
        (
            f"Settings: {s.rounds} rounds × 4 phases of {s.duration:g} s (warm-up {s.warmup:g} s); "
            f"{s.publishers} client processes publishing through {CLIENT_DESCRIPTIONS[s.client]}; "
            f"alerts of {s.items} note items × {s.item_bytes} B "
            f"to {SUBSCRIBER} (sealed request {outcome.payload_size} B, the echo's payload each "
            f"way); database: {outcome.database_url}; total run {outcome.elapsed:.0f} s."
        ),
        "",
        "Medians over rounds:",
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {label} | {value} |" for label, value in rows),
        "",
        "| ratio | value | target | |",
        "|---|---|---|---|",
        (
            f"| publish throughput / echo throughput | {outcome.throughput_ratio:.1%} | "
            f"≥ {THROUGHPUT_TARGET:.0%} | {_verdict(outcome.throughput_ratio >= THROUGHPUT_TARGET)} |"
        ),
        (
            f"| publish→delivery p50 / echo p50 | {outcome.latency_ratio:.1f}× | "
            f"≤ {LATENCY_TARGET:g}× | {_verdict(outcome.latency_ratio <= LATENCY_TARGET)} |"
        ),
        "",
        (
            "CPU time per call in the throughput phases, by process (median over rounds; "
            f"{_shell('nproc')} cores to share):"
        ),
        "",
        f"- echo: {outcome.cpu_line('echo')}",
        f"- publish: {outcome.cpu_line('publish')}",
        "",
        (
            f"Processes outside the benchmark used {outcome.other_cores:.2f} cores on average "
            "during the rounds (from `/proc/stat`): the closer to 0, the cleaner the run."
        ),
        "",
        "Per round:",
        "",
        (
            "| round | echo/s | publish/s | ratio | echo p50 | delivery p50 | delivery p99 | ratio "
            "| loaded delivery p50 | undelivered |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for index, r in enumerate(outcome.rounds, start=1):
        out.append(
            f"| {index} | {r.echo_rate:.0f} | {r.publish_rate:.1f} | {r.throughput_ratio:.1%} | "
            f"{_ms(r.echo_p50)} | {_ms(r.delivery_p50)} | {_ms(r.delivery_p99)} | "
            f"{r.latency_ratio:.1f}× | {_ms(r.loaded_delivery_p50)} | {r.undelivered} |"
        )
    for name, summary in outcome.hot_spots.items():
        out += ["", f"Profile of {name} during an extra publish phase:", "", "```", summary, "```"]
    return "\n".join(out)


def parse_arguments(argv: Sequence[str]) -> Settings:
    parser = argparse.ArgumentParser(
        description="Publish throughput and publish→delivery latency of the exchange, as "
        "ratios to a raw gRPC echo over the same mutual TLS.",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=5.0,
        help="seconds per phase (four phases per round); default 5",
    )
    parser.add_argument(
        "--publishers",
        type=int,
        default=8,
        help="client processes for the throughput phases; default 8",
    )
    parser.add_argument("--items", type=int, default=3, help="items per alert; default 3")
    parser.add_argument(
        "--item-bytes",
        type=int,
        default=1024,
        help="characters of note text per item; default 1024",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of echo and publish phases; medians are reported; default 3",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="seconds of unmeasured echo and publish load first; default 2",
    )
    parser.add_argument(
        "--database",
        dest="database_url",
        default=None,
        help="the hub's database URL; default a temporary SQLite file",
    )
    parser.add_argument(
        "--client",
        choices=("library", "core"),
        default="library",
        help="library: exchange_client.Client.publish (the default); core: the core's sealing "
        "functions and one Publish call, partner keys verified once, no outbox",
    )
    parser.add_argument(
        "--output",
        choices=("text", "markdown"),
        default="text",
        help="markdown: a section ready for bench/RESULTS.md",
    )
    parser.add_argument(
        "--echo-server",
        choices=("threads", "aio"),
        default="threads",
        help="threads: the baseline, a synchronous grpc.server on a thread pool (the default); "
        "aio: the same echo on grpc.aio, the hub's own server kind, for the transport's floor",
    )
    parser.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help="sample the hub and one publisher with py-spy in an extra, "
        "unmeasured publish phase; write collapsed stacks here",
    )
    arguments = parser.parse_args(argv)
    if arguments.publishers < 1 or arguments.rounds < 1 or arguments.items < 1:
        parser.error("--publishers, --rounds and --items must be at least 1")
    if arguments.duration <= 0:
        parser.error("--duration must be positive")
    return Settings(**vars(arguments))


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_arguments(sys.argv[1:] if argv is None else argv)
    outcome = run(settings)
    render = render_markdown if settings.output == "markdown" else render_text
    print(render(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main())
