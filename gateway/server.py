"""Running the gateway: uvicorn in front of the app, one grpc.aio channel behind it.

Three ways to run it, all on the same ``GatewayServer``:

- in an event loop: ``server = GatewayServer(settings); await server.start();
  server.port; ...; await server.stop()`` (or ``async with GatewayServer(...)``);
- from synchronous code: ``GatewayThread(settings)`` runs one in a background
  thread with its own loop; ``start()`` returns once it listens;
- as a process: ``python -m gateway --upstream 127.0.0.1:50051 --port 8080``,
  or ``main(argv)`` / ``await serve(settings)`` from another command line
  (``add_arguments`` and ``settings_from_args`` share the options).

The server binds its socket itself, so port 0 works and ``port`` is known as
soon as ``start()`` returns. The channel is created inside the running loop
(grpc.aio requires it) and closed by ``stop()``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import grpc
import uvicorn
from google.protobuf.descriptor import ServiceDescriptor

from gateway.app import DEFAULT_SERVICES, create_app
from gateway.connections import ConnectionLimits, GuardedHttpProtocol
from gateway.settings import GatewaySettings
from gateway.streaming import OpenStreams
from gateway.upstream import GrpcUpstream, Upstream
from kubeupdate import sockets
from kubeupdate.auth.proxies import PROXY_KEY

logger = logging.getLogger(__name__)


class GatewayServer:
    """The gateway app under uvicorn, in the current event loop."""

    def __init__(
        self,
        settings: GatewaySettings | None = None,
        *,
        upstream: Upstream | None = None,
        channel_credentials: grpc.ChannelCredentials | None = None,
        services: Sequence[ServiceDescriptor] = DEFAULT_SERVICES,
    ) -> None:
        """``upstream`` replaces the channel (tests); otherwise one is opened to
        ``settings.upstream``, with TLS when ``channel_credentials`` is given."""
        self.settings = settings or GatewaySettings()
        self._upstream = upstream
        self._credentials = channel_credentials
        self._services = services
        self._channel: grpc.aio.Channel | None = None
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._main_loop: asyncio.Task[None] | None = None
        self._port: int | None = None
        self._open_streams = OpenStreams()

    @property
    def port(self) -> int:
        """The bound port; valid after ``start()``."""
        if self._port is None:
            raise RuntimeError("the gateway is not started")
        return self._port

    async def start(self) -> None:
        """Opens the channel, binds the socket and starts serving."""
        if self._server is not None:
            raise RuntimeError("the gateway is already started")
        upstream = self._upstream
        if upstream is None:
            self._channel = self._open_channel()
            key = self.settings.proxy_key
            upstream = GrpcUpstream(
                self._channel,
                health_service=self.settings.health_service,
                metadata=((PROXY_KEY, key),) if key else (),
            )
        try:
            app = create_app(
                upstream, self.settings, services=self._services, open_streams=self._open_streams
            )
            try:
                self._socket = sockets.bind(self.settings.host, self.settings.port)
            except OSError as exc:
                raise OSError(
                    f"cannot listen for HTTP on {self.settings.host}:{self.settings.port}: "
                    f"{exc.strerror or exc}"
                ) from exc
            self._port = int(self._socket.getsockname()[1])
            limits = ConnectionLimits(
                header_timeout=self.settings.header_timeout,
                body_timeout=self.settings.body_timeout,
                max_header_bytes=self.settings.max_header_bytes,
            )
            config = uvicorn.Config(
                app,
                lifespan="off",  # the channel's life is managed here, not by ASGI lifespan
                log_config=None,  # leave logging to the host process
                # The app logs its own access lines, with the request id.
                access_log=False,
                proxy_headers=True,
                forwarded_allow_ips=self.settings.forwarded_allow_ips,
                server_header=False,
                http=GuardedHttpProtocol.with_limits(limits),
                timeout_keep_alive=self.settings.keep_alive_timeout,
                limit_concurrency=self.settings.max_connections,
            )
            config.load()
            server = uvicorn.Server(config)
            # What uvicorn's Server.serve does, minus signal capture and the
            # wait, so start() can return once the socket listens.
            server.lifespan = config.lifespan_class(config)
            await server.startup(sockets=[self._socket])
        except BaseException:
            await self._close_channel()
            if self._socket is not None:
                self._socket.close()
            self._socket, self._port = None, None
            raise
        self._server = server
        self._main_loop = asyncio.create_task(server.main_loop())
        logger.info(
            "gateway listening on %s:%d, forwarding to %s",
            self.settings.host,
            self._port,
            self.settings.upstream if self._upstream is None else "an injected upstream",
        )

    async def stop(self) -> None:
        """Stops accepting, ends open streams, finishes open connections, closes the channel."""
        server, self._server = self._server, None
        if server is None:
            return
        server.should_exit = True
        # A rollout watch may last an hour; it must not hold the shutdown up.
        self._open_streams.close_all()
        if self._main_loop is not None:
            # Its only jobs are ticks (Date header); no need to wait for the next one.
            self._main_loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._main_loop
            self._main_loop = None
        await server.shutdown(sockets=[self._socket] if self._socket else None)
        self._socket = None
        await self._close_channel()

    async def __aenter__(self) -> GatewayServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _open_channel(self) -> grpc.aio.Channel:
        if self._credentials is not None:
            return grpc.aio.secure_channel(self.settings.upstream, self._credentials)
        return grpc.aio.insecure_channel(self.settings.upstream)

    async def _close_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()


class GatewayThread:
    """A ``GatewayServer`` in a background thread with its own event loop."""

    def __init__(
        self,
        settings: GatewaySettings | None = None,
        *,
        channel_credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.settings = settings or GatewaySettings()
        self._credentials = channel_credentials
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the gateway is not started")
        return self._port

    def start(self) -> None:
        """Starts the thread; returns once the gateway listens, or raises its error."""
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def stop(self) -> None:
        """Stops the gateway and joins the thread."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = GatewayServer(self.settings, channel_credentials=self._credentials)
        try:
            await server.start()
        except BaseException as exc:
            self._error = exc
            self._loop = None  # closed when this returns; stop() must not use it
            self._ready.set()
            return
        self._port = server.port
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await server.stop()


