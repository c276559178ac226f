"""Flat at scale: the hub's read paths, proofs, audit verification and memory on a filled store.

For each size (10^3, 10^5, 10^6 alerts by default) and the chosen database (a temporary SQLite
file, or a fresh database on the PostgreSQL server named by ``--postgres``), this:

1. makes a throw-away exchange (``exchange-hub init`` with four agencies) and fills its store
   **directly through the store's tables**, in batches (multi-row inserts, one transaction per
   batch, the cyclic collector paused): every alert is a real log entry with a manifest signed by
   its originator's key, three items (a summary and two notes, ciphertext and headers
   synthetic), their audiences and grants, and a feed event for its recipient, itself a log
   entry; then the tree builder hashes every leaf, so proofs and ``audit verify`` work on the
   filled store as on one filled by publishing (one checkpoint is signed when the hub starts);
2. starts a real hub (``exchange-hub serve``, its own process) on the filled store; once every
   size's store is filled and its hub started, measures over loopback mTLS, as ``agency-b`` (a
   recipient of a quarter of the alerts, and of three quarters of the first 1,000), in ``--rounds`` rounds that visit each size's hub in
   turn (a shared machine's speed drifts by tens of per cent within minutes: interleaved, the
   drift weighs on every size alike, and the ratios compare like with like):

   * **publish**: the ``Publish`` call of a freshly sealed alert (3 items) to ``agency-b``;
   * **inbox** (``ListAlerts``, 100 newest) and **show** (``GetAlert`` of an old alert, by id
     alone, and the client library's ``open`` of a just-published one: fetch, verify, decrypt);
   * **feed resume** from an old cursor (sequence 1): ``Subscribe`` until its first event, until
     one whole page (500 events) has arrived and until the heartbeat that follows that page
     (the checkpoint and the 500 events' inclusion proofs), and ``ListEvents`` of 100. The same
     work at every size: the fill sends every other agency's alerts among the first
     ``READER_RUN`` (1,000) to the reader, so that at every size its first 750 events lie in
     the log's first 2,000 entries, the first page of a resume is full and a mid catch-up
     heartbeat proves it (a quarter of 1,000 alerts would be 250 events: a short page, no
     mid catch-up heartbeat, against a full page and its proofs at 10^6); and each resume is
     read to that heartbeat before the next one starts, so that no resume's proofs are still
     being computed on the hub while the next one is timed;
   * **proofs**: inclusion and consistency proofs at the full size, in the store (a read
     transaction each, as the servicer runs them) and through ``GetInclusionProof`` /
     ``GetConsistencyProof``;
   * **audit verify**: the client library's full-log verification (``exchange audit verify``:
     every leaf, every body the agency may read with its signature, the checkpoints' roots, the
     feed read back), in entries per second;
   * **memory**: the hub's resident set (``VmRSS``) after start, with 100 open feed streams, and
     its peak (``VmHWM``) after everything above.

Goals (issue 12, item 5): every latency at 10^6 within 2× of 10^3; a proof ≤ 1 ms at 10^6; full-log
verification ≥ 100,000 entries/s.

Run from the repository root::

    .venv/bin/python bench/scale_bench.py --sizes 1000 100000
    .venv/bin/python bench/scale_bench.py --postgres postgresql+psycopg://postgres@127.0.0.1/postgres
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients" / "python"))

import grpc
from sqlalchemy import insert, text, update
from sqlalchemy.engine import make_url

from exchange.audit import leaves as leaf_types
from exchange.audit.leaves import make_leaf
from exchange.audit.merkle import leaf_hash
from exchange.bulk import gc_paused
from exchange.config.profile import ProfileData, load_profile
from exchange.crypto.dsse import sign_envelope
from exchange.statements.alert import MANIFEST_PAYLOAD_TYPE, manifest_message
from exchange.statements.codec import encode, envelope_to_proto
from exchange.store.db import Database
from exchange.store.schema import (
    alerts,
    feed_events,
    feed_heads,
    grants,
    item_audience,
    items,
    log_entries,
    log_head,
)
from exchange.store.tree import StoredTree, TreeBuilder
from exchange.v1 import (
    alerts_pb2,
    alerts_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    payloads_pb2,
    statements_pb2,
)

FILL_AGENCIES = ("agency-a", "agency-b", "agency-c", "agency-d")
OBSERVER = "agency-e"
"""An agency in no alert: its ``audit verify`` checks the log's leaves and roots, no bodies."""
AGENCIES = (*FILL_AGENCIES, OBSERVER)
READER = "agency-b"
PUBLISHER = "agency-a"
READER_RUN = 1_000
"""The fill's first alerts, of which every one the reader did not send is sent to it: at every
size its feed starts with the same 750 events in the same log entries (a feed resume from an
old cursor then reads and proves the same rows at every size)."""
FILL_BATCH = 2_000
"""Alerts per fill transaction."""
ITEM_IDS = ("summary", "note-1", "note-2")
PAGE = 500
"""The hub's feed page (``MAX_EVENTS_PER_PAGE``)."""

