"""Health: the hub's standard ``grpc.health.v1`` service follows its database, and a probe.

:class:`DatabaseProbe` asks the database a one-row question every second; the health service
answers ``NOT_SERVING`` (for the whole server and each service) from the first probe that fails
or takes longer than :data:`PROBE_TIMEOUT_SECONDS`, and ``SERVING`` again from the first that
answers, so a load balancer or Kubernetes takes a replica whose database is gone out of rotation
within about two seconds and puts it back once it recovers — without a restart. It also says
``NOT_SERVING`` when the database's log is behind the checkpoint the hub last signed (a restore
under a running hub).

The health service is served on the mTLS port (any peer with a certificate the hub accepts may
ask) and, when ``health_listen`` is set, on a plaintext port of its own that serves nothing
else, so that probes which hold no agency certificate — ``exchange-hub health``, Docker's
``HEALTHCHECK``, Kubernetes — can ask. :func:`check_health` is the probe's side.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from exchange.errors import ConfigurationError, ExchangeError, UnavailableError
from exchange.hub.background import BackgroundThread
from exchange.hub.log_state import LogStateFile
from exchange.store.db import Database
from exchange.store.schema import log_head

log = logging.getLogger(__name__)

PROBE_INTERVAL_SECONDS = 1.0
PROBE_TIMEOUT_SECONDS = 3.0

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class DatabaseProbe(BackgroundThread):
    """Sets ``services`` (and the whole server, ``""``) SERVING or NOT_SERVING by the database."""

    def __init__(
        self,
        db: Database,
        servicer: health.HealthServicer,
        services: Iterable[str],
        *,
        log_state: LogStateFile | None = None,
        on_change: Callable[[bool], None] | None = None,
        interval: float = PROBE_INTERVAL_SECONDS,
        timeout: float = PROBE_TIMEOUT_SECONDS,
    ) -> None:
        self._db = db
        self._servicer = servicer
        self._services = ("", *services)
        self._log_state = log_state
        self._on_change = on_change
        self._interval = interval
        self._timeout = timeout
        self._healthy: bool | None = None
        # One worker: a probe that hangs (a half-open connection) is waited for at most
        # ``timeout`` and the next one is not started until it returns.
        self._worker = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-probe")
        self._pending: futures.Future[None] | None = None
        super().__init__("database-probe")

    def probe_now(self) -> bool:
        """Ask the database once, set the health service by the answer, and return it."""
        if self._pending is None or self._pending.done():
            self._pending = self._worker.submit(self._ask_database)
        try:
            self._pending.result(timeout=self._timeout)
            healthy = True
        except futures.TimeoutError:
            log.warning("the database did not answer the health probe within %.0f s", self._timeout)
            healthy = False
        except ExchangeError as e:
            log.warning("database health probe failed: %s", e.message)
            healthy = False
        except SQLAlchemyError as e:  # a schema problem, say: not serving either, and said why
            log.warning("database health probe failed: %s", e)
            healthy = False
        self._set(healthy)
        return healthy

    def _ask_database(self) -> None:
        with self._db.read() as connection:
            connection.execute(select(log_head.c.size).where(log_head.c.id == 1)).scalar_one()
            if self._log_state is not None:
                self._log_state.check(connection)

    def _set(self, healthy: bool) -> None:
        if healthy == self._healthy:
            return
        if self._healthy is not None:
            log.warning("health: %s", "SERVING" if healthy else "NOT_SERVING (database)")
        self._healthy = healthy
        for service in self._services:
            self._servicer.set(service, SERVING if healthy else NOT_SERVING)
        if self._on_change is not None:
            self._on_change(healthy)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.probe_now()

    def stop(self, timeout: float | None = None) -> None:
        super().stop(timeout)
        self._worker.shutdown(wait=False, cancel_futures=True)


class AsyncHealth(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """The health service on the hub's asyncio server, answering from the state that
    :class:`DatabaseProbe` sets on a synchronous :class:`~grpc_health.v1.health.HealthServicer`
    (which the plaintext health port serves as it is)."""

    def __init__(self, states: health.HealthServicer, *, watch_interval: float = 1.0) -> None:
        self._states = states
        self._watch_interval = watch_interval

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: Any
    ) -> health_pb2.HealthCheckResponse:
        # The synchronous servicer's Check only reads its map (NOT_FOUND set on the context).
        return self._states.Check(request, context)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: Any
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        """The status now and at every change (looked at every ``watch_interval`` seconds)."""
        last = None
        while True:
            with self._states._lock:  # the map has no public reader
                status = self._states._server_status.get(
                    request.service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
                )
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            await asyncio.sleep(self._watch_interval)


def serve_health_port(servicer: health.HealthServicer, listen: str) -> tuple[grpc.Server, int]:
    """A plaintext server on ``listen`` with the health service only; returns it and its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="health"))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    try:
        port = server.add_insecure_port(listen)
    except RuntimeError as e:
        raise ConfigurationError(f"cannot serve health on {listen}: {e}") from e
    server.start()
    return server, port


def check_health(
    address: str,
    *,
    service: str = "",
    timeout: float = 5.0,
    credentials: grpc.ChannelCredentials | None = None,
) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
    """Ask the health service at ``address`` about ``service`` (``""``: the whole hub).

    Raises :class:`UnavailableError` when nothing answers in ``timeout`` seconds.
    """
    channel = (
        grpc.secure_channel(address, credentials)
        if credentials is not None
        else grpc.insecure_channel(address)
    )
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as e:
            code = e.code() if isinstance(e, grpc.Call) else grpc.StatusCode.UNKNOWN
            raise UnavailableError(
                f"the hub's health service at {address} did not answer ({code.name})"
            ) from e
    return response.status
