"""The client's one way to the hub: the mTLS channel, the service stubs, and every call.

Every unary call goes through :meth:`Transport.call`, which applies the timeout and maps a
``grpc.RpcError`` to the domain error (:func:`~exchange_client._internal.status.hub_errors`),
so no ``grpc.RpcError`` escapes the library. Nothing here decides anything about alerts,
statements or the log: the modules per concern do, and an asynchronous client on ``grpc.aio``
would replace this module alone.
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
from exchange_client._internal.request_ids import RequestIdInterceptor
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


class Transport:
    """The stubs over ``channel`` to the hub at ``target``; each unary call gets ``timeout``."""

    def __init__(self, channel: grpc.Channel, *, target: str, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self.channel = channel
        self._created_in = os.getpid()
        self._closed = False
        self.directory = directory_pb2_grpc.DirectoryServiceStub(self.channel)
        self.alerts = alerts_pb2_grpc.AlertServiceStub(self.channel)
        self.release = release_pb2_grpc.ReleaseServiceStub(self.channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self.channel)
        self.match = match_pb2_grpc.MatchServiceStub(self.channel)
        # Publish sends bytes exactly as sealed and saved: no re-serialization between retries.
        self._publish_bytes = self.channel.unary_unary(
            _PUBLISH_METHOD,
            request_serializer=None,
            response_deserializer=alerts_pb2.PublishResponse.FromString,
        )

    @classmethod
    def secure(cls, profile: Profile, *, target: str, timeout: float) -> Transport:
        """A mutual-TLS channel to ``target`` with the profile's identity and trusted hub CA."""
        credentials = grpc.ssl_channel_credentials(
            root_certificates=profile.hub_ca_certificate_pem,
            private_key=profile.tls_key_pem,
            certificate_chain=profile.tls_certificate_pem,
        )
        channel = grpc.intercept_channel(
            grpc.secure_channel(target, credentials, options=_CHANNEL_OPTIONS),
            RequestIdInterceptor(),
        )
        return cls(channel, target=target, timeout=timeout)

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
            self._publish_bytes, request, metadata=metadata
        )
        return response

    def subscribe(self, after: int) -> grpc.CallIterator[alerts_pb2.SubscribeResponse]:
        """Open the feed stream from ``after`` (no timeout: it stays open)."""
        self.check_usable()
        return self.alerts.Subscribe(alerts_pb2.SubscribeRequest(after=after))

    def check_usable(self) -> None:
        """Raise :class:`ClientClosedError` after :meth:`close`, and
        :class:`~exchange_client._internal.errors.ClientForkedError` in a forked child."""
        if self._closed:
            raise ClientClosedError("this client is closed: create a new one to talk to the hub")
        check_same_process(self._created_in, "this client")

    def close(self) -> None:
        """Close the channel (idempotent); open streams end with it.

        In a forked child only this copy is marked closed: the channel is the parent's.
        """
        if self._closed:
            return
        self._closed = True
        if os.getpid() == self._created_in:
            self.channel.close()
