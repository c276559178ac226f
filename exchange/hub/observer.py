"""What every call leaves behind: metric samples and one structured log line.

:class:`CallObserver` is plain Python — it takes a method name, the call's metadata and peer,
and the status it was answered with — so the asyncio server's interceptor (:class:`ObservingInterceptor`,
here) and any other adapter can share it. It sits outside the guard that authenticates and maps
errors, so it sees every refusal with the ``ErrorInfo`` reason that mapping attached.

**Request ids.** A caller may send ``x-request-id`` (1-64 characters of letters, digits and
``._:-``); otherwise the hub makes one. The hub logs it with the call and sends it back in the
trailing metadata, where the client library puts it into its error messages, so an operator can
find the hub's log line for an error an agency reports.

Nothing a caller chose goes into a log line or a label but the request id (whose characters are
restricted): no alert id, item id, selector, message text or payload. The calling agency is the
one its certificate names (``exchange://agency/<id>``), so a refused call is logged with the
agency it claimed to be.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from prometheus_client import Counter, Histogram

from exchange.hub.metrics import HubMetrics
from exchange.pki import AGENCY_URI_PREFIX
from exchange.v1 import alerts_pb2

log = logging.getLogger("exchange.hub.calls")

REQUEST_ID_METADATA = "x-request-id"
"""Call metadata (request and trailing) carrying the request id."""

_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_STATUS_DETAILS = "grpc-status-details-bin"
_UNLOGGED_PREFIXES = ("/grpc.health.v1.Health/",)  # probes every few seconds: counted only
_SUBSCRIBE = "/exchange.v1.AlertService/Subscribe"
_PUBLISH = "/exchange.v1.AlertService/Publish"

Metadata = Sequence[tuple[str, str | bytes]]


def _short_name(method: str) -> str:
    """``/exchange.v1.AlertService/Publish`` → ``AlertService/Publish``."""
    return method.rpartition(".")[2] or method


class _RandomIds:
    """New request ids: 128 random bits as 32 hex digits, from ``os.urandom`` read in blocks
    (one system call per :data:`_IDS_PER_READ` ids instead of one per call)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: Iterator[str] = iter(())

    def next(self) -> str:
        with self._lock:
            new = next(self._ids, None)
            if new is None:
                block = os.urandom(16 * _IDS_PER_READ).hex()
                self._ids = iter([block[i : i + 32] for i in range(32, len(block), 32)])
                new = block[:32]
            return new


_IDS_PER_READ = 64
_new_request_id = _RandomIds().next


def request_id_from(metadata: Metadata | None) -> str:
    """The caller's request id when it sent a usable one, else a new one."""
    for key, value in metadata or ():
        if key == REQUEST_ID_METADATA and isinstance(value, str) and _REQUEST_ID.fullmatch(value):
            return value
    return _new_request_id()


def reason_from_trailers(metadata: Metadata | None) -> str | None:
    """The ``ErrorInfo`` reason in a status's ``grpc-status-details-bin`` trailer, if any."""
    for key, value in metadata or ():
        if key != _STATUS_DETAILS or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except DecodeError:
            return None
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return info.reason or None
    return None


def agency_from_auth_context(auth_context: Mapping[str, Any]) -> str | None:
    """The agency id the peer certificate's SAN URI names (verified or not: see module doc)."""
    for key in ("peer_uri", "x509_subject_alternative_name"):
        for value in auth_context.get(key, ()):
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
            if text.startswith(AGENCY_URI_PREFIX):
                return text[len(AGENCY_URI_PREFIX):]
    return None


@dataclass
class CallRecord:
    """One call being served."""

    method: str
    request_id: str
    agency: str | None
    started: float
    logged: bool = True