async def serve(settings: GatewaySettings) -> None:
    """Runs the gateway until SIGINT/SIGTERM (main thread) or cancellation."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stopping.set)
                handled.append(signum)
    try:
        async with GatewayServer(settings):
            await stopping.wait()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The gateway's command-line options, for this module's and other CLIs."""
    defaults = GatewaySettings()
    parser.add_argument("--upstream", default=defaults.upstream, help="gRPC service target")
    parser.add_argument("--host", default=defaults.host, help="address to listen on")
    parser.add_argument("--port", type=int, default=defaults.port, help="0 picks a free port")
    parser.add_argument(
        "--call-timeout", type=float, default=defaults.call_timeout, help="seconds per call"
    )
    parser.add_argument(
        "--wait-call-timeout",
        type=float,
        default=defaults.wait_call_timeout,
        help="seconds per call that may wait (a request with a Timeout field)",
    )
    parser.add_argument(
        "--stream-timeout",
        type=float,
        default=defaults.stream_timeout,
        help="seconds per streaming call (rollout watch)",
    )
    parser.add_argument("--health-timeout", type=float, default=defaults.health_timeout)
    parser.add_argument("--health-service", default=defaults.health_service)
    parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    add_limit_arguments(parser, prefix="")
    parser.add_argument(
        "--forwarded-allow-ips",
        default=defaults.forwarded_allow_ips,
        help="proxies trusted for X-Forwarded-For: addresses or networks, comma-separated, "
        "'*' for any (default: none)",
    )
    parser.add_argument("--no-access-log", action="store_true")
    parser.add_argument("--no-metrics", action="store_true", help="no GET /metrics")


def add_limit_arguments(parser: argparse._ActionsContainer, *, prefix: str) -> None:
    """The connection limits, for this module's CLI and ``kubeupdate serve`` (``--http-...``)."""
    defaults = GatewaySettings()
    parser.add_argument(
        f"--{prefix}header-timeout",
        type=float,
        default=defaults.header_timeout,
        help="seconds a client has to send a request's headers, from the connection's start "
        "or the previous response (default: %(default)s)",
    )
    parser.add_argument(
        f"--{prefix}body-timeout",
        type=float,
        default=defaults.body_timeout,
        help="seconds a client has to send a request's body after its headers "
        "(default: %(default)s)",
    )
    parser.add_argument(
        f"--{prefix}keep-alive-timeout",
        type=int,
        default=defaults.keep_alive_timeout,
        help="seconds an idle keep-alive connection stays open (default: %(default)s)",
    )
    parser.add_argument(
        f"--{prefix}max-header-bytes",
        type=int,
        default=defaults.max_header_bytes,
        help="largest request line and headers, in bytes; 431 above (default: %(default)s)",
    )
    parser.add_argument(
        f"--{prefix}max-connections",
        type=int,
        default=defaults.max_connections,
        help="connections and requests in progress; 503 above (default: %(default)s)",
    )


def limits_from_args(args: argparse.Namespace, *, prefix: str) -> dict[str, Any]:
    """The GatewaySettings fields that :func:`add_limit_arguments` reads."""
    names = ("header_timeout", "body_timeout", "keep_alive_timeout")
    values: dict[str, Any] = {name: getattr(args, prefix + name) for name in names}
    values["max_header_bytes"] = getattr(args, f"{prefix}max_header_bytes")
    values["max_connections"] = getattr(args, f"{prefix}max_connections")
    return values


def settings_from_args(args: argparse.Namespace) -> GatewaySettings:
    return GatewaySettings(
        upstream=args.upstream,
        host=args.host,
        port=args.port,
        call_timeout=args.call_timeout,
        wait_call_timeout=args.wait_call_timeout,
        stream_timeout=args.stream_timeout,
        health_timeout=args.health_timeout,
        health_service=args.health_service,
        max_body_bytes=args.max_body_bytes,
        forwarded_allow_ips=args.forwarded_allow_ips,
        access_log=not args.no_access_log,
        metrics=not args.no_metrics,
        **limits_from_args(args, prefix=""),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description="kubeupdate REST gateway")
    add_arguments(parser)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        asyncio.run(serve(settings_from_args(args)))
    except OSError as exc:
        print(f"gateway: {exc} (--port=0 picks a free port)", file=sys.stderr)
        return 2
    return 0