Policy = statements_pb2.ReleasePolicy


# --- the exchange and its store --------------------------------------------------------------------


def exchange_hub_command() -> str:
    beside = Path(sys.executable).parent / "exchange-hub"
    found = str(beside) if beside.exists() else shutil.which("exchange-hub")
    if found is None:
        raise SystemExit("exchange-hub is not installed: run `pip install -e .` first")
    return found


def init_exchange(directory: Path) -> Path:
    """``exchange-hub init`` for the four agencies, rate limit lifted; the config file's path."""
    command = [exchange_hub_command(), "init", str(directory), "--listen", "127.0.0.1:50051"]
    for agency in AGENCIES:
        command += ["--agency", agency]
    subprocess.run(command, check=True, capture_output=True)
    from exchange.hub.config import HubConfig

    config_path = directory / "hub.toml"
    config = dataclasses.replace(
        HubConfig.from_file(config_path), rate_limit_per_agency=1e9, rate_limit_burst=10**9
    )
    config_path.write_text(config.to_toml())
    return config_path


@contextmanager
def fresh_database(postgres: str | None, directory: Path) -> Iterator[str]:
    """The URL of an empty database: a SQLite file in ``directory`` or a new PostgreSQL one."""
    if postgres is None:
        yield f"sqlite:///{directory / 'hub.db'}"
        return
    import psycopg

    admin = make_url(postgres)
    name = f"exchange_scale_{uuid.uuid4().hex[:10]}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class FillReport:
    alerts: int
    leaves: int
    fill_seconds: float
    tree_seconds: float


class _Leaves:
    """Log rows of one fill batch, their indices assigned densely from ``next_index``."""

    def __init__(self, next_index: int) -> None:
        self.next_index = next_index
        self.rows: list[dict[str, Any]] = []

    def append(
        self, entry_type: str, at: datetime, body: bytes, references: Sequence[str], entitled: str
    ) -> int:
        index = self.next_index
        self.next_index += 1
        salt = random.randbytes(16)
        leaf = make_leaf(entry_type, at, body, salt, references)
        self.rows.append(
            {
                "idx": index,
                "entry_type": entry_type,
                "logged_at": at,
                "leaf": leaf,
                "leaf_hash": leaf_hash(leaf),
                "body": body,
                "salt": salt,
                "entitled": entitled,
            }
        )
        return index


