"""The client's one way to the hub: the mTLS channel, the service stubs, and every call.

Every unary call goes through :meth:`Transport.call` (:meth:`AsyncTransport.call` on
``grpc.aio``), which applies the timeout and maps a ``grpc.RpcError`` to the domain error
(:func:`~exchange_client._internal.status.hub_errors`), so no ``grpc.RpcError`` escapes the
library. Nothing here decides anything about alerts, statements or the log: the operations of
:mod:`~exchange_client._internal.calls` do, the same for both transports.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import grpc

from exchange.v1 import (
    alerts_pb2,
    alerts_pb2_grpc,
    audit_pb2_grpc,
    directory_pb2_grpc,
    match_pb2_grpc,
    release_pb2_grpc,
)
from exchange_client._internal.errors import ClientClosedError, check_same_process
from exchange_client._internal.profile import Profile
from exchange_client._internal.request_ids import RequestIdInterceptor, with_request_id
from exchange_client._internal.status import hub_errors

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""gRPC transport limit each way; above the hub's own limits, so the hub answers with details."""

_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # After a hub restart the channel reconnects within a few seconds, not grpc's default of
    # up to two minutes, so that the client's own retries find the hub back soon.
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5000),
]

_PUBLISH_METHOD = "/exchange.v1.AlertService/Publish"

Response = TypeVar("Response")
Metadata = Sequence[tuple[str, str]]


def _credentials(profile: Profile) -> grpc.ChannelCredentials:
    """Mutual TLS with the profile's identity, trusting the profile's hub CA only."""
    return grpc.ssl_channel_credentials(
        root_certificates=profile.hub_ca_certificate_pem,
        private_key=profile.tls_key_pem,
        certificate_chain=profile.tls_certificate_pem,
    )


def _publish_method(channel: Any) -> Any:
    """``Publish`` on ``channel``, sending bytes exactly as sealed and saved: no
    re-serialization between retries."""
    return channel.unary_unary(
        _PUBLISH_METHOD,
        request_serializer=None,
        response_deserializer=alerts_pb2.PublishResponse.FromString,
    )


class _Stubs:
    """The service stubs over one channel (blocking or ``grpc.aio``), and its lifetime: closed
    or not, and the process it belongs to."""

    def __init__(self, channel: Any, *, target: str, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self.channel = channel
        self._created_in = os.getpid()
        self._closed = False
        self.directory = directory_pb2_grpc.DirectoryServiceStub(channel)
        self.alerts = alerts_pb2_grpc.AlertServiceStub(channel)
        self.release = release_pb2_grpc.ReleaseServiceStub(channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(channel)
        self.match = match_pb2_grpc.MatchServiceStub(channel)
        # Publish sends bytes exactly as sealed and saved: no re-serialization between retries.
        self._publish_bytes = _publish_method(channel)

    def check_usable(self) -> None:
        """Raise :class:`ClientClosedError` after :meth:`close`, and
        :class:`~exchange_client._internal.errors.ClientForkedError` in a forked child."""
        if self._closed:
            raise ClientClosedError("this client is closed: create a new one to talk to the hub")
        check_same_process(self._created_in, "this client")

    def _mark_closed(self) -> bool:
        """Mark closed; whether the channel is this process's to close."""
        if self._closed:
            return False
        self._closed = True
        return os.getpid() == self._created_in


class AsyncTransport(_Stubs):
    """The stubs over a ``grpc.aio`` channel to the hub at ``target``: as :class:`Transport`,
    each call awaited."""

    @classmethod
    def secure(cls, profile: Profile, *, target: str, timeout: float) -> AsyncTransport:
        """A mutual-TLS ``grpc.aio`` channel to ``target`` (see :meth:`Transport.secure`)."""
        channel = grpc.aio.secure_channel(target, _credentials(profile), options=_CHANNEL_OPTIONS)
        return cls(channel, target=target, timeout=timeout)

    async def call(self, method: Any, request: Any, *, metadata: Metadata | None = None) -> Any:
        """Await the unary ``method`` with the timeout; hub errors become domain ones."""
        self.check_usable()
        with hub_errors(self.target):
            return await method(request, timeout=self.timeout, metadata=with_request_id(metadata))

    async def publish_bytes(
        self, request: bytes, *, metadata: Metadata
    ) -> alerts_pb2.PublishResponse:
        """Send a sealed ``PublishRequest`` exactly as saved in the outbox."""
        response: alerts_pb2.PublishResponse = await self.call(
            self._publish_bytes, request, metadata=metadata
        )
        return response

    def subscribe(self, after: int) -> Any:
        """Open the feed stream from ``after`` (a ``grpc.aio`` stream call, no timeout)."""
        self.check_usable()
        return self.alerts.Subscribe(
            alerts_pb2.SubscribeRequest(after=after), metadata=with_request_id(None)
        )

    async def close(self) -> None:
        """Close the channel (idempotent); open streams end with it."""
        if self._mark_closed():
            await self.channel.close()


class Transport(_Stubs):
    """The stubs over ``channel`` to the hub at ``target``; each unary call gets ``timeout``."""

    directory: directory_pb2_grpc.DirectoryServiceStub
    alerts: alerts_pb2_grpc.AlertServiceStub
    release: release_pb2_grpc.ReleaseServiceStub
    audit: audit_pb2_grpc.AuditServiceStub
    match: match_pb2_grpc.MatchServiceStub

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        target: str,
        timeout: float,
        publish_channel: grpc.Channel | None = None,
    ) -> None:
        super().__init__(channel, target=target, timeout=timeout)
        if publish_channel is not None:
            # The publish, the call made most, goes past the interceptor (its Python layers
            # cost more than the call's own): :meth:`publish_bytes` adds the request id itself.
            self._publish_bytes = _publish_method(publish_channel)

    @classmethod
    def secure(cls, profile: Profile, *, target: str, timeout: float) -> Transport:
        """A mutual-TLS channel to ``target`` with the profile's identity and trusted hub CA."""
        raw = grpc.secure_channel(target, _credentials(profile), options=_CHANNEL_OPTIONS)
        channel = grpc.intercept_channel(raw, RequestIdInterceptor())
        return cls(channel, target=target, timeout=timeout, publish_channel=raw)

    def call(
        self,
        method: Callable[..., Response],
        request: Any,
        *,
        metadata: Metadata | None = None,
    ) -> Response:
        """Call the unary ``method`` (a stub's) with the timeout; hub errors become domain ones."""
        self.check_usable()
        with hub_errors(self.target):
            if metadata is None:
                return method(request, timeout=self.timeout)
            return method(request, timeout=self.timeout, metadata=metadata)

    def publish_bytes(self, request: bytes, *, metadata: Metadata) -> alerts_pb2.PublishResponse:
        """Send a sealed ``PublishRequest`` exactly as saved in the outbox."""
        response: alerts_pb2.PublishResponse = self.call(
            self._publish_bytes, request, metadata=with_request_id(metadata)
        )
        return response

    def subscribe(self, after: int) -> grpc.CallIterator[alerts_pb2.SubscribeResponse]:
        """Open the feed stream from ``after`` (no timeout: it stays open)."""
        self.check_usable()
        return self.alerts.Subscribe(alerts_pb2.SubscribeRequest(after=after))

    def close(self) -> None:
        """Close the channel (idempotent); open streams end with it.

        In a forked child only this copy is marked closed: the channel is the parent's.
        """
        if self._mark_closed():
            self.channel.close()
