"""The one place where a ``grpc.RpcError`` becomes an :mod:`exchange.errors` error.

The hub answers with a gRPC status code and, when the application (not the transport) answered,
``google.rpc.Status`` details: an ``ErrorInfo`` with a stable ``reason`` (and the error's class
name in its metadata), and ``BadRequest`` field violations for bad input.  The code decides the
family; the class name or reason refines it within that family, never across it, so a hub cannot
turn a refusal into a "verification failed" or the other way round by its choice of reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeGuard

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from exchange import errors
from exchange.errors import (
    ConfigurationError,
    ConflictError,
    ExchangeError,
    FieldViolation,
    InvalidInputError,
    NotAuthenticatedError,
    NotFoundError,
    NotPermittedError,
    QuotaExceededError,
    TooLargeError,
    UnavailableError,
    VerificationError,
)

_ERROR_CLASSES: tuple[type[ExchangeError], ...] = tuple(
    value
    for value in vars(errors).values()
    if isinstance(value, type) and issubclass(value, ExchangeError)
)
_CLASSES_BY_NAME = {cls.__name__: cls for cls in _ERROR_CLASSES}
_CLASSES_BY_REASON: dict[str, type[ExchangeError]] = {}
for _cls in _ERROR_CLASSES:
    _CLASSES_BY_REASON.setdefault(_cls.reason, _cls)

# The families each status code may be refined into; the first is the default.
_FAMILIES: dict[grpc.StatusCode, tuple[type[ExchangeError], ...]] = {
    grpc.StatusCode.UNAUTHENTICATED: (NotAuthenticatedError,),
    grpc.StatusCode.PERMISSION_DENIED: (NotPermittedError,),
    grpc.StatusCode.NOT_FOUND: (NotFoundError,),
    grpc.StatusCode.ALREADY_EXISTS: (ConflictError,),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (TooLargeError, QuotaExceededError),
    grpc.StatusCode.INVALID_ARGUMENT: (InvalidInputError, VerificationError),
    grpc.StatusCode.OUT_OF_RANGE: (InvalidInputError,),
    grpc.StatusCode.FAILED_PRECONDITION: (
        ExchangeError,
        InvalidInputError,
        VerificationError,
        ConfigurationError,
    ),
}

_UNREACHABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass
class _Details:
    reason: str | None = None
    error_class: str | None = None
    violations: list[FieldViolation] = field(default_factory=list)


def _answered(error: grpc.RpcError) -> TypeGuard[grpc.Call]:
    """Whether ``error`` carries the hub's answer (a blocking call's, or a ``grpc.aio`` one's,
    which has the same ``code``, ``details`` and ``trailing_metadata``)."""
    return isinstance(error, grpc.Call | grpc.aio.AioRpcError)


def _rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    if not _answered(error):
        return None
    try:
        return rpc_status.from_call(error)
    except (ValueError, DecodeError):
        # Details that contradict the status line or do not parse: trust the status line only.
        return None


def _details(status: status_pb2.Status | None) -> _Details:
    found = _Details()
    if status is None:
        return found
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                found.reason = info.reason or None
                found.error_class = info.metadata.get("error") or None
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                found.violations += [
                    FieldViolation(field=v.field, description=v.description)
                    for v in bad_request.field_violations
                ]
    return found


def _code_and_message(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    if _answered(error):
        return error.code(), error.details() or ""
    return grpc.StatusCode.UNKNOWN, str(error)


def _refine(families: tuple[type[ExchangeError], ...], details: _Details) -> type[ExchangeError]:
    candidates = (
        _CLASSES_BY_NAME.get(details.error_class or ""),
        _CLASSES_BY_REASON.get(details.reason or ""),
    )
    for candidate in candidates:
        if candidate is not None and any(issubclass(candidate, f) for f in families):
            return candidate
    return families[0]


REQUEST_ID_METADATA = "x-request-id"
"""Metadata carrying a call's request id: sent with every call, returned by the hub."""


def _with_request_id(message: str, error: grpc.RpcError) -> str:
    """``message`` naming the request id the hub returned, so its log line can be found."""
    trailers: tuple[tuple[str, str | bytes], ...] = (
        tuple(error.trailing_metadata() or ()) if _answered(error) else ()
    )
    for key, value in trailers:
        if key == REQUEST_ID_METADATA and isinstance(value, str):
            return f"{message} (request id {value})"
    return message


def error_from_rpc(error: grpc.RpcError, *, target: str) -> ExchangeError:
    """The domain error for a failed call to the hub at ``target``."""
    code, message = _code_and_message(error)
    message = _with_request_id(message, error) if message else message
    details = _details(_rich_status(error))
    if code in _UNREACHABLE_CODES:
        what = (
            "did not answer in time"
            if code is grpc.StatusCode.DEADLINE_EXCEEDED
            else "could not be reached"
        )
        return UnavailableError(
            f"the hub at {target} {what} ({message or code.name}): check the hub address "
            "(--hub or the profile's hub_address), that the hub is running, and that it "
            "accepts this profile's certificate",
            reason=details.reason,
        )
    families = _FAMILIES.get(code)
    if families is None:
        if code is grpc.StatusCode.UNIMPLEMENTED:
            text = f"the hub at {target} does not support this operation yet"
        else:
            text = f"the hub at {target} failed with {code.name}"
        return ExchangeError(
            f"{text}: {message or 'no details'}", reason=details.reason or code.name
        )
    cls = _refine(families, details)
    text = message or code.name
    if issubclass(cls, InvalidInputError):
        return cls(text, violations=details.violations, reason=details.reason)
    return cls(text, reason=details.reason)


@contextmanager
def hub_errors(target: str) -> Iterator[None]:
    """Turn any ``grpc.RpcError`` raised inside the block into its domain error."""
    try:
        yield
    except grpc.RpcError as e:
        raise error_from_rpc(e, target=target) from e
