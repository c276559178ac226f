"""Every call to the hub carries a request id (``x-request-id``), which the hub logs with the
call and returns; error messages name it (:mod:`exchange_client._internal.status`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from exchange_client._internal.status import REQUEST_ID_METADATA


def with_request_id(
    metadata: Sequence[tuple[str, str]] | None,
) -> tuple[tuple[str, str], ...]:
    """``metadata`` with a fresh request id unless it carries one (``grpc.aio`` calls, which
    the blocking channel's interceptor does not see)."""
    pairs = tuple(metadata or ())
    if any(key == REQUEST_ID_METADATA for key, _ in pairs):
        return pairs
    return (*pairs, (REQUEST_ID_METADATA, uuid.uuid4().hex))


class _Details(grpc.ClientCallDetails):
    def __init__(
        self, details: grpc.ClientCallDetails, metadata: tuple[tuple[str, str | bytes], ...]
    ) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


class RequestIdInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Adds a fresh request id to every call that does not carry one."""

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = list(details.metadata or ())
        if not any(key == REQUEST_ID_METADATA for key, _ in metadata):
            metadata.append((REQUEST_ID_METADATA, uuid.uuid4().hex))
        return _Details(details, tuple(metadata))

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        return continuation(self._details(details), request)