class CallObserver:
    """Counts, times and logs calls; ``metrics`` may be ``None`` (logs only)."""

    def __init__(
        self, metrics: HubMetrics | None, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._metrics = metrics
        self._monotonic = monotonic
        # The labelled children by label values: looked up once, not on every call.
        self._rpcs: dict[tuple[str, grpc.StatusCode], Counter] = {}
        self._seconds: dict[str, Histogram] = {}

    def _answered(self, short: str, code: grpc.StatusCode) -> Counter:
        assert self._metrics is not None
        child = self._rpcs.get((short, code))
        if child is None:
            child = self._metrics.rpcs.labels(method=short, code=code.name)
            self._rpcs[(short, code)] = child
        return child

    def _timed(self, short: str) -> Histogram:
        assert self._metrics is not None
        child = self._seconds.get(short)
        if child is None:
            child = self._metrics.rpc_seconds.labels(method=short)
            self._seconds[short] = child
        return child

    def begin(self, method: str, metadata: Metadata | None, agency: str | None) -> CallRecord:
        record = CallRecord(
            method=method,
            request_id=request_id_from(metadata),
            agency=agency,
            started=self._monotonic(),
            logged=not method.startswith(_UNLOGGED_PREFIXES),
        )
        if method == _SUBSCRIBE and self._metrics is not None:
            self._metrics.open_streams.inc()
        return record

    def sent(self, record: CallRecord, response: object) -> None:
        """Note a response message: feed events in it count as deliveries."""
        if self._metrics is None:
            return
        if isinstance(response, alerts_pb2.SubscribeResponse) and response.HasField("event"):
            self._metrics.deliveries.labels(via="stream").inc()
        elif isinstance(response, alerts_pb2.ListEventsResponse) and response.events:
            self._metrics.deliveries.labels(via="poll").inc(len(response.events))

    def finish(self, record: CallRecord, code: grpc.StatusCode, reason: str | None) -> None:
        """Record the call's outcome: ``code`` as answered, ``reason`` from its ErrorInfo."""
        seconds = self._monotonic() - record.started
        short = _short_name(record.method)
        if self._metrics is not None:
            self._answered(short, code).inc()
            self._timed(short).observe(seconds)
            if reason is not None and code is not grpc.StatusCode.OK:
                self._metrics.refusals.labels(reason=reason).inc()
            if record.method == _PUBLISH and code is grpc.StatusCode.OK:
                self._metrics.publishes.inc()
            if record.method == _SUBSCRIBE:
                self._metrics.open_streams.dec()
        if not record.logged:
            return
        level = logging.WARNING if code in _SERVER_FAULTS else logging.INFO
        fields: dict[str, Any] = {
            "method": short,
            "agency": record.agency,
            "status": code.name,
            "duration_ms": round(seconds * 1000, 3),
            "request_id": record.request_id,
        }
        if reason is not None and code is not grpc.StatusCode.OK:
            fields["reason"] = reason
        log.log(level, "rpc", extra={"event": "rpc", "fields": fields})


_SERVER_FAULTS = frozenset(
    {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}
)


class ObservingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """The asyncio server's adapter of :class:`CallObserver`; goes first in the chain."""

    def __init__(self, observer: CallObserver) -> None:
        self._observer = observer
        # By method: the inner handler last seen and its wrapped handler.
        self._wrapped: dict[
            str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]
        ] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(details)
        if handler is None:  # an unknown method: grpc answers UNIMPLEMENTED, never a label
            return None
        method = details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """The handler of ``method`` observed; built once per method (the wrappers keep no
        per-call state), so a call costs no new closures or handler here."""
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _begin(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> CallRecord:
        record = self._observer.begin(
            method,
            context.invocation_metadata(),  # type: ignore[arg-type]
            agency_from_auth_context(context.auth_context()),
        )
        # Set first: an abort (the guard's) sends the trailers already set with its own.
        context.set_trailing_metadata(((REQUEST_ID_METADATA, record.request_id),))
        return record

    def _finish(
        self,
        record: CallRecord,
        context: grpc.aio.ServicerContext[Any, Any],
        unset: grpc.StatusCode,
    ) -> None:
        """Read the answer off the context and record the call.

        The guard's abort left the code and the details trailer on the context (beside the
        request id set by :meth:`_begin`).
        """
        trailers = tuple(context.trailing_metadata() or ())
        code = context.code() or unset
        self._observer.finish(record, code, reason_from_trailers(trailers))

    def _wrap_unary(self, method: str, behavior: Callable[..., Awaitable[Any]]) -> Any:
        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            record = self._begin(method, context)
            unset = grpc.StatusCode.UNKNOWN  # what grpc answers an exception without a status
            try:
                response = await behavior(request, context)
                self._observer.sent(record, response)
                unset = grpc.StatusCode.OK
                return response
            except asyncio.CancelledError:  # the caller went away or the hub stops
                unset = grpc.StatusCode.CANCELLED
                raise
            finally:
                self._finish(record, context, unset)

        return unary

    def _wrap_stream(
        self, method: str, behavior: Callable[..., Any]
    ) -> Any:
        async def stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            record = self._begin(method, context)
            unset = grpc.StatusCode.UNKNOWN
            try:
                async for response in behavior(request, context):
                    self._observer.sent(record, response)
                    yield response
                unset = grpc.StatusCode.OK
            except (asyncio.CancelledError, GeneratorExit):  # no status is sent
                unset = grpc.StatusCode.CANCELLED
                raise
            finally:
                self._finish(record, context, unset)

        return stream