def fill_store(
    db: Database,
    profiles: dict[str, ProfileData],
    count: int,
    *,
    start: datetime,
    batch: int = FILL_BATCH,
    agencies: Sequence[str] = FILL_AGENCIES,
    reader: str = READER,
    reader_run: int = READER_RUN,
    progress: Callable[[int], None] | None = None,
) -> FillReport:
    """Store ``count`` alerts as publishing would have, in transactions of ``batch`` alerts.

    Alert ``i`` goes from ``agencies[i % len(agencies)]`` to the next agency (among the first
    ``reader_run``, to ``reader`` instead whenever ``reader`` did not send it); its manifest is really
    signed (``audit verify`` checks every body its reader may see); item headers, ciphertexts
    and grants are synthetic bytes (only their rows' shape matters to the queries). Logged
    times step by a millisecond from ``start``. The store must be empty but migrated, with the
    agencies registered.
    """
    rng = random.Random(count)
    headers = [rng.randbytes(120) for _ in range(3)]
    header_hashes = [hashlib.sha256(h).digest() for h in headers]
    wrapped = rng.randbytes(80)
    grant_bytes = {
        (item_id, holder): encode(
            statements_pb2.Grant(
                item_id=item_id, recipient=holder, recipient_key_id="k" * 16, wrapped_key=wrapped
            )
        )
        for item_id in ITEM_IDS
        for holder in agencies
    }
    sequences = dict.fromkeys(agencies, 0)
    next_index = 0
    began = time.perf_counter()
    with gc_paused():
        for first in range(0, count, batch):
            log = _Leaves(next_index)
            alert_rows: list[dict[str, Any]] = []
            item_rows: list[dict[str, Any]] = []
            audience_rows: list[dict[str, Any]] = []
            grant_rows: list[dict[str, Any]] = []
            event_rows: list[dict[str, Any]] = []
            for i in range(first, min(first + batch, count)):
                originator = agencies[i % len(agencies)]
                recipient = agencies[(i + 1) % len(agencies)]
                if i < reader_run and originator != reader:
                    recipient = reader
                alert_id = f"fill-{i:08d}"
                at = start + timedelta(milliseconds=i)
                message = manifest_message(
                    originator=originator,
                    alert_id=alert_id,
                    version=1,
                    previous_manifest_hash=b"",
                    created_at=at,
                    headers=[],
                )
                message.item_header_hashes.extend(header_hashes)
                payload = encode(message)
                envelope = sign_envelope(
                    MANIFEST_PAYLOAD_TYPE, payload, profiles[originator].signing_key
                )
                envelope_bytes = encode(envelope_to_proto(envelope))
                log_index = log.append(
                    leaf_types.ALERT_PUBLISHED,
                    at,
                    envelope_bytes,
                    [originator, alert_id, "1"],
                    " ".join(sorted((originator, recipient))),
                )
                pk = i + 1
                alert_rows.append(
                    {
                        "id": pk,
                        "originator": originator,
                        "alert_id": alert_id,
                        "version": 1,
                        "manifest_hash": hashlib.sha256(payload).digest(),
                        "manifest_envelope": envelope_bytes,
                        "request_digest": rng.randbytes(32),
                        "published_at": at,
                        "log_index": log_index,
                        "retracted": False,
                    }
                )
                for position, item_id in enumerate(ITEM_IDS):
                    item_rows.append(
                        {
                            "alert_pk": pk,
                            "item_id": item_id,
                            "position": position,
                            "header": headers[position],
                            "ciphertext": headers[position][:64],
                            "release": "IMMEDIATE",
                            "embargo_until": None,
                            "expires_at": None,
                            "summary": position == 0,
                        }
                    )
                    audience_rows.append(
                        {"alert_pk": pk, "item_id": item_id, "agency_id": recipient}
                    )
                    for holder in (originator, recipient):
                        grant_rows.append(
                            {
                                "alert_pk": pk,
                                "item_id": item_id,
                                "recipient": holder,
                                "recipient_key_id": "k" * 16,
                                "grant": grant_bytes[(item_id, holder)],
                                "available_at": at,
                                "created_at": at,
                                "delivered_at": None,
                            }
                        )
                sequences[recipient] += 1
                sequence = sequences[recipient]
                event = alerts_pb2.FeedEvent(
                    sequence=sequence,
                    kind=alerts_pb2.FeedEvent.ALERT_PUBLISHED,
                    originator=originator,
                    alert_id=alert_id,
                    version=1,
                    actor=originator,
                )
                event.created_at.FromDatetime(at)
                event_index = log.append(
                    leaf_types.FEED_EVENT,
                    at,
                    encode(event),
                    [recipient, str(sequence), originator, alert_id],
                    recipient,
                )
                event_rows.append(
                    {
                        "agency_id": recipient,
                        "sequence": sequence,
                        "kind": "ALERT_PUBLISHED",
                        "originator": originator,
                        "alert_id": alert_id,
                        "version": 1,
                        "item_id": "",
                        "request_id": "",
                        "actor": originator,
                        "created_at": at,
                        "log_index": event_index,
                    }
                )
            with db.write() as connection:
                connection.execute(insert(log_entries), log.rows)
                connection.execute(insert(alerts), alert_rows)
                connection.execute(insert(items), item_rows)
                connection.execute(insert(item_audience), audience_rows)
                connection.execute(insert(grants), grant_rows)
                connection.execute(insert(feed_events), event_rows)
            next_index = log.next_index
            if progress is not None:
                progress(min(first + batch, count))
        with db.write() as connection:
            connection.execute(update(log_head).values(size=next_index))
            for agency, sequence in sequences.items():
                if sequence:
                    connection.execute(
                        insert(feed_heads), {"agency_id": agency, "last_sequence": sequence}
                    )
            if connection.dialect.name == "postgresql":
                for table in ("alerts", "grants"):
                    connection.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT max(id) FROM {table}))"
                        )
                    )
        filled = time.perf_counter()
        TreeBuilder(db, batch_size=50_000).extend()
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return FillReport(count, next_index, filled - began, time.perf_counter() - filled)


