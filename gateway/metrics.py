"""The gateway's Prometheus metrics, ``GET /metrics``, and its access log line.

Every :class:`GatewayMetrics` owns its registry (never prometheus_client's
global one), so several gateways in one process keep separate counts.

- ``gateway_http_requests_total{route,method,code}``: ``route`` is the URI
  template that matched (``/deployment/{namespace}/{deployment}/{container}``),
  never the raw path, or ``unmatched``; ``method`` an HTTP method or ``other``
- ``gateway_http_request_duration_seconds{route,method}`` (histogram): until
  the response headers (a stream's lines come later)
- ``gateway_http_open_streams``: NDJSON rollout streams being answered
- the standard ``process_*``, ``python_gc_*`` and ``python_info`` series

:class:`RequestObserver` is the Falcon middleware that counts, times and (if
asked) logs one access line per request, with the request id. The hot path is
two clock reads, a dict lookup, an ``inc`` and an ``observe``: label children
are made once per route, method and code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import falcon
import falcon.asgi
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

access_log = logging.getLogger("gateway.access")

UNMATCHED: Final = "unmatched"
_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)
# A REST call is a gRPC call plus ~0.3 ms; waited changes take up to 30 minutes.
BUCKETS: Final = (
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
    120.0,
    600.0,
    1800.0,
)


class GatewayMetrics:
    """The gateway's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self._requests = Counter(
            "gateway_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "code"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "gateway_http_request_duration_seconds",
            "Seconds from a request to its response headers, by route template and method.",
            ["route", "method"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._streams = Gauge(
            "gateway_http_open_streams",
            "Streaming (NDJSON) answers in progress.",
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def count_streams(self, read: Callable[[], float]) -> None:
        """Reads the number of open streams with ``read`` at each scrape."""
        self._streams.set_function(read)

    def prepare(self, routes: Iterable[tuple[str, str]]) -> None:
        """Makes the children of these (route template, method) pairs for the usual codes."""
        for route, method in routes:
            for code in (200, 400, 401, 403, 404, 503):
                self._child(route, method, code)

    def observe(self, route: str, method: str, code: int, seconds: float) -> None:
        counter, histogram = self._children.get((route, method, code)) or self._child(
            route, method, code
        )
        counter.inc()
        histogram.observe(seconds)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)

    def _child(self, route: str, method: str, code: int) -> tuple[Counter, Histogram]:
        pair = (
            self._requests.labels(route, method, str(code)),
            self._duration.labels(route, method),
        )
        self._children[route, method, code] = pair
        return pair


class MetricsResource:
    """``GET /metrics``: Prometheus' text format; needs no credentials, holds none."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.data = self._metrics.exposition()
        resp.content_type = CONTENT_TYPE_LATEST


class RequestObserver:
    """Falcon middleware: counts and times every request, logs its access line."""

    def __init__(
        self, metrics: GatewayMetrics | None, names: Mapping[str, str], *, log_access: bool
    ) -> None:
        """``names`` maps Falcon's URI templates to the names shown (the proto's templates)."""
        self._metrics = metrics
        self._names = names
        self._log_access = log_access

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        req.context.started = time.perf_counter()

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: Any,
        req_succeeded: bool,
    ) -> None:
        started: float | None = getattr(req.context, "started", None)
        if started is None:
            return  # failed before process_request ran
        seconds = time.perf_counter() - started
        template = req.uri_template
        route = UNMATCHED if template is None else self._names.get(template, template)
        method = req.method if req.method in _METHODS else "other"
        code = resp.status_code
        if self._metrics is not None:
            self._metrics.observe(route, method, code, seconds)
        if self._log_access and access_log.isEnabledFor(logging.INFO):
            # The path, never the query string or headers: no credentials in logs.
            client = req.scope.get("client")
            access_log.info(
                "%s %s %d %.1fms",
                method,
                req.path,
                code,
                seconds * 1000,
                extra={
                    "method": method,
                    "path": req.path,
                    "route": route,
                    "status": code,
                    "duration_ms": round(seconds * 1000, 3),
                    "client": str(client[0]) if client else "",
                },
            )
