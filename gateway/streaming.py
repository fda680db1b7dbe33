"""Server-streaming RPCs over REST: newline-delimited JSON, one reply per line.

A route whose RPC streams its replies answers ``application/x-ndjson``: each
reply is rendered exactly as a unary reply is (PascalCase ``json_format``
document, compact) on its own line, and sent to the client as soon as it
arrives, so ``curl -N`` shows progress live.

What the client sees when the call fails:

- before the first reply (bad request, NOT_FOUND, service down...): the usual
  JSON error document with its HTTP status, exactly as on a unary route;
- after the first reply, the status line (200) and the earlier lines are
  already sent, so the stream ends with one last line
  ``{"Status":"failed","Detail":"<sentence>","Code":"<gRPC code>","Reason":"<reason>"}``; a
  reader tells it from a reply by its ``Status`` key, which no reply has.
  A stream that ends without such a line ended with OK.

A client that disconnects cancels the upstream gRPC call at once: a watcher
task waits for the ASGI ``http.disconnect`` event while replies are awaited
(Falcon does not watch for it on ``resp.stream``, and uvicorn's ``send``
silently drops data for a closed connection).

A stream may stay open for as long as a rollout lasts, so it must not hold up
a shutdown: ``OpenStreams.close_all()`` (called by ``GatewayServer.stop``)
cancels every open call, and each stream ends with the failure line
``UNAVAILABLE`` "The gateway is shutting down; watch again." so the client
knows to reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import falcon.asgi
import grpc
from falcon.request import RequestOptions
from google.protobuf.message import Message
from kubeupdate.v1.error_reason_pb2 import ErrorReason

from gateway.errors import UpstreamError, reason_name
from gateway.resources import call_metadata, read_body
from gateway.settings import GatewaySettings
from gateway.transcoding import Transcoder, error_document
from gateway.upstream import ReplyStream, StreamCall

logger = logging.getLogger(__name__)

NDJSON_CONTENT_TYPE = "application/x-ndjson"

# The ASGI receive callable (Falcon's own alias is private).
Receive = Callable[[], Awaitable[Mapping[str, Any]]]

_INTERNAL_DETAIL = "The gateway failed with an internal error."
_SHUTDOWN_DETAIL = "The gateway is shutting down; watch again."
_SERVICE_UNAVAILABLE = reason_name(ErrorReason.SERVICE_UNAVAILABLE)
_INTERNAL = reason_name(ErrorReason.INTERNAL)


class GatewayRequest(falcon.asgi.Request):
    """Falcon's request, keeping the ASGI ``receive`` so a stream can see a disconnect."""

    __slots__ = ("receive",)

    def __init__(
        self,
        scope: dict[str, Any],
        receive: Receive,
        first_event: Mapping[str, Any] | None = None,
        options: RequestOptions | None = None,
    ) -> None:
        super().__init__(scope, receive, first_event=first_event, options=options)
        self.receive = receive


class OpenStreams:
    """The streams being answered, so a shutdown can end them."""

    def __init__(self) -> None:
        self._streams: set[ReplyStream] = set()
        self.closing = False

    def add(self, stream: ReplyStream) -> None:
        if self.closing:
            stream.cancel()
        self._streams.add(stream)

    def discard(self, stream: ReplyStream) -> None:
        self._streams.discard(stream)

    def close_all(self) -> None:
        """Cancels every open call; their streams end with a shutdown line."""
        self.closing = True
        for stream in list(self._streams):
            stream.cancel()

    def __len__(self) -> int:
        return len(self._streams)


class StreamEndpoint:
    """Serves one server-streaming route: HTTP request -> gRPC stream -> NDJSON lines."""

    def __init__(
        self,
        transcoder: Transcoder,
        call: StreamCall,
        settings: GatewaySettings,
        open_streams: OpenStreams,
    ) -> None:
        self._transcoder = transcoder
        self._call = call
        self._open = open_streams
        self._timeout = settings.stream_timeout
        self._max_body = settings.max_body_bytes

    async def respond(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **params: str
    ) -> None:
        body = await read_body(req, self._max_body) if self._transcoder.takes_body else b""
        request = self._transcoder.decode(body, req.content_type, params, req.query_string)
        stream = self._call(request, timeout=self._timeout, metadata=call_metadata(req))
        self._open.add(stream)
        watcher = _watch_disconnect(req, stream)
        try:
            # Waiting for the first reply lets an early failure keep its HTTP status.
            first = await stream.next()
        except UpstreamError as exc:
            self._stop(watcher, stream)
            if self._open.closing and exc.status == grpc.StatusCode.CANCELLED:
                raise UpstreamError(grpc.StatusCode.UNAVAILABLE, _SHUTDOWN_DETAIL) from None
            raise
        except BaseException:
            self._stop(watcher, stream)
            raise
        resp.content_type = NDJSON_CONTENT_TYPE
        # Proxies such as nginx buffer responses unless told not to.
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("X-Accel-Buffering", "no")
        resp.stream = self._lines(req, stream, first, watcher)

    async def _lines(
        self,
        req: falcon.asgi.Request,
        stream: ReplyStream,
        reply: Message | None,
        watcher: asyncio.Task[None] | None,
    ) -> AsyncIterator[bytes]:
        try:
            while reply is not None:
                yield self._transcoder.encode(reply)
                reply = await stream.next()
        except UpstreamError as exc:
            if self._open.closing and exc.status == grpc.StatusCode.CANCELLED:
                yield failure_line(req, "UNAVAILABLE", _SHUTDOWN_DETAIL, _SERVICE_UNAVAILABLE)
            elif watcher is None or not watcher.done():
                yield failure_line(req, exc.code, exc.public_detail(), exc.reason, exc.detail)
        except Exception:
            logger.exception("request %s: %s %s failed mid-stream", _id(req), req.method, req.path)
            yield failure_line(req, "INTERNAL", _INTERNAL_DETAIL, _INTERNAL)
        finally:
            self._stop(watcher, stream)

    def _stop(self, watcher: asyncio.Task[None] | None, stream: ReplyStream) -> None:
        self._open.discard(stream)
        if watcher is not None:
            watcher.cancel()
        with contextlib.suppress(Exception):
            stream.cancel()


def failure_line(
    req: falcon.asgi.Request, code: str, detail: str, reason: str, original: str = ""
) -> bytes:
    """The last line of a stream that failed after its first reply."""
    if original and original != detail:
        # As for unary answers: a fixed sentence out, the service's words to the log.
        logger.warning(
            "request %s: %s %s -> %s: %s", _id(req), req.method, req.path, code, original
        )
    return error_document(code, detail, reason)


def _watch_disconnect(req: falcon.asgi.Request, stream: ReplyStream) -> asyncio.Task[None] | None:
    receive = getattr(req, "receive", None)
    if receive is None:
        return None  # a plain Falcon request (another app's request_type): no watch

    async def watch() -> None:
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                stream.cancel()
                return

    return asyncio.create_task(watch())


def _id(req: falcon.asgi.Request) -> str:
    return str(getattr(req.context, "request_id", "-"))
