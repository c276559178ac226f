"""The hub process: database, registry import, gRPC server with mTLS, health and reflection."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Callable, Coroutine
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from exchange.crypto.dsse import Envelope
from exchange.crypto.keys import SigningKey
from exchange.crypto.notes import NoteSigner
from exchange.errors import CertificateError, ConfigurationError
from exchange.hub.audit_service import AuditServicer
from exchange.hub.background import Checkpointer, ReleaseSweeper, ReplicaListener
from exchange.hub.blocking import BLOCKING_WORKERS
from exchange.hub.config import HubConfig
from exchange.hub.directory import AgencyDirectory
from exchange.hub.guard import GuardInterceptor
from exchange.hub.health import AsyncHealth, DatabaseProbe, serve_health_port
from exchange.hub.init import BUNDLE_KEYS_ENVELOPE, read_public_bundle
from exchange.hub.log_state import LogStateFile
from exchange.hub.match_service import MatchServicer
from exchange.hub.metrics import HubMetrics, MetricsServer
from exchange.hub.notifier import FeedNotifier
from exchange.hub.observer import CallObserver, ObservingInterceptor
from exchange.hub.publish_queue import PublishQueue
from exchange.hub.release_service import ReleaseServicer
from exchange.hub.servicers import AlertServicer, DirectoryServicer, HubContext
from exchange.hub.startup import (
    DatabaseDirectoryLock,
    check_address_free,
    read_startup_files,
)
from exchange.statements.agency_keys import parse_unverified
from exchange.statements.publish import PublishLimits
from exchange.store import registry
from exchange.store.checkpoints import StoredCheckpoint
from exchange.store.db import Database
from exchange.v1 import (
    alerts_pb2,
    alerts_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    directory_pb2,
    directory_pb2_grpc,
    match_pb2,
    match_pb2_grpc,
    release_pb2,
    release_pb2_grpc,
)

log = logging.getLogger(__name__)

# The transport limit stays above the application's own, so that oversized content gets an
# answer with details from the application rather than a bare RESOURCE_EXHAUSTED from grpc core.
TRANSPORT_MESSAGE_LIMIT = 64 * 1024 * 1024

MAXIMUM_CONCURRENT_RPCS = 1024
"""Calls served at once (open feed streams included: each holds a coroutine, not a thread)."""

T = TypeVar("T")


SERVICE_NAMES = (
    directory_pb2.DESCRIPTOR.services_by_name["DirectoryService"].full_name,
    alerts_pb2.DESCRIPTOR.services_by_name["AlertService"].full_name,
    release_pb2.DESCRIPTOR.services_by_name["ReleaseService"].full_name,
    audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
    match_pb2.DESCRIPTOR.services_by_name["MatchService"].full_name,
    health.SERVICE_NAME,
    reflection.SERVICE_NAME,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ImportResult:
    added: tuple[str, ...]
    unchanged: tuple[str, ...]


def import_registry(
    db: Database, registry_dir: Path, *, now: datetime
) -> ImportResult:
    """Import every agency's public bundle under ``registry_dir`` (one directory per agency)."""
    added: list[str] = []
    unchanged: list[str] = []
    if not registry_dir.is_dir():
        return ImportResult((), ())
    with db.read() as connection:
        registered = {row.agency_id for row in registry.list_agencies(connection)}
    for agency_dir in sorted(p for p in registry_dir.iterdir() if p.is_dir()):
        try:
            material = read_public_bundle(agency_dir, now=now)
        except CertificateError:
            # An agency already registered may have rotated since its bundle was made, and the
            # bundle's certificates expired: checked at the bundle statement's own date, it is
            # the registration the hub holds (anything else is still refused as a conflict).
            if agency_dir.name not in registered:
                raise
            material = read_public_bundle(agency_dir, now=_bundle_date(agency_dir))
        keys = material.keys
        with db.write() as connection:
            changed = registry.register_agency(
                connection, ca_certificate=material.ca_certificate, keys=keys, now=now
            )
        (added if changed else unchanged).append(keys.agency_id)
    return ImportResult(tuple(added), tuple(unchanged))


def _bundle_date(agency_dir: Path) -> datetime:
    """When the key statement of a public bundle was made (read before it is verified)."""
    envelope = Envelope.from_json((agency_dir / BUNDLE_KEYS_ENVELOPE).read_bytes())
    return parse_unverified(envelope).created_at.ToDatetime(tzinfo=UTC)


