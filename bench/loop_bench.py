"""The event loop's Python work per call, in one process, without a network: CPU per call.

``publish_bench.py`` measures the whole hub, where a few microseconds per call drown in the
machine's noise. This script times, with ``time.thread_time`` (CPU of this thread only), the
two pieces of a publish that run on the hub's event loop in Python:

- ``check_publish`` on the benchmark's request (a summary and 3 note items of 1 KB to one
  partner, sealed once): the Ed25519 verification, the header and ciphertext commitments, the
  policies and grants, the request digest;
- the interceptor chain as ``grpc.aio`` runs it for every call (the observer outside, the guard
  inside: ``intercept_service`` and then the wrapped coroutine) around a handler that does
  nothing, with the hub's JSON logging set up (into memory) and its metrics. The call context
  is a stand-in answering the calls the interceptors make; the directory answers as the hub's
  does from its verified-certificate cache. gRPC's own per-call work is not in this figure.

Run from the repository root (``PYTHONPATH`` may name another tree, to compare two versions)::

    .venv/bin/python bench/loop_bench.py
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if not any(Path(p, "exchange").is_dir() for p in sys.path if p):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

from exchange.crypto.keys import DecryptionKey, SigningKey
from exchange.hub.guard import GuardInterceptor, current_caller
from exchange.hub.log_format import configure_logging
from exchange.hub.metrics import HubMetrics
from exchange.hub.observer import CallObserver, ObservingInterceptor
from exchange.statements.publish import PublishLimits, check_publish
from exchange.statements.sealing import PlainItem, seal_alert, summary_item
from exchange.v1 import payloads_pb2, statements_pb2

Policy = statements_pb2.ReleasePolicy
_PEM = b"-----BEGIN CERTIFICATE-----\n" + b"A" * 900 + b"\n-----END CERTIFICATE-----\n"
_URI = b"exchange://agency/agency-a"


def per_call(run: Callable[[], object], calls: int, repeats: int) -> list[float]:
    """Microseconds of this thread's CPU per call of ``run``, one figure per repeat."""
    for _ in range(min(calls, 200)):
        run()
    figures = []
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(calls):
            run()
        figures.append((time.thread_time() - start) / calls * 1e6)
    return figures


def check_figures(calls: int, repeats: int) -> list[float]:
    signing, own, partner = SigningKey.generate(), DecryptionKey.generate(), DecryptionKey.generate()
    policy = Policy(audience=["agency-b"], tlp=Policy.TLP_AMBER, release=Policy.IMMEDIATE)
    note = payloads_pb2.ItemPayload(note=payloads_pb2.Note(text="x" * 1024, language="en"))
    items = [PlainItem(item_id=f"note-{i}", policy=policy, payload=note) for i in range(3)]
    summary = payloads_pb2.Summary(kind=payloads_pb2.Summary.SHIPMENT, title="bench")
    sealed = seal_alert(
        originator="agency-a",
        alert_id="3f1d6c0e-6b55-4d0e-8d43-2a5f3c1b9e70",
        version=1,
        items=[summary_item(summary, items), *items],
        signing_key=signing,
        own_key=own.public_key,
        recipient_keys={"agency-b": partner.public_key},
        created_at=datetime.now(UTC),
    )
    keys = {signing.public_key.key_id: signing.public_key}
    key_ids = {"agency-a": own.public_key.key_id, "agency-b": partner.public_key.key_id}
    limits = PublishLimits()
    return per_call(
        lambda: check_publish(
            sealed.request,
            caller="agency-a",
            caller_keys=keys,
            encryption_key_ids=key_ids,
            limits=limits,
        ),
        calls,
        repeats,
    )


class _Directory:
    fresh = True

    def authenticate(self, pem_certificate: bytes | None) -> str:
        return "agency-a"


class _Context:
    """The calls the interceptors make on a ``grpc.aio.ServicerContext``."""

    def __init__(self) -> None:
        self._trailers: tuple[tuple[str, str | bytes], ...] = ()
        self._code: grpc.StatusCode | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("user-agent", "grpc-python/1.85"),)

    def auth_context(self) -> dict[str, list[bytes]]:
        return {
            "x509_pem_cert": [_PEM],
            "peer_uri": [_URI],
            "x509_subject_alternative_name": [_URI],
            "transport_security_type": [b"ssl"],
        }

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str | bytes], ...]) -> None:
        self._trailers = tuple(metadata)

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._trailers

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        pass


class _Details:
    method = "/exchange.v1.AlertService/GetAlert"
    invocation_metadata = ()


async def _interceptor_figures(calls: int, repeats: int) -> list[float]:
    async def behavior(request: object, context: object) -> bytes:
        current_caller()
        return b""

    inner = grpc.unary_unary_rpc_method_handler(behavior)
    observer = ObservingInterceptor(CallObserver(HubMetrics()))
    guard = GuardInterceptor(_Directory())  # type: ignore[arg-type]

    async def registered(details: grpc.HandlerCallDetails) -> Any:
        return inner

    async def guarded(details: grpc.HandlerCallDetails) -> Any:
        return await guard.intercept_service(registered, details)

    async def one_call() -> None:
        handler: Any = await observer.intercept_service(guarded, _Details())  # type: ignore[arg-type]
        await handler.unary_unary(None, _Context())

    for _ in range(200):
        await one_call()
    figures = []
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(calls):
            await one_call()
        figures.append((time.thread_time() - start) / calls * 1e6)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per repeat; default 3000")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; default 5")
    args = parser.parse_args(argv)
    configure_logging("json", stream=io.StringIO())  # the hub's set-up: JSON lines at INFO
    rows = {
        "check_publish": check_figures(args.calls, args.repeats),
        "interceptors (observer + guard)": asyncio.run(
            _interceptor_figures(args.calls, args.repeats)
        ),
    }
    for name, figures in rows.items():
        shown = " ".join(f"{f:.1f}" for f in figures)
        print(f"{name}: {min(figures):.1f} us of CPU per call (min of {shown})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
