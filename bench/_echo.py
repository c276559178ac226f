"""The benchmark's baseline: a raw gRPC unary echo over the same mutual TLS as the hub.

The server answers every request with the bytes it received, through a generic handler (bytes
in, bytes out), so no proto is needed.  The baseline is a synchronous ``grpc.server`` on a thread
pool of 64 (the hub's server kind when the baseline was set; the hub now runs on ``grpc.aio``, and
``--aio`` serves the same echo that way), with the hub's message limits, and it serves the
hub's own TLS certificate and requires a client certificate issued by one of the agencies' CAs,
so a client connects to it with exactly the credentials of an agency profile.

Run as a script it starts the server and prints ``listening on HOST:PORT`` like
``exchange-hub serve``, so the benchmark can run it in a process of its own::

    python bench/_echo.py --config DIR/hub.toml --listen 127.0.0.1:0
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent import futures
from pathlib import Path
from types import FrameType
from typing import Any

import grpc

ECHO_METHOD = "/bench.Echo/Echo"
"""Full name of the one method the echo server answers."""

MESSAGE_LIMIT = 64 * 1024 * 1024
"""Transport limit each way, as the hub and the client library set it."""

SERVER_WORKERS = 64
"""Thread pool size: the hub's default."""


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


_SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MESSAGE_LIMIT),
    ("grpc.max_send_message_length", MESSAGE_LIMIT),
]


def _serve_echo_on(
    server: grpc.Server | grpc.aio.Server,
    echo: Callable[..., Any],
    *,
    listen: str,
    tls_certificate_pem: bytes,
    tls_key_pem: bytes,
    client_ca_bundle_pem: bytes,
) -> int:
    """Add the echo method (``echo``) and the mutual-TLS port to ``server``; return the port."""
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    credentials = grpc.ssl_server_credentials(
        [(tls_key_pem, tls_certificate_pem)],
        root_certificates=client_ca_bundle_pem,
        require_client_auth=True,
    )
    return server.add_secure_port(listen, credentials)


def start_echo_server(
    *,
    listen: str,
    tls_certificate_pem: bytes,
    tls_key_pem: bytes,
    client_ca_bundle_pem: bytes,
) -> tuple[grpc.Server, int]:
    """Serve the echo method on ``listen`` with mutual TLS; return the server and its port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=SERVER_WORKERS, thread_name_prefix="echo"),
        options=_SERVER_OPTIONS,
        maximum_concurrent_rpcs=SERVER_WORKERS * 4,
    )
    port = _serve_echo_on(
        server,
        _echo,
        listen=listen,
        tls_certificate_pem=tls_certificate_pem,
        tls_key_pem=tls_key_pem,
        client_ca_bundle_pem=client_ca_bundle_pem,
    )
    server.start()
    return server, port


async def serve_echo_aio(
    *,
    listen: str,
    tls_certificate_pem: bytes,
    tls_key_pem: bytes,
    client_ca_bundle_pem: bytes,
    started: Callable[[int], None],
) -> None:
    """The same echo on ``grpc.aio``, the hub's own server kind: one event loop, no thread
    pool; ``started`` gets the port; runs until cancelled."""

    async def echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return request

    server = grpc.aio.server(options=_SERVER_OPTIONS)
    port = _serve_echo_on(
        server,
        echo,
        listen=listen,
        tls_certificate_pem=tls_certificate_pem,
        tls_key_pem=tls_key_pem,
        client_ca_bundle_pem=client_ca_bundle_pem,
    )
    await server.start()
    started(port)
    try:
        await server.wait_for_termination()
    finally:
        await server.stop(0)


def echo_stub(channel: grpc.Channel) -> grpc.UnaryUnaryMultiCallable[bytes, bytes]:
    """The echo method on ``channel``, sending and returning raw bytes."""
    return channel.unary_unary(ECHO_METHOD, request_serializer=None, response_deserializer=None)


def mutual_tls_channel(
    target: str, *, root_pem: bytes, key_pem: bytes, certificate_pem: bytes
) -> grpc.Channel:
    """A channel to ``target`` presenting a client certificate, as the client library opens it."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root_pem, private_key=key_pem, certificate_chain=certificate_pem
    )
    return grpc.secure_channel(
        target,
        credentials,
        options=[
            ("grpc.max_send_message_length", MESSAGE_LIMIT),
            ("grpc.max_receive_message_length", MESSAGE_LIMIT),
        ],
    )


def _client_ca_bundle(registry_dir: Path) -> bytes:
    """Every registered agency's CA certificate: the client CAs the hub accepts."""
    bundle = [path.read_bytes() for path in sorted(registry_dir.glob("*/ca.pem"))]
    if not bundle:
        raise SystemExit(f"{registry_dir}: no agency CA certificates to accept clients from")
    return b"".join(bundle)


def main(argv: Sequence[str] | None = None) -> None:
    """Start the echo server with the TLS material named by a hub's configuration file."""
    from exchange.hub.config import HubConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="the hub's hub.toml")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any)")
    parser.add_argument(
        "--aio",
        action="store_true",
        help="serve on grpc.aio (one event loop), as the hub does, instead of a thread pool",
    )
    arguments = parser.parse_args(argv)
    config = HubConfig.from_file(arguments.config)
    host = arguments.listen.rpartition(":")[0]
    if arguments.aio:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            asyncio.run(
                serve_echo_aio(
                    listen=arguments.listen,
                    tls_certificate_pem=config.tls_certificate.read_bytes(),
                    tls_key_pem=config.tls_key.read_bytes(),
                    client_ca_bundle_pem=_client_ca_bundle(config.registry_dir),
                    started=lambda port: print(f"listening on {host}:{port}", flush=True),
                )
            )
        except KeyboardInterrupt:
            pass
        return
    server, port = start_echo_server(
        listen=arguments.listen,
        tls_certificate_pem=config.tls_certificate.read_bytes(),
        tls_key_pem=config.tls_key.read_bytes(),
        client_ca_bundle_pem=_client_ca_bundle(config.registry_dir),
    )
    print(f"listening on {host}:{port}", flush=True)

    def shutdown(signum: int, frame: FrameType | None) -> None:
        server.stop(0)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    server.wait_for_termination()


if __name__ == "__main__":
    main(sys.argv[1:])
