"""Running the gRPC service and the REST gateway together in one event loop.

``kubeupdate serve --one-process`` (or one half, ``--only``), ``kubeupdate
demo`` and the tests' stack use :func:`serve_all`; the two servers still talk
over a real socket, exactly as when they run in separate Pods. ``kubeupdate
serve`` itself runs the service in a child process
(:mod:`kubeupdate.supervisor`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace

import grpc

from gateway.server import GatewayServer
from gateway.settings import GatewaySettings
from kubeupdate.service import ServerConfig, serve

log = logging.getLogger(__name__)


@dataclass
class Listening:
    """The ports the servers bound (useful with port 0)."""

    grpc_port: int | None = None
    http_port: int | None = None
    # The service's metrics listener, when it has one.
    metrics_port: int | None = None


async def serve_all(
    config: ServerConfig | None,
    settings: GatewaySettings | None,
    *,
    ready: Callable[[Listening], None] | None = None,
    stop: asyncio.Event | None = None,
    channel_credentials: grpc.ChannelCredentials | None = None,
) -> None:
    """Runs the service and/or the gateway until SIGINT/SIGTERM or ``stop``.

    The gateway starts once the service listens, so its first readiness check
    can succeed; an empty ``settings.upstream`` means that service. If either
    server fails, both stop. ``ready`` is called once everything listens.
    ``channel_credentials`` secure the gateway's channel; by default it calls a
    TLS service started alongside with the service's own certificate as root.
    """
    if channel_credentials is None and config is not None and settings is not None:
        channel_credentials = alongside_credentials(config)
    if config is not None and settings is not None and not settings.upstream:
        # The gateway alongside proves itself with a key no other local process knows.
        key = secrets.token_urlsafe(32)
        config = replace(config, auth=replace(config.auth, proxy_key=key))
        settings = replace(settings, proxy_key=key)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    listening = Listening()
    service_ready = asyncio.Event()

    def on_service_ready(port: int) -> None:
        listening.grpc_port = port
        service_ready.set()
        if settings is None and ready is not None:
            ready(listening)

    def on_metrics_ready(port: int) -> None:
        listening.metrics_port = port

    async def run_service() -> None:
        assert config is not None
        try:
            await serve(
                config,
                ready=on_service_ready,
                stop=stop,
                handle_signals=False,
                metrics_ready=on_metrics_ready,
            )
        finally:
            stop.set()
            service_ready.set()  # a gateway still waiting for it gives up

    async def run_gateway(settings: GatewaySettings) -> None:
        if config is not None:
            await service_ready.wait()
            if stop.is_set():
                return
            if not settings.upstream:
                settings = replace(settings, upstream=f"127.0.0.1:{listening.grpc_port}")
        try:
            gateway = GatewayServer(settings, channel_credentials=channel_credentials)
            try:
                await gateway.start()
            except OSError as exc:
                raise OSError(f"{exc} (--http-port=0 picks a free port)") from exc
            try:
                listening.http_port = gateway.port
                log.info("kubeupdate REST gateway listening on %s:%d", settings.host, gateway.port)
                if ready is not None:
                    ready(listening)
                await stop.wait()
            finally:
                await gateway.stop()
        finally:
            stop.set()

    try:
        async with asyncio.TaskGroup() as group:
            if config is not None:
                group.create_task(run_service())
            if settings is not None:
                group.create_task(run_gateway(settings))
    except ExceptionGroup as failures:
        # The first failure (say, a port in use) stopped the other server too.
        raise failures.exceptions[0] from None


def alongside_credentials(config: ServerConfig) -> grpc.ChannelCredentials | None:
    """How the gateway reaches a service started alongside over TLS, if it uses TLS."""
    if config.auth.tls_cert is None:
        return None
    if config.auth.tls_client_ca is not None:
        raise ValueError(
            "the service requires client certificates (--tls-client-ca): give the gateway "
            "one with --upstream-cert and --upstream-key, or run it with --only gateway"
        )
    return grpc.ssl_channel_credentials(root_certificates=config.auth.tls_cert.read_bytes())
