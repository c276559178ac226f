"""The one place where domain errors become gRPC statuses with ``google.rpc`` details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from exchange.errors import (
    ConflictError,
    ExchangeError,
    InvalidInputError,
    NotAuthenticatedError,
    NotFoundError,
    NotPermittedError,
    QuotaExceededError,
    TooLargeError,
    UnavailableError,
    VerificationError,
)
from exchange.store.errors import DatabaseUnavailableError, StorageError

ERROR_DOMAIN = "exchange.v1"

# Most specific first.
_CODES: tuple[tuple[type[ExchangeError], grpc.StatusCode], ...] = (
    (NotAuthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (QuotaExceededError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (NotPermittedError, grpc.StatusCode.PERMISSION_DENIED),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (ConflictError, grpc.StatusCode.ALREADY_EXISTS),
    (TooLargeError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (VerificationError, grpc.StatusCode.INVALID_ARGUMENT),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE),
    (DatabaseUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (StorageError, grpc.StatusCode.INTERNAL),
)


def status_code_for(error: ExchangeError) -> grpc.StatusCode:
    """The gRPC status code an error is answered with."""
    for error_type, code in _CODES:
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.FAILED_PRECONDITION


def rich_status(error: ExchangeError) -> status_pb2.Status:
    """A ``google.rpc.Status`` with an ``ErrorInfo`` (stable reason) and field violations."""
    code = status_code_for(error)
    details: list[any_pb2.Any] = []
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(
            reason=error.reason,
            domain=ERROR_DOMAIN,
            metadata={"error": type(error).__name__},
        )
    )
    details.append(info)
    if isinstance(error, InvalidInputError) and error.violations:
        bad_request = any_pb2.Any()
        bad_request.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
        details.append(bad_request)
    return status_pb2.Status(
        code=getattr(code_pb2, code.name), message=error.message, details=details
    )