# --- talking to the hub ----------------------------------------------------------------------------


@dataclass
class Hub:
    process: subprocess.Popen[str]
    target: str

    def rss(self) -> dict[str, int]:
        """The hub's ``VmRSS`` and ``VmHWM`` in KiB."""
        values = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
        return values

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_hub(config_path: Path, database_url: str, log_path: Path) -> Hub:
    with log_path.open("w") as log:
        process = subprocess.Popen(
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
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
        )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("listening on "):
        process.kill()
        raise SystemExit(f"the hub did not start (said {line!r}):\n{log_path.read_text()}")
    return Hub(process, line.removeprefix("listening on "))


class Agency:
    """Raw gRPC stubs over mTLS as one agency, and the core's sealing."""

    def __init__(self, profile: ProfileData, target: str) -> None:
        self.profile = profile
        credentials = grpc.ssl_channel_credentials(
            root_certificates=profile.hub_ca_certificate_pem,
            private_key=profile.tls_key_pem,
            certificate_chain=profile.tls_certificate_pem,
        )
        self.channel = grpc.secure_channel(target, credentials)
        self.alerts = alerts_pb2_grpc.AlertServiceStub(self.channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self.channel)

    def seal(self, recipient: str, encryption_keys: dict[str, Any]) -> Any:
        from exchange.statements.sealing import PlainItem, seal_alert, summary_item

        notes = [
            PlainItem(
                item_id=f"note-{n}",
                policy=Policy(audience=[recipient], release=Policy.IMMEDIATE, tlp=Policy.TLP_AMBER),
                payload=payloads_pb2.ItemPayload(
                    note=payloads_pb2.Note(text=f"container MSCU123456{n} " * 8, language="en")
                ),
            )
            for n in (1, 2)
        ]
        summary = payloads_pb2.Summary(kind=payloads_pb2.Summary.SHIPMENT, title="precursor")
        return seal_alert(
            originator=self.profile.agency_id,
            alert_id=str(uuid.uuid4()),
            version=1,
            items=[summary_item(summary, notes), *notes],
            signing_key=self.profile.signing_key,
            own_key=self.profile.encryption_key.public_key,
            recipient_keys=encryption_keys,
            created_at=datetime.now(UTC),
        )

    def close(self) -> None:
        self.channel.close()


