"""The hub's one interceptor: authenticates every call and maps domain errors to statuses.

``grpc.aio`` server interceptors see only the method name, so this wraps each handler (each a
coroutine or an asynchronous generator): the wrapper
reads the peer certificate from the call's auth context, resolves the agency (its certificate
must chain to the CA registered for the id it claims), runs the servicer with the caller set,
and turns any :class:`ExchangeError` into a status with ``ErrorInfo`` details.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_status import rpc_status

from exchange.errors import ExchangeError, NotAuthenticatedError
from exchange.hub.blocking import run_blocking
from exchange.hub.directory import AgencyDirectory
from exchange.hub.status import rich_status

log = logging.getLogger(__name__)

_caller: contextvars.ContextVar[str] = contextvars.ContextVar("exchange_caller")

# Standard services any authenticated TLS peer may use without an agency identity check.
_OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def current_caller() -> str:
    """The authenticated agency of the call being served."""
    try:
        return _caller.get()
    except LookupError as e:
        raise NotAuthenticatedError("no authenticated caller") from e


def _refuse(context: grpc.aio.ServicerContext[Any, Any], error: ExchangeError) -> None:
    """Answer the call with the error's status when the handler returns.

    Not ``abort``: that sends the status at once, before the observer outside has logged the
    call, and without the trailers it sets later. Trailers set before (the observer's request
    id) go with the status.
    """
    status = rpc_status.to_status(rich_status(error))
    context.set_trailing_metadata(
        (*(context.trailing_metadata() or ()), *status.trailing_metadata)
    )
    context.set_code(status.code)
    context.set_details(status.details)


class GuardInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Authenticate, set the caller, map errors: for every application method."""

    def __init__(self, directory: AgencyDirectory) -> None:
        self._directory = directory
        # By method: the inner handler last seen and its wrapped handler.
        self._wrapped: dict[
            str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]
        ] = {}

    async def _authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        certs = context.auth_context().get("x509_pem_cert")
        first = certs[0] if isinstance(certs, list) and certs else None
        if self._directory.fresh:  # no database read: checked on the loop
            return self._directory.authenticate(first)
        return await run_blocking(functools.partial(self._directory.authenticate, first))

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith(_OPEN_PREFIXES):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
        """``handler`` guarded; built once per method (the wrappers keep no per-call state)."""
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _wrap_unary(self, behavior: Callable[..., Awaitable[Any]]) -> Any:
        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                token = _caller.set(await self._authenticate(context))
                try:
                    return await behavior(request, context)
                finally:
                    _caller.reset(token)
            except ExchangeError as error:
                _log_refusal(error)
                _refuse(context, error)
            return None  # the status set on the context is the answer

        return unary

    def _wrap_stream(self, behavior: Callable[..., Any]) -> Any:
        async def stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            try:
                token = _caller.set(await self._authenticate(context))
                try:
                    async for response in behavior(request, context):
                        yield response
                finally:
                    _reset_caller(token)
            except ExchangeError as error:
                _log_refusal(error)
                _refuse(context, error)

        return stream


def _reset_caller(token: contextvars.Token[str]) -> None:
    """Undo a stream's ``_caller.set``. A stream the client cancelled is closed by the event
    loop's finalizer of asynchronous generators, in a context of its own, where the token does
    not apply: the call's context, with the caller in it, went with the call's task."""
    try:
        _caller.reset(token)
    except ValueError:
        pass


def _log_refusal(error: ExchangeError) -> None:
    # The call's log line (exchange.hub.observer) has the reason; the message may name ids the
    # caller sent, so it is logged for debugging only.
    log.debug("refused: %s (%s)", error.message, error.reason)
