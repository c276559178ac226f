"""Every way the hub can fail a call becomes the right domain error, and no ``grpc.RpcError``.

A real gRPC server on a loopback port answers each call with a status built exactly as the hub
builds it (``exchange.hub.status.rich_status``) or as gRPC itself would (no details); the client
side runs the real call and the one mapping in ``exchange_client._internal.status``.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from exchange import errors
from exchange.errors import ExchangeError, FieldViolation
from exchange.hub.status import rich_status
from exchange_client._internal.status import hub_errors

METHOD = "/exchange.test.Refusal/Call"


@dataclass
class _Answer:
    """What the test server does with the next call."""

    status: grpc.Status | None = None
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    message: str = ""


class _RefusingHandler(grpc.GenericRpcHandler):
    def __init__(self, answer: _Answer) -> None:
        self.answer = answer

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        def call(request: bytes, context: grpc.ServicerContext) -> bytes:
            if self.answer.status is not None:
                context.abort_with_status(self.answer.status)
            context.abort(self.answer.code, self.answer.message)
            raise AssertionError("abort returns never")

        return grpc.unary_unary_rpc_method_handler(call)


@pytest.fixture(scope="module")
def refusing_server() -> Iterator[tuple[str, _Answer]]:
    answer = _Answer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((_RefusingHandler(answer),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", answer
    server.stop(grace=0)


def _call(target: str) -> ExchangeError:
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(METHOD)
        with pytest.raises(ExchangeError) as raised, hub_errors(target):
            call(b"request", timeout=5)
    error = raised.value
    assert not isinstance(error, grpc.RpcError)
    return error


def _status(
    code: grpc.StatusCode,
    message: str,
    *,
    reason: str | None = None,
    error_class: str | None = None,
    violations: list[tuple[str, str]] | None = None,
) -> grpc.Status:
    details = []
    if reason is not None:
        info = any_pb2.Any()
        metadata = {"error": error_class} if error_class else {}
        info.Pack(
            error_details_pb2.ErrorInfo(reason=reason, domain="exchange.v1", metadata=metadata)
        )
        details.append(info)
    if violations:
        bad_request = any_pb2.Any()
        bad_request.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in violations
                ]
            )
        )
        details.append(bad_request)
    return rpc_status.to_status(
        status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)
    )


class _RawStatus(
    collections.namedtuple("_RawStatus", ("code", "details", "trailing_metadata")), grpc.Status
):
    """A status whose trailers say something other than its status line."""


def _contradicting_status() -> grpc.Status:
    """INVALID_ARGUMENT on the status line, a NOT_FOUND signature failure in the details."""
    forged = _status(
        grpc.StatusCode.NOT_FOUND,
        "refused",
        reason="SIGNATURE_INVALID",
        error_class="SignatureError",
    )
    return _RawStatus(grpc.StatusCode.INVALID_ARGUMENT, "refused", forged.trailing_metadata)


# Every error class of the core tree, sent the way the hub sends it, comes back as itself.
CORE_ERRORS = sorted(
    (
        value
        for value in vars(errors).values()
        if isinstance(value, type)
        and issubclass(value, ExchangeError)
        and value is not errors.UnavailableError
    ),
    key=lambda cls: cls.__name__,
)


@pytest.mark.parametrize("error_class", CORE_ERRORS, ids=lambda cls: cls.__name__)
def test_every_hub_error_comes_back_as_its_own_class(
    refusing_server: tuple[str, _Answer], error_class: type[ExchangeError]
) -> None:
    target, answer = refusing_server
    sent = error_class(f"the hub says {error_class.__name__}")
    answer.status = rpc_status.to_status(rich_status(sent))
    received = _call(target)
    assert type(received) is error_class
    assert received.message == sent.message
    assert received.reason == sent.reason


@dataclass(frozen=True)
class Case:
    name: str
    status: grpc.Status | None
    expected: type[ExchangeError]
    reason: str | None = None
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN


CASES = [
    Case(
        "a custom reason under a known class name keeps both",
        _status(
            grpc.StatusCode.INVALID_ARGUMENT,
            "manifest is not canonical",
            reason="NON_CANONICAL",
            error_class="MalformedError",
        ),
        errors.MalformedError,
        reason="NON_CANONICAL",
    ),
    Case(
        "a known reason without a class name picks the class",
        _status(grpc.StatusCode.INVALID_ARGUMENT, "bad signature", reason="SIGNATURE_INVALID"),
        errors.SignatureError,
        reason="SIGNATURE_INVALID",
    ),
    Case(
        "an unknown reason under INVALID_ARGUMENT is bad input, reason kept",
        _status(grpc.StatusCode.INVALID_ARGUMENT, "too many items", reason="TOO_MANY_ITEMS"),
        errors.InvalidInputError,
        reason="TOO_MANY_ITEMS",
    ),
    Case(
        "a reason from another family cannot change the family",
        _status(
            grpc.StatusCode.PERMISSION_DENIED,
            "not the originator",
            reason="SIGNATURE_INVALID",
            error_class="SignatureError",
        ),
        errors.NotPermittedError,
        reason="SIGNATURE_INVALID",
    ),
    Case(
        "a revoked agency is not authenticated",
        _status(grpc.StatusCode.UNAUTHENTICATED, "agency is revoked", reason="AGENCY_REVOKED"),
        errors.NotAuthenticatedError,
        reason="AGENCY_REVOKED",
    ),
    Case(
        "the transport's size limit has no details",
        None,
        errors.TooLargeError,
        code=grpc.StatusCode.RESOURCE_EXHAUSTED,
    ),
    Case(
        "a deadline is the hub being unavailable",
        None,
        errors.UnavailableError,
        code=grpc.StatusCode.DEADLINE_EXCEEDED,
    ),
    Case("NOT_FOUND without details", None, errors.NotFoundError, code=grpc.StatusCode.NOT_FOUND),
    Case(
        "ALREADY_EXISTS without details",
        None,
        errors.ConflictError,
        code=grpc.StatusCode.ALREADY_EXISTS,
    ),
    Case(
        "UNIMPLEMENTED is a plain exchange error",
        None,
        ExchangeError,
        reason="UNIMPLEMENTED",
        code=grpc.StatusCode.UNIMPLEMENTED,
    ),
    Case(
        "INTERNAL (a request that does not deserialize) is a plain exchange error",
        None,
        ExchangeError,
        reason="INTERNAL",
        code=grpc.StatusCode.INTERNAL,
    ),
    Case(
        "details contradicting the status line are ignored",
        _contradicting_status(),
        errors.InvalidInputError,
        reason=None,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_status_mapping(refusing_server: tuple[str, _Answer], case: Case) -> None:
    target, answer = refusing_server
    answer.status = case.status
    answer.code = case.code
    answer.message = "refused"
    received = _call(target)
    assert type(received) is case.expected
    if case.reason is not None:
        assert received.reason == case.reason


def test_field_violations_travel_with_bad_input(refusing_server: tuple[str, _Answer]) -> None:
    target, answer = refusing_server
    answer.status = _status(
        grpc.StatusCode.INVALID_ARGUMENT,
        "the draft has 2 problems",
        reason="DRAFT_INVALID",
        violations=[
            ("items[2].shipment.chemicals[0].cas_rn", "check digit is 5, expected 1"),
            ("items[0].policy.tlp", "is required"),
        ],
    )
    received = _call(target)
    assert isinstance(received, errors.DraftError)
    assert received.violations == [
        FieldViolation("items[2].shipment.chemicals[0].cas_rn", "check digit is 5, expected 1"),
        FieldViolation("items[0].policy.tlp", "is required"),
    ]


def test_an_unreachable_hub_says_what_to_check() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    server.stop(grace=0).wait()
    target = f"127.0.0.1:{port}"
    received = _call(target)
    assert isinstance(received, errors.UnavailableError)
    assert target in received.message
    assert "hub address" in received.message
    assert "running" in received.message
    assert "certificate" in received.message