def encryption_keys(agency: Agency) -> dict[str, Any]:
    from exchange.statements.agency_keys import AgencyKeys
    from exchange.statements.codec import envelope_from_proto
    from exchange.v1 import directory_pb2, directory_pb2_grpc

    directory = directory_pb2_grpc.DirectoryServiceStub(agency.channel)
    now = datetime.now(UTC)
    records = directory.ListAgencies(directory_pb2.ListAgenciesRequest(), timeout=30).agencies
    return {
        record.agency_id: AgencyKeys.verify(
            envelope_from_proto(record.keys[-1]), agency.profile.partner_cas[record.agency_id], now=now
        ).encryption_key
        for record in records
        if record.agency_id != agency.profile.agency_id
    }


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def p50(values: Sequence[float]) -> float:
    return statistics.median(values)


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


@dataclass
class SizeResult:
    size: int
    leaves: int
    fill_seconds: float
    tree_seconds: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    verify_entries: int = 0
    verify_seconds: float = 0.0
    verify_bodies: int = 0
    observer_seconds: float = 0.0
    memory: dict[str, int] = field(default_factory=dict)

    def ms(self, name: str) -> float:
        return p50(self.latencies[name]) * 1e3


def _first_events(stub: Any, after: int, want: int) -> tuple[float, float, float]:
    """Time to the first event, to ``want`` events and to the heartbeat after them (which
    proves them) of a ``Subscribe`` from ``after``: the stream is read to that heartbeat, so the
    hub's work for the page is over when the next call starts."""
    began = time.perf_counter()
    first = page = 0.0
    seen = 0
    stream = stub.Subscribe(alerts_pb2.SubscribeRequest(after=after), timeout=120)
    try:
        for response in stream:
            if response.HasField("event"):
                seen += 1
                if seen == 1:
                    first = time.perf_counter() - began
                if seen == want:
                    page = time.perf_counter() - began
            elif seen >= want:
                if len(response.heartbeat.event_proofs) < want:
                    raise SystemExit(
                        f"the heartbeat after {want} events proves "
                        f"{len(response.heartbeat.event_proofs)} of them"
                    )
                break
    finally:
        stream.cancel()
    return first, page, time.perf_counter() - began


def _wait_for_heartbeats(streams: list[Any]) -> None:
    for stream in streams:
        for response in stream:
            if response.HasField("heartbeat"):
                break


