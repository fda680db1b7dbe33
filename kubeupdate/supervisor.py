"""``kubeupdate serve``'s default: the gateway in this process, the service in a child process.

One Python process runs Python on one core at a time (one GIL), and a REST
call costs the gateway and the service about the same CPU: in one process
the two halves share one core, and REST throughput was 0.61× that of
``--only grpc`` + ``--only gateway`` on a 2-core machine. So ``serve``
starts ``serve --only grpc`` as a child (same command line), learns its port
through a private socket (over which it first gives the child the key its
gateway proves itself with, :mod:`kubeupdate.auth.proxies`), then runs the
gateway in front of it, here:

- SIGTERM or SIGINT stops both (the child gets SIGTERM: its running calls
  get ``--grace`` to finish while the gateway drains the requests waiting on
  them); SIGHUP goes to the child, which reloads its policy, tokens and
  registry credentials;
- when the child exits, the gateway stops, and the exit code is the child's;
- when this process dies, even by SIGKILL, the child sees its end of the
  socket close and stops.

Two processes, not a third one to supervise them: a supervisor process would
add an interpreter (~40 MB) for nothing. ``--only`` still runs one half (one
per container); ``--one-process`` keeps both in one event loop
(:func:`kubeupdate.serving.serve_all`), as the tests and the demo do.

The child's side of the socket is :class:`ParentLink`; the child finds it
through the environment variable :data:`LINK_FD`, a detail between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import grpc

from gateway.server import GatewayServer
from gateway.settings import GatewaySettings
from kubeupdate.serving import Listening

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The environment variable that gives a child the descriptor of its end of the socket.
LINK_FD = "KUBEUPDATE_SUPERVISOR_FD"
#: Seconds the child may take to stop beyond its own grace before it is killed.
STOP_MARGIN = 10.0


async def serve_split(
    service_argv: Sequence[str],
    settings: GatewaySettings,
    *,
    service_host: str,
    grace: float,
    channel_credentials: grpc.ChannelCredentials | None = None,
) -> int:
    """Run ``kubeupdate <service_argv>`` as a child, and the gateway here until a signal.

    ``service_argv`` runs the service alone (``serve ... --only grpc``); it
    listens on ``service_host``. Returns the exit code for this process.
    """
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    env = {**os.environ, LINK_FD: str(theirs.fileno())}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kubeupdate",
        *service_argv,
        pass_fds=(theirs.fileno(),),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
    )
    theirs.close()
    # The gateway proves itself to the service with a key only the two know, so the
    # service believes its x-forwarded-for and nobody else's (kubeupdate.auth.proxies).
    key = secrets.token_urlsafe(32)
    await loop.sock_sendall(ours, json.dumps({"proxy_key": key}).encode() + b"\n")
    stop = asyncio.Event()
    signals = {signal.SIGTERM: stop.set, signal.SIGINT: stop.set}
    signals[signal.SIGHUP] = lambda: _signal(child, signal.SIGHUP)
    for signum, handler in signals.items():
        loop.add_signal_handler(signum, handler)
    exited = asyncio.ensure_future(child.wait())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        listening = await _first(_ready(ours), exited, stopped)
        if listening is None or listening.grpc_port is None:
            if stop.is_set():
                _signal(child, signal.SIGTERM)  # a signal came first
            return await _stopped(child, exited, grace)  # else it could not start, and said why
        upstream = settings.upstream or f"{_reachable(service_host)}:{listening.grpc_port}"
        gateway = GatewayServer(
            replace(settings, upstream=upstream, proxy_key=key),
            channel_credentials=channel_credentials,
        )
        async with gateway:
            log.info("kubeupdate REST gateway listening on %s:%d", settings.host, gateway.port)
            await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if exited.done():
                log.error(
                    "the gRPC service (pid %d) exited with code %s; stopping the gateway",
                    child.pid,
                    exited.result(),
                )
            # At once: its running calls finish within its grace while the gateway drains.
            _signal(child, signal.SIGTERM)
        return await _stopped(child, exited, grace)
    finally:
        stopped.cancel()
        for signum in signals:
            loop.remove_signal_handler(signum)
        if child.returncode is None:  # this process is failing: never leave the child behind
            _signal(child, signal.SIGTERM)
            await _stopped(child, exited, grace)
        ours.close()


async def _ready(link: socket.socket) -> Listening | None:
    """The child's ports, once it listens; None if it ends first."""
    loop = asyncio.get_running_loop()
    received = b""
    while not received.endswith(b"\n"):
        chunk = await loop.sock_recv(link, 4096)
        if not chunk:
            return None
        received += chunk
    ports = json.loads(received)
    return Listening(ports.get("grpc_port"), ports.get("http_port"), ports.get("metrics_port"))


async def _first(awaitable: Awaitable[T], *rivals: asyncio.Future[Any]) -> T | None:
    """What ``awaitable`` gives, or None if a rival is done first (it is then cancelled)."""
    task = asyncio.ensure_future(awaitable)
    await asyncio.wait({task, *rivals}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def _stopped(
    child: asyncio.subprocess.Process, exited: asyncio.Future[int], grace: float
) -> int:
    """The child's exit code, once it has stopped (killed if it outlives its grace)."""
    try:
        code = await asyncio.wait_for(asyncio.shield(exited), grace + STOP_MARGIN)
    except TimeoutError:
        log.error("the gRPC service (pid %d) did not stop in time; killing it", child.pid)
        _signal(child, signal.SIGKILL)
        code = await exited
    return code if code >= 0 else 128 - code  # killed by a signal: as a shell reports it


def _signal(child: asyncio.subprocess.Process, signum: signal.Signals) -> None:
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)


def _reachable(host: str) -> str:
    """Where this machine reaches a server listening on ``host``."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - compared, not bound
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class ParentLink:
    """The child's end of the socket: tell the parent the ports; stop when it is gone.

    The parent's one message, sent first, is the key its gateway proves itself
    with (:attr:`proxy_key`).
    """

    def __init__(self, fd: int) -> None:
        self._socket = socket.socket(fileno=fd)
        self._socket.settimeout(STOP_MARGIN)
        self.proxy_key = self._receive_key()
        self._socket.setblocking(False)

    def _receive_key(self) -> str | None:
        received = b""
        with contextlib.suppress(OSError):  # a parent gone, or silent: no key
            while not received.endswith(b"\n"):
                chunk = self._socket.recv(4096)
                if not chunk:
                    break
                received += chunk
        if not received.endswith(b"\n"):
            return None
        key = json.loads(received).get("proxy_key")
        return key if isinstance(key, str) else None

    @classmethod
    def from_environment(cls) -> ParentLink | None:
        """The link, when this process was started by :func:`serve_split`."""
        fd = os.environ.pop(LINK_FD, None)
        return None if fd is None else cls(int(fd))

    def ready(self, listening: Listening) -> None:
        ports = {
            "grpc_port": listening.grpc_port,
            "http_port": listening.http_port,
            "metrics_port": listening.metrics_port,
        }
        self._socket.send(json.dumps(ports).encode() + b"\n")

    def watch(self, stop: asyncio.Event) -> None:
        """Set ``stop`` when the parent is gone (it never writes: readable means closed)."""
        loop = asyncio.get_running_loop()

        def gone() -> None:
            loop.remove_reader(self._socket.fileno())
            log.warning("the process that started this one is gone; stopping")
            stop.set()

        loop.add_reader(self._socket.fileno(), gone)

    def close(self) -> None:
        self._socket.close()
