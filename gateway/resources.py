"""Falcon resources: one endpoint per annotated route, plus root and health.

Resources receive their dependencies in the constructor (the call handle, the
transcoder, the settings) and keep no per-request state.
"""

from __future__ import annotations

import re

import falcon
import falcon.asgi
from google.protobuf.descriptor import Descriptor
from kubeupdate.v1.error_reason_pb2 import ErrorReason

from gateway.errors import BadRequest, PayloadTooLarge, UpstreamError
from gateway.settings import GatewaySettings
from gateway.transcoding import JSON_CONTENT_TYPE, Transcoder, encode_document, error_document
from gateway.upstream import SERVING, Metadata, UnaryCall, Upstream
from kubeupdate import request_ids

REQUEST_ID_HEADER = "X-Request-Id"
_SERVICE_UNAVAILABLE = ErrorReason.Name(ErrorReason.SERVICE_UNAVAILABLE)

# The original service's answer to GET /, byte for byte (Go's encoder adds "\n").
ROOT_BODY = encode_document({"Status": "okay", "Detail": "server is running"})
LIVE_BODY = encode_document({"Status": "okay", "Detail": "gateway is running"})
READY_BODY = encode_document({"Status": "okay", "Detail": "service is serving"})

# gRPC metadata values must be printable ASCII.
_METADATA_VALUE = re.compile(r"[\x20-\x7e]*")


class RequestIdMiddleware:
    """Gives every request an id, echoed in the response, even on errors."""

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        rid = request_ids.kept(req.get_header(REQUEST_ID_HEADER))
        request_ids.current.set(rid)
        req.context.request_id = rid
        resp.set_header(REQUEST_ID_HEADER, rid)


class RpcEndpoint:
    """Serves one route: HTTP request -> gRPC call -> HTTP response.

    The call's deadline is ``settings.call_timeout``, or ``settings.wait_call_timeout``
    for an RPC whose request has a ``google.protobuf.Duration timeout`` field: such
    a call may wait on purpose (a waited rollout) and bounds the wait itself.
    """

    def __init__(self, transcoder: Transcoder, call: UnaryCall, settings: GatewaySettings) -> None:
        self._transcoder = transcoder
        self._call = call
        self._timeout = settings.call_timeout
        if may_wait(transcoder.route.rpc.descriptor.input_type):
            self._timeout = max(settings.call_timeout, settings.wait_call_timeout)
        self._max_body = settings.max_body_bytes

    async def respond(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **params: str
    ) -> None:
        body = await read_body(req, self._max_body) if self._transcoder.takes_body else b""
        request = self._transcoder.decode(body, req.content_type, params, req.query_string)
        reply = await self._call(request, timeout=self._timeout, metadata=call_metadata(req))
        resp.data = self._transcoder.encode(reply)
        resp.content_type = JSON_CONTENT_TYPE


def may_wait(request: Descriptor) -> bool:
    """Whether a request declares how long the call may wait: a Duration ``timeout``."""
    field = request.fields_by_name.get("timeout")
    message = field.message_type if field is not None else None
    return message is not None and message.full_name == "google.protobuf.Duration"


async def read_body(req: falcon.asgi.Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes."""
    declared = req.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(_too_large(limit))
    # Content-Length may be absent (chunked) or wrong; count what is read.
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await req.stream.read(limit + 1 - total)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(_too_large(limit))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> str:
    return f"The body is larger than {limit} bytes."


def call_metadata(req: falcon.asgi.Request) -> Metadata:
    """The gRPC metadata forwarded with a call: request id, client, credentials."""
    metadata: list[tuple[str, str]] = [(request_ids.METADATA_KEY, req.context.request_id)]
    # The ASGI peer, which uvicorn replaces by the client a trusted proxy names;
    # Falcon's remote_addr would also believe forwarding headers from anyone.
    client = req.scope.get("client")
    if client:
        host, _port = client  # any iterable, per the ASGI spec
        metadata.append(("x-forwarded-for", str(host)))
    authorization = req.get_header("Authorization")
    if authorization is not None:
        if not _METADATA_VALUE.fullmatch(authorization):
            raise BadRequest("The Authorization header holds characters that cannot be forwarded.")
        metadata.append(("authorization", authorization))
    return tuple(metadata)


class RootResource:
    """``GET /``: the original service's liveness answer."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.data = ROOT_BODY
        resp.content_type = JSON_CONTENT_TYPE


class DocumentResource:
    """``GET /openapi.json``: a fixed JSON document, rendered once at start."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.data = self._data
        resp.content_type = JSON_CONTENT_TYPE


class LivenessResource:
    """``GET /healthz``: the gateway process answers; the service is not asked."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.data = LIVE_BODY
        resp.content_type = JSON_CONTENT_TYPE


class ReadinessResource:
    """``GET /readyz``: 200 when the service's grpc.health.v1 check says SERVING."""

    def __init__(self, upstream: Upstream, settings: GatewaySettings) -> None:
        self._upstream = upstream
        self._timeout = settings.health_timeout

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = JSON_CONTENT_TYPE
        try:
            status = await self._upstream.check_health(timeout=self._timeout)
        except UpstreamError:
            detail = "The service cannot be reached."
        else:
            if status == SERVING:
                resp.data = READY_BODY
                return
            detail = f"The service reports {status}."
        resp.status = falcon.HTTP_503
        resp.data = error_document("UNAVAILABLE", detail, _SERVICE_UNAVAILABLE)
