"""The gRPC service's Prometheus metrics, and the small HTTP listener serving them.

Every :class:`ServiceMetrics` owns its registry (never prometheus_client's
global one), so several servers in one process (tests, ``kubeupdate demo``)
keep separate counts. Label children are looked up once and kept in plain
dicts: the hot path is a dict lookup, an ``inc`` and an ``observe``.

Metric names (``kubeupdate_`` for ours, go-grpc-prometheus' for the gRPC ones,
so existing dashboards work):

- ``grpc_server_handled_total{grpc_service,grpc_method,grpc_type,grpc_code}``
- ``grpc_server_handling_seconds{grpc_service,grpc_method,grpc_type}`` (histogram)
- ``kubeupdate_updates_total{outcome}``: what a SetContainerImage call did,
  one of :data:`UPDATE_OUTCOMES`
- ``kubeupdate_rollout_wait_seconds{state}`` (histogram): from the request to
  the end of a waited rollout (available, failed, timed out or rolled back)
- ``kubeupdate_kubernetes_requests_total{verb,resource,code}``: ``code`` is the
  HTTP status, or ``timeout`` / ``connection`` when none came back; errors are
  the codes other than 2xx
  (``verb="watch"`` counts watch requests: one per shared watch and restart)
- ``kubeupdate_kubernetes_request_duration_seconds{verb,resource}`` (histogram,
  watches excluded: they last minutes by design)
- ``kubeupdate_open_watches``: Kubernetes watches open now: one per resource and
  namespace that rollout waits and streams read (shared, whatever their number)
- ``kubeupdate_followed_rollouts``: rollouts being followed now (waited changes
  and rollout streams)
- the standard ``process_*``, ``python_gc_*`` and ``python_info`` series
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import grpc
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from kubeupdate import sockets
from kubeupdate.rollouts.judgement import RolloutState
from kubeupdate.updates import SetImageOutcome

log = logging.getLogger(__name__)

#: Values of ``kubeupdate_updates_total``'s ``outcome`` label.
UPDATE_OUTCOMES: Final = (
    "changed",  # the image was changed (and, when waited for, became available)
    "unchanged",  # the container already ran that image: no PATCH, no rollout
    "dry_run",  # validated and checked by the API server, nothing stored
    "rollout_failed",  # changed, but the waited rollout failed
    "timed_out",  # changed, but the waited rollout did not end in time
    "rolled_back",  # changed, the waited rollout failed, the previous image is back
    # Reached the change and failed there (the call's code says why). A call refused
    # before it (credentials, policy, an invalid name or image) is counted only by
    # grpc_server_handled_total.
    "failed",
)

# Rollout waits last from a second to half an hour (--max-wait-timeout).
ROLLOUT_BUCKETS: Final = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
# gRPC and Kubernetes calls: milliseconds, up to the 10 s Kubernetes timeout.
CALL_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

_ROLLOUT_OUTCOMES: Final = {
    RolloutState.FAILED: "rollout_failed",
    RolloutState.TIMED_OUT: "timed_out",
    RolloutState.ROLLED_BACK: "rolled_back",
}


class ServiceMetrics:
    """The service's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self._handled = Counter(
            "grpc_server_handled_total",
            "gRPC calls completed, by method and status code.",
            ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
            registry=self.registry,
        )
        self._handling = Histogram(
            "grpc_server_handling_seconds",
            "Seconds from the start of a gRPC call to its status (streams: to their end).",
            ["grpc_service", "grpc_method", "grpc_type"],
            buckets=CALL_BUCKETS,
            registry=self.registry,
        )
        self._updates = Counter(
            "kubeupdate_updates",
            "SetContainerImage calls by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self._rollout_wait = Histogram(
            "kubeupdate_rollout_wait_seconds",
            "Seconds from a waited SetContainerImage request to the end of its rollout.",
            ["state"],
            buckets=ROLLOUT_BUCKETS,
            registry=self.registry,
        )
        self._kube_requests = Counter(
            "kubeupdate_kubernetes_requests",
            "Kubernetes API requests by verb, resource and HTTP status "
            "(timeout or connection when none came back).",
            ["verb", "resource", "code"],
            registry=self.registry,
        )
        self._kube_duration = Histogram(
            "kubeupdate_kubernetes_request_duration_seconds",
            "Seconds per Kubernetes API request (watches excluded).",
            ["verb", "resource"],
            buckets=CALL_BUCKETS,
            registry=self.registry,
        )
        self._open_watches = Gauge(
            "kubeupdate_open_watches",
            "Kubernetes watches open now, shared by rollout waits and streams.",
            registry=self.registry,
        )
        self._followed = Gauge(
            "kubeupdate_followed_rollouts",
            "Rollouts being followed now: waited changes and rollout streams.",
            registry=self.registry,
        )
        self._updates_by_outcome = {o: self._updates.labels(o) for o in UPDATE_OUTCOMES}
        self._rollouts_by_state = {
            s: self._rollout_wait.labels(s.value) for s in RolloutState if s.terminal
        }
        self._calls: dict[tuple[str, str], CallMetrics] = {}
        self._kube: dict[tuple[str, str], Histogram] = {}
        self._kube_codes: dict[tuple[str, str, str], Counter] = {}

    def count_watches(self, read: Callable[[], float]) -> None:
        """Reads the number of open watches with ``read`` at each scrape."""
        self._open_watches.set_function(read)

    def count_followed(self, read: Callable[[], float]) -> None:
        """Reads the number of rollouts being followed with ``read`` at each scrape."""
        self._followed.set_function(read)

    def call(self, method: str, streaming: bool) -> CallMetrics:
        """The children of one gRPC method (``/package.Service/Method``), made once."""
        key = (method, "server_stream" if streaming else "unary")
        found = self._calls.get(key)
        if found is None:
            service, _, name = method.strip("/").rpartition("/")
            found = CallMetrics(self._handled, self._handling, service, name, key[1])
            self._calls[key] = found
        return found

    def update(self, outcome: SetImageOutcome) -> None:
        """Counts one SetContainerImage call that succeeded, and its wait."""
        rollout = outcome.rollout
        if outcome.dry_run:
            name = "dry_run"
        elif rollout is not None and rollout.state in _ROLLOUT_OUTCOMES:
            name = _ROLLOUT_OUTCOMES[rollout.state]
        else:
            name = "changed" if outcome.change.changed else "unchanged"
        self._updates_by_outcome[name].inc()
        if rollout is not None and rollout.duration is not None:
            histogram = self._rollouts_by_state.get(rollout.state)
            if histogram is not None:
                histogram.observe(rollout.duration)

    def update_failed(self) -> None:
        """Counts one SetContainerImage call that ended with an error."""
        self._updates_by_outcome["failed"].inc()

    def kubernetes_call(self, verb: str, resource: str, code: str, seconds: float) -> None:
        """Counts one Kubernetes API request (:class:`kubeupdate.kube.client.KubeClient`)."""
        counter = self._kube_codes.get((verb, resource, code))
        if counter is None:
            counter = self._kube_codes[verb, resource, code] = self._kube_requests.labels(
                verb, resource, code
            )
        counter.inc()
        if verb == "watch":
            return  # how long until a watch answers says little; it then lasts minutes
        histogram = self._kube.get((verb, resource))
        if histogram is None:
            histogram = self._kube[verb, resource] = self._kube_duration.labels(verb, resource)
        histogram.observe(seconds)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


