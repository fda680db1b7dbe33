"""The service process: its settings and flags, and :func:`serve`, which wires it together.

:func:`serve` is the composition root: it loads the Kubernetes credentials,
builds the Kubernetes client, the registry checks
(:mod:`kubeupdate.registry.config`), the domain's use cases
(:func:`kubeupdate.operations.operations`), security (:mod:`kubeupdate.auth`)
and metrics, runs the gRPC server
(:class:`~kubeupdate.protocol.grpc.server.ServiceServer`) until SIGTERM or
SIGINT, then stops it gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kubeupdate import errors
from kubeupdate.auth import config as auth_config
from kubeupdate.containers import DEFAULT_ATTEMPTS
from kubeupdate.guarded.terms import DEFAULT_DURATION, DEFAULT_RETENTION, LeaseTerms
from kubeupdate.kube.api import DEFAULT_TIMEOUT
from kubeupdate.kube.credentials import SERVICE_ACCOUNT_DIR, Credentials
from kubeupdate.names import check_namespace
from kubeupdate.operations import operations
from kubeupdate.protocol.grpc.server import ServiceServer
from kubeupdate.registry import config as registry_config
from kubeupdate.rollouts.settings import RolloutSettings

if TYPE_CHECKING:
    # aiohttp's client and web server: imported by serve(), so that reading
    # the flags (kubeupdate serve --only gateway) does not load them.
    from kubeupdate.metrics import ServiceMetrics

log = logging.getLogger(__name__)

#: ``kubeupdate serve``'s metrics port (Prometheus' own default is 9090 too, but
#: Prometheus does not run in the service's Pod).
DEFAULT_METRICS_PORT = 9090


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``kubeupdate serve`` needs to run the gRPC service."""

    host: str = "127.0.0.1"
    port: int = 50051
    # Kubernetes credentials: a kubeconfig when given, else the Pod's service account.
    kubeconfig: Path | None = None
    context: str | None = None
    serviceaccount_dir: Path = SERVICE_ACCOUNT_DIR
    kube_timeout: float = DEFAULT_TIMEOUT
    update_attempts: int = DEFAULT_ATTEMPTS
    grace: float = 10.0
    # Waits for rollouts: default and maximum timeout, how long Pods may be in trouble.
    rollouts: RolloutSettings = field(default_factory=RolloutSettings)
    # Authentication, policy, audit, rate limits, TLS: on by default.
    auth: auth_config.AuthConfig = field(default_factory=auth_config.AuthConfig)
    # Registry checks before writes: credentials, TLS, cache, when to check.
    registry: registry_config.RegistryConfig = field(default_factory=registry_config.RegistryConfig)
    # Guarded rollouts: how their Leases are held (None: waits are not guarded, no
    # guardian), which namespaces the guardian watches (None: all), who this replica is.
    guard: LeaseTerms | None = field(default_factory=LeaseTerms)
    guard_namespaces: tuple[str, ...] | None = None
    replica_id: str = ""
    # GET /metrics on this port of ``host`` (0 picks a free one); None: no listener.
    # The command line's default is DEFAULT_METRICS_PORT; embedders ask for it.
    metrics_port: int | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the gRPC service, for ``kubeupdate serve``; read back by :func:`config_from`."""
    defaults = ServerConfig()
    group = parser.add_argument_group("gRPC service")
    group.add_argument(
        "--grpc-host", default=defaults.host, help="address to listen on (default: %(default)s)"
    )
    group.add_argument(
        "--grpc-port",
        type=int,
        default=defaults.port,
        help="port; 0 picks a free one (default: %(default)s)",
    )
    group.add_argument(
        "--kubeconfig", type=Path, help="use this kubeconfig instead of the Pod's service account"
    )
    group.add_argument("--context", help="kubeconfig context (default: its current context)")
    group.add_argument(
        "--serviceaccount-dir",
        type=Path,
        default=defaults.serviceaccount_dir,
        help="where the service account token and ca.crt are mounted (default: %(default)s)",
    )
    group.add_argument(
        "--kube-timeout",
        type=float,
        default=defaults.kube_timeout,
        help="seconds allowed for each Kubernetes call (default: %(default)s)",
    )
    group.add_argument(
        "--update-attempts",
        type=int,
        default=defaults.update_attempts,
        help="patches tried while a Deployment keeps changing (default: %(default)s)",
    )
    group.add_argument(
        "--grace",
        type=float,
        default=defaults.grace,
        help="seconds running calls get to finish on SIGTERM (default: %(default)s)",
    )
    group.add_argument(
        "--wait-timeout",
        type=float,
        default=defaults.rollouts.default_timeout,
        help="seconds a change with Wait waits when it sets no Timeout (default: %(default)s)",
    )
    group.add_argument(
        "--max-wait-timeout",
        type=float,
        default=defaults.rollouts.max_timeout,
        help="longer requested Timeouts are cut to this many seconds (default: %(default)s)",
    )
    group.add_argument(
        "--stuck-grace",
        type=float,
        default=defaults.rollouts.stuck_grace,
        help="seconds a new Pod may stay unready while its image cannot be pulled or its "
        "container keeps exiting before the rollout is FAILED (default: %(default)s)",
    )
    guard = parser.add_argument_group("guarded rollouts (a waited change outlives this replica)")
    guard.add_argument(
        "--guard-lease-duration",
        type=int,
        default=DEFAULT_DURATION,
        help="seconds another replica waits for this one to renew a guarded rollout's Lease "
        "before it takes the rollout over (default: %(default)s)",
    )
    guard.add_argument(
        "--guard-retention",
        type=int,
        default=DEFAULT_RETENTION,
        help="seconds a guarded rollout's verdict is kept for GetGuardedRollout after it "
        "ended (default: %(default)s)",
    )
    guard.add_argument(
        "--guard-namespaces",
        help="comma-separated namespaces whose guarded rollouts this replica's guardian "
        "watches: those it manages (its Role grants Leases there); default: all namespaces "
        "(needs a ClusterRole to list and watch Leases)",
    )
    guard.add_argument(
        "--replica-id",
        default="",
        help="this replica's name in the Leases it holds (default: the host name and a "
        "random suffix)",
    )
    guard.add_argument(
        "--no-guard",
        action="store_true",
        help="do not guard waited changes (no Leases, no guardian): a wait then ends with "
        "its replica",
    )
    group.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULT_METRICS_PORT,
        help="serve Prometheus metrics at /metrics on this port of --grpc-host; "
        "0 picks a free one (default: %(default)s)",
    )
    group.add_argument(
        "--no-metrics",
        action="store_true",
        help="no metrics: no --metrics-port listener, no /metrics on the gateway",
    )
    auth_config.add_arguments(parser)
    registry_config.add_arguments(parser)


def config_from(arguments: argparse.Namespace) -> ServerConfig:
    """The :class:`ServerConfig` for flags added by :func:`add_arguments`."""
    if arguments.context and not arguments.kubeconfig:
        raise ValueError("--context needs --kubeconfig")
    return ServerConfig(
        host=arguments.grpc_host,
        port=arguments.grpc_port,
        kubeconfig=arguments.kubeconfig,
        context=arguments.context,
        serviceaccount_dir=arguments.serviceaccount_dir,
        kube_timeout=arguments.kube_timeout,
        update_attempts=arguments.update_attempts,
        grace=arguments.grace,
        rollouts=RolloutSettings(
            default_timeout=arguments.wait_timeout,
            max_timeout=arguments.max_wait_timeout,
            stuck_grace=arguments.stuck_grace,
        ),
        auth=auth_config.config_from(arguments),
        registry=registry_config.config_from(arguments),
        guard=None
        if arguments.no_guard
        else LeaseTerms(arguments.guard_lease_duration, arguments.guard_retention),
        guard_namespaces=_namespaces(arguments.guard_namespaces),
        replica_id=arguments.replica_id,
        metrics_port=None if arguments.no_metrics else arguments.metrics_port,
    )


def _namespaces(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    names = tuple(sorted({name.strip() for name in text.split(",") if name.strip()}))
    for name in names:
        try:
            check_namespace(name)
        except errors.InvalidArgument as exc:
            raise ValueError(f"--guard-namespaces: {exc.message}") from None
    return names or None


def replica_identity(config: ServerConfig) -> str:
    """The name this replica writes as holder: unique per process, so a restart is another."""
    return config.replica_id or f"{socket.gethostname()}-{secrets.token_hex(4)}"


def load_credentials(config: ServerConfig) -> Credentials:
    """The credentials ``config`` asks for; raises ``kube.errors.CredentialsError``."""
    if config.kubeconfig is not None:
        return Credentials.from_kubeconfig(config.kubeconfig, config.context)
    return Credentials.in_cluster(config.serviceaccount_dir)


async def serve(
    config: ServerConfig,
    *,
    ready: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    metrics_ready: Callable[[int], None] | None = None,
) -> None:
    """Run the service until SIGTERM/SIGINT (or ``stop`` is set), then stop gracefully.

    ``ready`` is called with the bound port once the server is serving;
    ``metrics_ready`` with the metrics port, before ``ready``. A
    process that runs more than this server (``kubeupdate serve`` with the
    gateway) can pass ``handle_signals=False`` and set ``stop`` itself.
    """
    from kubeupdate.guarded.guardian import Guardian, audited
    from kubeupdate.kube.client import KubeClient
    from kubeupdate.metrics import MetricsListener, ServiceMetrics

    # The loaders may run an exec plugin: keep that off the event loop.
    credentials = await asyncio.to_thread(load_credentials, config)
    log.info("Kubernetes credentials: %s", credentials.source)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    auth = auth_config.Auth(config.auth)
    metrics: ServiceMetrics | None = None
    listener: MetricsListener | None = None
    if config.metrics_port is not None:
        metrics = ServiceMetrics()
    observe = metrics.kubernetes_call if metrics is not None else None
    kube = KubeClient(credentials, timeout=config.kube_timeout, observe=observe)
    checks = registry_config.build_checks(config.registry)
    auth.also_reload(checks.reload)
    async with auth, kube as client, checks:
        identity = replica_identity(config)
        domain = operations(
            client,
            client,
            config.rollouts,
            attempts=config.update_attempts,
            lease_api=client,
            checks=checks,
            guard=config.guard,
            identity=identity,
        )
        guardian: asyncio.Task[None] | None = None
        if domain.guarded is not None:
            log.info("guarding waited changes as replica %s", identity)
            guardian = asyncio.create_task(
                Guardian(
                    domain.guarded,
                    domain.tracking.informers(),
                    config.guard_namespaces,
                    observe=audited(auth.audit),
                ).run(),
                name="guardian",
            )
        if metrics is not None:
            metrics.count_watches(lambda: domain.tracking.open_watches)
            metrics.count_followed(lambda: domain.tracking.following)
        server = ServiceServer(
            domain,
            host=config.host,
            port=config.port,
            interceptors=[auth.interceptor],
            server_credentials=auth.server_credentials,
            metrics=metrics,
        )
        if metrics is not None and config.metrics_port is not None:
            listener = MetricsListener(
                metrics, config.host, config.metrics_port, serving=lambda: server.serving
            )
            metrics_port = await listener.start()
            log.info("kubeupdate metrics at http://%s:%d/metrics", config.host, metrics_port)
            if metrics_ready is not None:
                metrics_ready(metrics_port)
        try:
            port = await server.start()
        except BaseException as exc:
            if listener is not None:
                await listener.stop()
            if isinstance(exc, OSError):
                raise OSError(f"{exc} (--grpc-port=0 picks a free port)") from exc
            raise
        log.info("kubeupdate gRPC service listening on %s:%d", config.host, port)
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        try:
            if ready is not None:
                ready(port)
            await stop.wait()
            log.info("stopping; running calls get %.0fs to finish", config.grace)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            if guardian is not None:
                # First the guardian (it releases what it follows), then the waits:
                # this replica must not take back what it hands over.
                guardian.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await guardian
            domain.updates.hand_over()
            await server.stop(config.grace)
            await domain.close()
            if listener is not None:
                await listener.stop()
