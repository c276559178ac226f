"""The hub's Prometheus metrics: one registry per hub, served as text format over HTTP.

Counters and histograms move as calls are answered (:mod:`exchange.hub.observer` feeds them);
the figures about the store — log size, how long ago the latest checkpoint was signed, pending
release requests — are read from the database when Prometheus scrapes, by a custom collector.

No label carries anything a caller chose: methods are the hub's registered methods, codes are
gRPC status codes, reasons are the hub's own ``ErrorInfo`` reasons. No alert id, item id,
agency id, selector or payload text ever becomes a label value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from exchange.config.profile import parse_host_port
from exchange.errors import ConfigurationError, ExchangeError
from exchange.store.db import Database
from exchange.store.stats import read_stats

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class HubMetrics:
    """Every metric of one hub, in a registry of its own (two hubs in one process stay apart)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rpcs = Counter(
            "exchange_rpcs", "Calls answered, by method and gRPC status code.",
            ["method", "code"], registry=r,
        )
        self.rpc_seconds = Histogram(
            "exchange_rpc_duration_seconds", "Time from a call's arrival to its answer.",
            ["method"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.publishes = Counter(
            "exchange_publishes", "Publishes answered with a receipt (a retried one counts again).",
            registry=r,
        )
        self.deliveries = Counter(
            "exchange_feed_events_delivered", "Feed events handed to their recipient agencies.",
            ["via"], registry=r,
        )
        self.refusals = Counter(
            "exchange_refusals", "Calls refused by the application, by ErrorInfo reason.",
            ["reason"], registry=r,
        )
        self.group_commit_batch = Histogram(
            "exchange_group_commit_batch_size", "Publishes committed together in one transaction.",
            buckets=_BATCH_BUCKETS, registry=r,
        )
        self.open_streams = Gauge(
            "exchange_open_feed_streams", "Subscribe streams open now.", registry=r
        )
        # Private matching: counts only, no label (no agency, token or selector ever is one).
        self.match_queries = Counter(
            "exchange_match_queries", "Matching queries answered.", registry=r
        )
        self.match_selectors = Counter(
            "exchange_match_selectors_queried", "Selectors asked about in answered queries.",
            registry=r,
        )
        self.match_hits = Counter(
            "exchange_match_hits", "Selectors of answered queries that hit a holder's token.",
            registry=r,
        )
        self.match_burst_queries = Counter(
            "exchange_match_burst_queries",
            "Queries answered while their pair's minute was a burst (over a tenth of the "
            "holder's daily budget for the querier).",
            registry=r,
        )
        self.database_up = Gauge(
            "exchange_database_up", "1 while the hub's database answers its health probe, else 0.",
            registry=r,
        )

    def watch_store(self, db: Database, *, clock: Callable[[], datetime]) -> None:
        """Read the store's figures from ``db`` at every scrape."""
        self.registry.register(_StoreCollector(db, clock=clock))

    def serve(self, listen: str) -> MetricsServer:
        """Serve the registry as Prometheus text format at ``http://listen/metrics``."""
        host, port = parse_host_port(listen)
        try:
            server, _thread = start_http_server(port, addr=host.strip("[]"), registry=self.registry)
        except OSError as e:
            raise ConfigurationError(f"cannot serve metrics on {listen}: {e}") from e
        return MetricsServer(server)


class MetricsServer:
    """The HTTP server of :meth:`HubMetrics.serve`."""

    def __init__(self, server: WSGIServer) -> None:
        self._server = server

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _StoreCollector(Collector):
    """The store's figures, read in one read transaction per scrape (none while the database is
    down: the scrape then shows ``exchange_database_up 0`` and no stale figures)."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # figures read at scrape time only: nothing to describe up front

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with self._db.read() as connection:
                stats = read_stats(connection)
        except ExchangeError as e:
            log.debug("store figures unavailable for this scrape: %s", e.message)
            return
        yield GaugeMetricFamily(
            "exchange_log_size", "Entries appended to the audit log.", value=stats.log_size
        )
        yield GaugeMetricFamily(
            "exchange_log_unsigned_entries",
            "Entries appended but not yet covered by a signed checkpoint.",
            value=stats.log_size - stats.checkpoint_size,
        )
        if stats.checkpoint_signed_at is not None:
            age = (self._clock() - stats.checkpoint_signed_at).total_seconds()
            yield GaugeMetricFamily(
                "exchange_seconds_since_last_checkpoint",
                "Seconds since the latest checkpoint was signed (an idle log signs none).",
                value=max(age, 0.0),
            )
        yield GaugeMetricFamily(
            "exchange_pending_release_requests",
            "Release requests neither approved nor denied yet.",
            value=stats.pending_release_requests,
        )