def measure(
    hub: Hub,
    db: Database,
    exchange_dir: Path,
    result: SizeResult,
    *,
    samples: int,
    streams: int,
    verify: bool,
    round_number: int = 0,
    last: bool = True,
) -> None:
    """One round of timed calls on ``hub``, their samples added to ``result``; in the ``last``
    round also the full-log verification (``verify``) and the memory with ``streams`` open."""
    profiles = {a: load_profile(exchange_dir / "agencies" / a) for a in AGENCIES}
    publisher = Agency(profiles[PUBLISHER], hub.target)
    reader = Agency(profiles[READER], hub.target)
    rng = random.Random(result.size * 1000 + round_number)
    lat: dict[str, list[float]] = {}
    try:
        result.memory.setdefault("rss_started_kib", hub.rss()["VmRSS"])
        keys = encryption_keys(publisher)
        published: list[str] = []
        lat["publish"] = []
        for _ in range(samples + 3):
            sealed = publisher.seal(READER, keys)
            seconds = timed(lambda sealed=sealed: publisher.alerts.Publish(sealed.request, timeout=60))
            lat["publish"].append(seconds)
            published.append(sealed.manifest.alert_id)
        del lat["publish"][:3]  # warm-up: the first publishes sign checkpoints over the fill

        lat["inbox"] = [
            timed(
                lambda: reader.alerts.ListAlerts(alerts_pb2.ListAlertsRequest(limit=100), timeout=60)
            )
            for _ in range(samples)
        ]
        old_ids = [f"fill-{rng.randrange(result.size) // 4 * 4:08d}" for _ in range(samples)]
        lat["show_old"] = [
            timed(
                lambda alert_id=alert_id: reader.alerts.GetAlert(
                    alerts_pb2.GetAlertRequest(alert_id=alert_id), timeout=60
                )
            )
            for alert_id in old_ids
        ]
        from exchange_client import Client, Profile

        with Client(Profile.load(exchange_dir / "agencies" / READER), hub=hub.target) as client:
            client.open(published[0])  # partner keys fetched once
            lat["show_client"] = [
                timed(lambda alert_id=alert_id: client.open(alert_id))
                for alert_id in published[1 : samples + 1]
            ]
            lat["list_events"] = [
                timed(
                    lambda: reader.alerts.ListEvents(
                        alerts_pb2.ListEventsRequest(after=1, limit=100), timeout=60
                    )
                )
                for _ in range(samples)
            ]
            latest = reader.alerts.ListEvents(
                alerts_pb2.ListEventsRequest(after=0, limit=1), timeout=60
            ).latest_sequence
            want = min(PAGE, latest - 1)
            resumes = [_first_events(reader.alerts, 1, want) for _ in range(max(3, samples // 5))]
            lat["resume_first"] = [first for first, _, _ in resumes]
            lat["resume_page"] = [page for _, page, _ in resumes]
            lat["resume_proven"] = [proven for _, _, proven in resumes]

            size = reader.audit.GetCheckpoint(audit_pb2.GetCheckpointRequest(), timeout=60).size
            lat["inclusion_rpc"] = [
                timed(
                    lambda: reader.audit.GetInclusionProof(
                        audit_pb2.GetInclusionProofRequest(
                            index=rng.randrange(size), tree_size=size
                        ),
                        timeout=60,
                    )
                )
                for _ in range(samples)
            ]
            lat["consistency_rpc"] = [
                timed(
                    lambda: reader.audit.GetConsistencyProof(
                        audit_pb2.GetConsistencyProofRequest(
                            from_size=rng.randint(1, size), to_size=size
                        ),
                        timeout=60,
                    )
                )
                for _ in range(samples)
            ]
            lat["inclusion_store"] = []
            lat["consistency_store"] = []
            for _ in range(samples * 5):
                index, first = rng.randrange(size), rng.randint(1, size)
                began = time.perf_counter()
                with db.read() as connection:
                    StoredTree(connection, size=size).inclusion_proof(index, size)
                lat["inclusion_store"].append(time.perf_counter() - began)
                began = time.perf_counter()
                with db.read() as connection:
                    StoredTree(connection, size=size).consistency_proof(first, size)
                lat["consistency_store"].append(time.perf_counter() - began)

            for name, values in lat.items():
                result.latencies.setdefault(name, []).extend(values)

            if verify and last:
                began = time.perf_counter()
                report = client.auditor.verify()
                result.verify_seconds = time.perf_counter() - began
                if not report.ok:
                    raise SystemExit(f"audit verify failed on the filled store: {report.failures}")
                result.verify_entries = report.size
                result.verify_bodies = report.bodies_verified
                with Client(
                    Profile.load(exchange_dir / "agencies" / OBSERVER), hub=hub.target
                ) as observer:
                    began = time.perf_counter()
                    report = observer.auditor.verify()
                    result.observer_seconds = time.perf_counter() - began
                if not report.ok:
                    raise SystemExit(f"audit verify failed for {OBSERVER}: {report.failures}")

        if not last:
            return
        result.memory["rss_before_streams_kib"] = hub.rss()["VmRSS"]
        open_streams = []
        stubs = [Agency(profiles[AGENCIES[n % len(AGENCIES)]], hub.target) for n in range(4)]
        try:
            for n in range(streams):
                stub = stubs[n % len(stubs)]
                open_streams.append(
                    stub.alerts.Subscribe(alerts_pb2.SubscribeRequest(after=10**12), timeout=600)
                )
            _wait_for_heartbeats(open_streams)
            time.sleep(1.0)
            memory = hub.rss()
            result.memory["rss_streams_kib"] = memory["VmRSS"]
            result.memory["hwm_kib"] = memory["VmHWM"]
        finally:
            for stream in open_streams:
                stream.cancel()
            for stub in stubs:
                stub.close()
    finally:
        publisher.close()
        reader.close()


@dataclass
class Prepared:
    """A filled store of one size and the hub serving it."""

    hub: Hub
    db: Database
    exchange_dir: Path
    result: SizeResult


@contextmanager
def prepared_size(size: int, postgres: str | None, settings: argparse.Namespace) -> Iterator[Prepared]:
    """A throw-away exchange with ``size`` alerts in its store and its hub running, until the
    block ends."""
    from exchange.hub.app import import_registry
    from exchange.hub.config import HubConfig

    with ExitStack() as stack:
        temporary = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="exchange-scale-")))
        exchange_dir = temporary / "exchange"
        config_path = init_exchange(exchange_dir)
        url = stack.enter_context(fresh_database(postgres, temporary))
        db = Database.from_url(url)
        stack.callback(db.dispose)
        db.migrate()
        now = datetime.now(UTC)
        import_registry(db, HubConfig.from_file(config_path).registry_dir, now=now)
        profiles = {a: load_profile(exchange_dir / "agencies" / a) for a in AGENCIES}

        def progress(done: int) -> None:
            if settings.verbose and done % 100_000 == 0:
                print(f"  filled {done:,} alerts", file=sys.stderr, flush=True)

        fill = fill_store(
            db, profiles, size, start=now - timedelta(milliseconds=size + 60_000), progress=progress
        )
        result = SizeResult(size, fill.leaves, fill.fill_seconds, fill.tree_seconds)
        hub = start_hub(config_path, url, temporary / "hub.log")
        stack.callback(hub.stop)
        yield Prepared(hub, db, exchange_dir, result)