class Hub:
    """One hub replica.  ``start()`` binds and serves; ``stop()`` drains and closes.

    The gRPC server is ``grpc.aio``'s, on an event loop in a thread of its own (``hub-loop``), so
    ``start``, ``stop`` and the rest stay plain calls for the command line and the tests. Store
    transactions run on that loop's executor of ``max_workers`` threads
    (:mod:`exchange.hub.blocking`).
    """

    def __init__(
        self,
        config: HubConfig,
        *,
        clock: Callable[[], datetime] = utc_now,
        max_workers: int = BLOCKING_WORKERS,
    ) -> None:
        self.config = config
        self.clock = clock
        self.db = Database.from_url(config.database_url)
        self.notifier = FeedNotifier()
        self._replica_listener: ReplicaListener | None = None
        self.directory = AgencyDirectory(self.db, clock=clock)
        self.release_sweeper = ReleaseSweeper(self.db, self.notifier, clock=clock)
        self._max_workers = max_workers
        self._server: grpc.aio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._executor: futures.ThreadPoolExecutor | None = None
        self._stopped = threading.Event()
        self._health = health.HealthServicer()
        self.metrics = HubMetrics()
        # Names this hub's publish writer in the feed channel's notifications (PostgreSQL), so
        # its replica listener skips the writer's own commits: the writer wakes the streams.
        self._writer_name = f"writer-{secrets.token_hex(8)}"
        self.metrics.watch_store(self.db, clock=clock)
        self.log_state = LogStateFile(config.log_state_path, config.database_url)
        self._probe: DatabaseProbe | None = None
        self._health_server: grpc.Server | None = None
        self._metrics_server: MetricsServer | None = None
        self.port: int | None = None
        self.health_port: int | None = None
        self.metrics_port: int | None = None
        self.checkpointer: Checkpointer | None = None
        self.publishes: PublishQueue | None = None
        self._database_lock: DatabaseDirectoryLock | None = None

    def prepare(self) -> ImportResult:
        """Migrate the database, check that its log extends the latest checkpoint this hub
        signed, and import the registry (so an empty database just works).

        First, so that a refused start writes nothing: the key files are checked, the listen
        address must be free and an SQLite database's directory is locked for this hub alone.
        """
        read_startup_files(self.config)
        check_address_free(self.config.listen)
        self._database_lock = DatabaseDirectoryLock.acquire(self.config.database_url)
        try:
            self.db.migrate()
            self._check_log_state()
            result = import_registry(self.db, self.config.registry_dir, now=self.clock())
            self.directory.refresh()
        except BaseException:
            self._release_database()
            raise
        return result

    def _check_log_state(self) -> None:
        """Refuse a database behind the checkpoint remembered outside it (a restored backup)."""
        with self.db.read() as connection:
            self.log_state.check(connection)
        self.log_state.save()  # an unwritable state file fails here, not after a checkpoint

    def _release_database(self) -> None:
        if self._database_lock is not None:
            self._database_lock.release()
            self._database_lock = None

    def _start_checkpointer(self) -> Checkpointer:
        """Sign the log as it stands, then keep signing in the background (DESIGN §8)."""
        self._check_log_state()
        try:
            key = SigningKey.from_pem(self.config.checkpoint_key.read_bytes())
        except OSError as e:
            raise ConfigurationError(f"cannot read the checkpoint key: {e}") from e
        checkpointer = Checkpointer(
            self.db,
            NoteSigner(self.config.log_origin, key.native),
            origin=self.config.log_origin,
            interval=self.config.checkpoint_interval_seconds,
            clock=self.clock,
            log_state=self.log_state,
        )
        checkpointer.checkpoint_now()
        checkpointer.start()
        return checkpointer

    def checkpoint_now(self) -> StoredCheckpoint:
        """Hash every committed leaf and sign a checkpoint now; return the latest checkpoint."""
        if self.checkpointer is None:
            raise ConfigurationError("the hub is not started")
        return self.checkpointer.checkpoint_now()

    def _credentials(self) -> grpc.ServerCredentials:
        key = self.config.tls_key.read_bytes()
        cert = self.config.tls_certificate.read_bytes()
        served_bundle = self.directory.ca_bundle_pem()
        if not served_bundle:
            raise ConfigurationError("no agencies registered: run `exchange-hub agency add` first")

        def fetch() -> grpc.ServerCertificateConfiguration:
            nonlocal served_bundle
            bundle = self.directory.ca_bundle_pem()
            if bundle == served_bundle:
                return None  # type: ignore[return-value]  # grpc: None means "unchanged"
            served_bundle = bundle
            return grpc.ssl_server_certificate_configuration([(key, cert)], bundle)

        initial = grpc.ssl_server_certificate_configuration([(key, cert)], served_bundle)
        return grpc.dynamic_ssl_server_credentials(
            initial, fetch, require_client_authentication=True
        )

    def start(self, listen: str | None = None) -> int:
        """Bind ``listen`` (``HOST:PORT``; port 0 picks one) and serve; returns the port."""
        self.checkpointer = self._start_checkpointer()
        publishes = self.publishes = PublishQueue(
            self.db,
            self.notifier,
            clock=self.clock,
            sign=self.checkpointer.sign_batch,
            observe_batch=self.metrics.group_commit_batch.observe,
            sender=self._writer_name,
        )
        context = HubContext(
            db=self.db,
            directory=self.directory,
            notifier=self.notifier,
            clock=self.clock,
            limits=PublishLimits(max_request_bytes=self.config.max_message_bytes),
            heartbeat_interval=self.config.heartbeat_interval_seconds,
            publishes=publishes,
            checkpointer=self.checkpointer,
            sweep_on_read=self.release_sweeper.sweep_on_read,
        )
        publishes.start(self._start_loop())
        address = listen or self.config.listen
        try:
            port = self._on_loop(self._serve(context, address))
        except BaseException:
            publishes.stop()
            self._stop_loop()
            raise
        self.port = port
        self._probe = DatabaseProbe(
            self.db,
            self._health,
            SERVICE_NAMES[:5],
            log_state=self.log_state,
            on_change=lambda up: self.metrics.database_up.set(1 if up else 0),
        )
        self._probe.probe_now()
        self._probe.start()
        if self.config.health_listen is not None:
            self._health_server, self.health_port = serve_health_port(
                self._health, self.config.health_listen
            )
        if self.config.metrics_listen is not None:
            self._metrics_server = self.metrics.serve(self.config.metrics_listen)
            self.metrics_port = self._metrics_server.port
        self.release_sweeper.start()
        if self.db.is_postgresql:  # replicas on one database wake each other's streams
            self._replica_listener = ReplicaListener(
                self.db.engine.url, self.notifier, own_writer=self._writer_name
            )
            self._replica_listener.start()
        return port

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        self._executor = futures.ThreadPoolExecutor(
            max_workers=self._max_workers, thread_name_prefix="hub-db"
        )
        loop.set_default_executor(self._executor)
        self._loop = loop
        self._loop_thread = threading.Thread(target=loop.run_forever, name="hub-loop", daemon=True)
        self._loop_thread.start()
        self.notifier.attach(loop)
        self._stopped.clear()
        return loop

    def _on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the hub's loop and wait for its result."""
        if self._loop is None:
            raise ConfigurationError("the hub is not started")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _serve(self, context: HubContext, address: str) -> int:
        server = grpc.aio.server(
            # Observed first, so every call is counted and logged with the status it got.
            interceptors=[
                ObservingInterceptor(CallObserver(self.metrics)),
                GuardInterceptor(self.directory),
            ],
            options=[
                ("grpc.max_receive_message_length", TRANSPORT_MESSAGE_LIMIT),
                ("grpc.max_send_message_length", TRANSPORT_MESSAGE_LIMIT),
                # No port sharing: a second hub on this address fails instead of splitting
                # the traffic with the first.
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=MAXIMUM_CONCURRENT_RPCS,
        )
        directory_pb2_grpc.add_DirectoryServiceServicer_to_server(DirectoryServicer(context), server)
        alerts_pb2_grpc.add_AlertServiceServicer_to_server(AlertServicer(context), server)
        release_pb2_grpc.add_ReleaseServiceServicer_to_server(ReleaseServicer(context), server)
        audit_pb2_grpc.add_AuditServiceServicer_to_server(
            AuditServicer(self.db, clock=self.clock), server
        )
        match_pb2_grpc.add_MatchServiceServicer_to_server(
            MatchServicer(context, metrics=self.metrics), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(AsyncHealth(self._health), server)
        reflection.enable_server_reflection(SERVICE_NAMES, server)
        try:
            port = server.add_secure_port(address, self._credentials())
        except RuntimeError as e:
            check_address_free(address)  # names why, when the address is taken
            raise ConfigurationError(f"cannot listen on {address}: {e}") from e
        await server.start()
        self._server = server
        return port

    def wait(self) -> None:
        """Block until :meth:`stop` has stopped the hub."""
        if self._server is not None:
            self._stopped.wait()

    def probe_database(self) -> bool:
        """Probe the database now and set the health service by the answer (tests)."""
        if self._probe is None:
            raise ConfigurationError("the hub is not started")
        return self._probe.probe_now()

    def stop(self, grace: float = 2.0) -> None:
        self.notifier.close()
        if self._probe is not None:
            self._probe.stop()
        self._health.enter_graceful_shutdown()
        if self._server is not None:
            self._on_loop(self._server.stop(grace))
            self._server = None
        if self.publishes is not None:
            self.publishes.stop()  # after the calls: what they queued is written first
        self._stop_loop()
        if self._health_server is not None:
            self._health_server.stop(0).wait()
        if self._metrics_server is not None:
            self._metrics_server.stop()
        self.release_sweeper.stop(timeout=10)
        if self._replica_listener is not None:
            self._replica_listener.stop()
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.db.dispose()
        self._release_database()
        self._stopped.set()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._loop_thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        self._loop = self._loop_thread = None
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