class CallMetrics:
    """The label children of one gRPC method: one histogram, a counter per code."""

    __slots__ = ("_codes", "_handled", "_labels", "handling")

    def __init__(
        self, handled: Counter, handling: Histogram, service: str, method: str, kind: str
    ) -> None:
        self._handled = handled
        self._labels = (service, method, kind)
        self.handling = handling.labels(*self._labels)
        self._codes = {code: handled.labels(*self._labels, code.name) for code in _COMMON_CODES}

    def done(self, code: grpc.StatusCode, seconds: float) -> None:
        counter = self._codes.get(code)
        if counter is None:
            counter = self._codes[code] = self._handled.labels(*self._labels, code.name)
        counter.inc()
        self.handling.observe(seconds)


# Precreated for every method, so a dashboard shows zeros rather than no series.
_COMMON_CODES: Final = (
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.INTERNAL,
)


class MetricsListener:
    """``GET /metrics`` on a port of its own, in the current event loop (aiohttp).

    With ``serving``, also the service's health for HTTP probes: ``/healthz`` (the
    process answers) and ``/readyz`` (the gRPC server is serving). The kubelet's
    gRPC probe speaks no TLS, so a service on TLS is probed here.
    """

    def __init__(
        self,
        metrics: ServiceMetrics,
        host: str,
        port: int,
        serving: Callable[[], bool] | None = None,
    ) -> None:
        self._metrics = metrics
        self._host = host
        self._port = port
        self._serving = serving
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> int:
        """Binds and serves; returns the bound port (useful with port 0)."""
        app = web.Application()
        app.router.add_get("/metrics", self._scrape)
        if self._serving is not None:
            app.router.add_get("/healthz", self._alive)
            app.router.add_get("/readyz", self._ready)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            sock = sockets.bind(self._host, self._port, backlog=128)
        except OSError as exc:
            await runner.cleanup()
            raise OSError(
                f"cannot listen for metrics on {self._host}:{self._port}: {exc.strerror} "
                "(--metrics-port=0 picks a free port, --no-metrics turns metrics off)"
            ) from exc
        await web.SockSite(runner, sock).start()
        self._runner = runner
        self.port = int(sock.getsockname()[1])
        return self.port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _alive(self, request: web.Request) -> web.Response:
        return web.Response(text="alive\n")

    async def _ready(self, request: web.Request) -> web.Response:
        assert self._serving is not None
        if self._serving():
            return web.Response(text="serving\n")
        return web.Response(status=503, text="not serving\n")

    async def _scrape(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