# --- reporting -------------------------------------------------------------------------------------

ROWS = (
    ("publish", "publish (`Publish` call)"),
    ("inbox", "inbox (`ListAlerts`, 100)"),
    ("show_old", "show an old alert (`GetAlert` by id)"),
    ("show_client", "show (client `open`: fetch, verify, decrypt)"),
    ("list_events", "feed page from sequence 1 (`ListEvents`, 100)"),
    ("resume_first", "feed resume from sequence 1: first event"),
    ("resume_page", "feed resume from sequence 1: 500 events"),
    ("resume_proven", "feed resume from sequence 1: 500 events and their heartbeat"),
    ("inclusion_store", "inclusion proof, store"),
    ("consistency_store", "consistency proof, store"),
    ("inclusion_rpc", "inclusion proof, `GetInclusionProof`"),
    ("consistency_rpc", "consistency proof, `GetConsistencyProof`"),
)


def _shell(command: str) -> str:
    try:
        return subprocess.run(
            command, shell=True, check=False, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def render(results: Sequence[SizeResult], backend: str, started: datetime, load: str) -> str:
    import sqlite3

    cpu = _shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    lines = [
        f"#### Run of {started:%Y-%m-%d %H:%M} UTC — {backend}",
        "",
        f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        (f"- commit: {_shell('git rev-parse --short HEAD')}"
        f" ({_shell('git status --porcelain --untracked-files=no | wc -l')} files changed)"),
        (f"- machine: {os.cpu_count()} CPUs ({cpu}), `{_shell('uname -sr')}`; "
        f"Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}"),
        f"- load average: at start {load}, at end {_loadavg()}",
        "",
        "| p50 ms | " + " | ".join(f"{r.size:,} alerts" for r in results) + " | ratio |",
        "|---|" + "---:|" * (len(results) + 1),
    ]
    for key, label in ROWS:
        values = [r.ms(key) for r in results]
        ratio = values[-1] / values[0] if values[0] else float("nan")
        lines.append(
            f"| {label} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {ratio:.2f}× |"
        )
    lines.append(
        "| publish p95 | " + " | ".join(f"{p95(r.latencies['publish']) * 1e3:.2f}" for r in results)
        + " | |"
    )
    lines += [
        "",
        "| | " + " | ".join(f"{r.size:,}" for r in results) + " |",
        "|---|" + "---:|" * len(results),
        "| log entries | " + " | ".join(f"{r.leaves:,}" for r in results) + " |",
        "| fill s (rows) / tree s | "
        + " | ".join(f"{r.fill_seconds:.1f} / {r.tree_seconds:.1f}" for r in results)
        + " |",
        f"| audit verify entries/s, {READER} (bodies verified) | "
        + " | ".join(
            f"{r.verify_entries / r.verify_seconds:,.0f} ({r.verify_seconds:.1f} s, "
            f"{r.verify_bodies:,})"
            if r.verify_seconds
            else "not run"
            for r in results
        )
        + " |",
        f"| audit verify entries/s, {OBSERVER} (leaves and roots only) | "
        + " | ".join(
            f"{r.verify_entries / r.observer_seconds:,.0f} ({r.observer_seconds:.1f} s)"
            if r.observer_seconds
            else "not run"
            for r in results
        )
        + " |",
        "| hub RSS MiB: started / before streams / 100 streams / peak | "
        + " | ".join(
            f"{r.memory['rss_started_kib'] / 1024:.0f} / "
            f"{r.memory['rss_before_streams_kib'] / 1024:.0f} / "
            f"{r.memory['rss_streams_kib'] / 1024:.0f} / {r.memory['hwm_kib'] / 1024:.0f}"
            for r in results
        )
        + " |",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    parser.add_argument(
        "--samples", type=int, default=30, help="timed calls per measurement, over all rounds"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of timed calls, each visiting every size's hub in turn; default 3",
    )
    parser.add_argument("--streams", type=int, default=100, help="feed streams held open")
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server instead of SQLite")
    parser.add_argument("--no-verify", action="store_true", help="skip the full-log verification")
    parser.add_argument("--verbose", action="store_true", help="fill progress on stderr")
    settings = parser.parse_args(argv)
    backend = "PostgreSQL" if settings.postgres else "SQLite (WAL, synchronous=FULL)"
    started = datetime.now(UTC)
    load = _loadavg()
    rounds = max(1, settings.rounds)
    per_round = max(1, -(-settings.samples // rounds))
    with ExitStack() as stack:
        # Every size's store is filled and its hub started first; the timed calls then run in
        # rounds that visit each size in turn, so that a machine whose speed drifts (a shared
        # VM's does, by tens of per cent within minutes) weighs on every size alike.
        prepared = []
        for size in settings.sizes:
            prepared.append(stack.enter_context(prepared_size(size, settings.postgres, settings)))
            print(f"# {size:,} alerts filled, its hub started", file=sys.stderr, flush=True)
        for number in range(rounds):
            for each in prepared:
                last = number == rounds - 1
                measure(
                    each.hub,
                    each.db,
                    each.exchange_dir,
                    each.result,
                    samples=per_round,
                    streams=settings.streams,
                    verify=not settings.no_verify,
                    round_number=number,
                    last=last,
                )
                result = each.result
                print(
                    f"# round {number + 1} of {rounds}, {result.size:,} alerts: "
                    + ", ".join(f"{key} {result.ms(key):.2f} ms" for key, _ in ROWS),
                    file=sys.stderr,
                    flush=True,
                )
        results = [each.result for each in prepared]
    print(render(results, backend, started, load))


if __name__ == "__main__":
    main()
