"""A feed stream whose checkpoints and events are verified as they pass."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc

from exchange.v1 import alerts_pb2

if TYPE_CHECKING:
    from exchange_client._internal.audit.auditor import Auditor

COSIGN_SPACING_SECONDS = 2.0
"""Shortest time between two cosignatures of one process while it follows a feed stream or
publishes (its first cosignature goes at once, and so do those of the audit commands)."""


class AuditedStream(Iterator[alerts_pb2.SubscribeResponse]):
    """A ``Subscribe`` stream whose checkpoints and events are verified as they pass.

    A heartbeat's checkpoint is accepted (consistency proof, saved, cosigned) before the
    heartbeat is handed on; events wait until a verified checkpoint covers them, then each must
    be proven in the log (a feed event's logged body is the event without its log index).
    """

    def __init__(
        self, call: grpc.CallIterator[alerts_pb2.SubscribeResponse], auditor: Auditor
    ) -> None:
        self._call = call
        self._responses = iter(call)
        self._auditor = auditor

    def __iter__(self) -> AuditedStream:
        return self

    def __next__(self) -> alerts_pb2.SubscribeResponse:
        response = next(self._responses)
        self._auditor.audit_response(response)
        return response

    def cancel(self) -> None:
        """Cancel the underlying call."""
        self._call.cancel()  # type: ignore[no-untyped-call]
