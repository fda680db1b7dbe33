"""The Falcon ASGI app: routes from the annotations, one handler per error family.

``create_app(upstream)`` derives the routes of the given services (by default
``kubeupdate.v1.DeploymentImageService``), prepares one transcoder and one call
handle per route, and adds ``GET /``, ``/healthz``, ``/readyz``,
``/openapi.json`` and (unless ``settings.metrics`` is off) ``/metrics``.
Unary RPCs answer one JSON document (``RpcEndpoint``); server-streaming RPCs
answer newline-delimited JSON (``gateway.streaming``).
All the work that depends only on the descriptors is done here, once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import falcon
import falcon.asgi
from google.protobuf.descriptor import ServiceDescriptor
from kubeupdate.v1 import deployment_image_service_pb2
from kubeupdate.v1.error_reason_pb2 import ErrorReason

from gateway.errors import RETRY_AFTER_STATUSES, RequestError, UpstreamError, reason_name
from gateway.metrics import GatewayMetrics, MetricsResource, RequestObserver
from gateway.openapi import openapi_document, render
from gateway.resources import (
    DocumentResource,
    LivenessResource,
    ReadinessResource,
    RequestIdMiddleware,
    RootResource,
    RpcEndpoint,
)
from gateway.routes import Route, RouteError, routes_for_services
from gateway.settings import GatewaySettings
from gateway.streaming import GatewayRequest, OpenStreams, StreamEndpoint
from gateway.transcoding import JSON_CONTENT_TYPE, Transcoder, error_document
from gateway.upstream import Upstream

logger = logging.getLogger(__name__)

DEFAULT_SERVICES: tuple[ServiceDescriptor, ...] = (
    deployment_image_service_pb2.DESCRIPTOR.services_by_name["DeploymentImageService"],
)

# Paths the gateway serves itself; an annotation may not take them.
RESERVED_PATHS = frozenset({"/", "/healthz", "/readyz", "/openapi.json", "/metrics"})

_INTERNAL_DETAIL = "The gateway failed with an internal error."
# A path quoted in a 404/405 sentence is cut to this many characters.
_PATH_QUOTE_LIMIT = 200


def create_app(
    upstream: Upstream,
    settings: GatewaySettings | None = None,
    *,
    services: Sequence[ServiceDescriptor] = DEFAULT_SERVICES,
    open_streams: OpenStreams | None = None,
    metrics: GatewayMetrics | None = None,
) -> falcon.asgi.App[GatewayRequest, falcon.asgi.Response]:
    """The gateway app forwarding to ``upstream``; raises ``RouteError`` on a bad annotation.

    ``open_streams`` tracks the streaming answers in progress, so that whoever
    runs the app can end them at shutdown. ``metrics`` are served at
    ``/metrics``; by default a new set, or none when ``settings.metrics`` is off.
    """
    settings = settings or GatewaySettings()
    open_streams = open_streams if open_streams is not None else OpenStreams()
    if metrics is None and settings.metrics:
        metrics = GatewayMetrics()
    grouped = _group(routes_for_services(services))
    # Metrics and logs name a route by its template in the proto, not Falcon's.
    names = {t: routes[0].template for t, routes in grouped.items()}
    # The observer comes first, so its time and access line cover everything else.
    observer = RequestObserver(metrics, names, log_access=settings.access_log)
    app = falcon.asgi.App(middleware=[observer], request_type=GatewayRequest)
    app.add_middleware(RequestIdMiddleware())
    app.add_route("/", RootResource())
    app.add_route("/healthz", LivenessResource())
    app.add_route("/readyz", ReadinessResource(upstream, settings))
    app.add_route("/openapi.json", DocumentResource(render(openapi_document(services))))
    if metrics is not None:
        app.add_route("/metrics", MetricsResource(metrics))
        metrics.count_streams(lambda: len(open_streams))
    if metrics is not None:
        metrics.prepare((names[t], r.http_method) for t, routes in grouped.items() for r in routes)
    for uri_template, endpoints in grouped.items():
        resource = _RouteResource()
        for route in endpoints:
            transcoder = Transcoder(route)
            endpoint: RpcEndpoint | StreamEndpoint
            if route.rpc.server_streaming:
                call = upstream.unary_stream(route.rpc)
                endpoint = StreamEndpoint(transcoder, call, settings, open_streams)
            else:
                endpoint = RpcEndpoint(transcoder, upstream.unary_unary(route.rpc), settings)
            setattr(resource, "on_" + route.http_method.lower(), endpoint.respond)
            logger.debug("route %s %s -> %s", route.http_method, route.template, route.rpc.path)
        app.add_route(uri_template, resource)

    app.add_error_handler(Exception, _unexpected_error)
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(RequestError, _request_error)
    app.add_error_handler(UpstreamError, _upstream_error)
    return app


class _RouteResource:
    """Holds the ``on_<method>`` responders of one URI template, set by create_app."""


def _group(routes: list[Route]) -> dict[str, list[Route]]:
    grouped: dict[str, list[Route]] = {}
    for route in routes:
        if route.uri_template in RESERVED_PATHS:
            raise RouteError(f"{route.rpc.path} takes {route.template}, which the gateway serves.")
        grouped.setdefault(route.uri_template, []).append(route)
    return grouped


def _render(
    resp: falcon.asgi.Response,
    status: int,
    code: str,
    detail: str,
    reason: str,
    metadata: dict[str, str] | None = None,
) -> None:
    resp.status = status
    resp.content_type = JSON_CONTENT_TYPE
    resp.data = error_document(code, detail, reason, metadata)


def _request_id(req: falcon.asgi.Request) -> str:
    return str(getattr(req.context, "request_id", "-"))


async def _request_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: RequestError, params: Any
) -> None:
    _render(resp, ex.http_status, ex.code, ex.detail, ex.reason)


async def _upstream_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: UpstreamError, params: Any
) -> None:
    detail = ex.public_detail()
    if detail != ex.detail:
        # The caller gets a fixed sentence; the service's own words stay in the log.
        logger.warning(
            "request %s: %s %s -> %s: %s",
            _request_id(req),
            req.method,
            req.path,
            ex.code,
            ex.detail,
        )
    _render(resp, ex.http_status, ex.code, detail, ex.reason, ex.metadata)
    if ex.retry_after is not None and ex.http_status in RETRY_AFTER_STATUSES:
        resp.set_header("Retry-After", ex.retry_after)
    if ex.www_authenticate is not None and ex.http_status == 401:
        resp.set_header("WWW-Authenticate", ex.www_authenticate)


async def _http_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: falcon.HTTPError, params: Any
) -> None:
    status = ex.status_code
    headers = dict(ex.headers or {})
    path = req.path if len(req.path) <= _PATH_QUOTE_LIMIT else req.path[:_PATH_QUOTE_LIMIT] + "..."
    if status == 404:
        code, detail = "NOT_FOUND", f"No REST route matches {path}."
        reason = ErrorReason.ROUTE_NOT_FOUND
    elif status == 405:
        allowed = headers.get("Allow", "")
        code = "UNIMPLEMENTED"
        detail = f"{path} does not accept {req.method}; it accepts {allowed}."
        reason = ErrorReason.HTTP_METHOD_NOT_ALLOWED
    elif status >= 500:
        logger.error("request %s: %s", _request_id(req), ex)
        code, detail, reason = "INTERNAL", _INTERNAL_DETAIL, ErrorReason.INTERNAL
    else:
        # Falcon's own 4xx, such as a malformed Content-Length header.
        code = "INVALID_ARGUMENT"
        detail = f"{ex.title}: {ex.description}" if ex.description else str(ex.title)
        reason = ErrorReason.REQUEST_MALFORMED
    _render(resp, status, code, detail, reason_name(reason))
    for name, value in headers.items():
        resp.set_header(name, value)


async def _unexpected_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception, params: Any
) -> None:
    logger.error("request %s: %s %s failed", _request_id(req), req.method, req.path, exc_info=ex)
    _render(resp, 500, "INTERNAL", _INTERNAL_DETAIL, reason_name(ErrorReason.INTERNAL))
