"""The gateway's one dependency: the gRPC service it forwards to.

``Upstream`` is the interface the Falcon app sees. ``GrpcUpstream`` implements
it over one ``grpc.aio`` channel; tests pass a fake. Method handles are made
once per RPC at start (``unary_unary`` and, for server-streaming RPCs,
``unary_stream``), never per request. Every failure of a call is raised as
``gateway.errors.UpstreamError`` so the app never sees a grpc exception type.

A streaming call is a ``ReplyStream``: ``await stream.next()`` gives the next
reply or ``None`` at the end, and ``stream.cancel()`` ends the call at once
from any task (the gateway does so when the HTTP client goes away). After
``cancel()`` a pending or later ``next()`` raises ``UpstreamError`` CANCELLED.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Protocol

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kubeupdate.client.errors import error_info

from gateway.errors import UpstreamError
from gateway.routes import Rpc

Metadata = tuple[tuple[str, str], ...]

# grpc.health.v1 ServingStatus names, as check_health returns them.
SERVING = "SERVING"

# Longest Retry-After value passed through: delta-seconds or an HTTP date.
_RETRY_AFTER_LIMIT = 64
_WWW_AUTHENTICATE_LIMIT = 256


class UnaryCall(Protocol):
    """A prepared unary-unary call: send one request, get one reply."""

    def __call__(
        self, request: Message, *, timeout: float, metadata: Metadata
    ) -> Awaitable[Message]: ...


class ReplyStream(Protocol):
    """The replies of one server-streaming call, in order."""

    async def next(self) -> Message | None:
        """The next reply, or ``None`` once the call ended with OK.

        Raises ``UpstreamError`` when the call ends with another status.
        """
        ...

    def cancel(self) -> None:
        """Ends the call now; harmless once it has ended."""
        ...


class StreamCall(Protocol):
    """A prepared unary-stream call: send one request, read replies as they come."""

    def __call__(self, request: Message, *, timeout: float, metadata: Metadata) -> ReplyStream: ...


class Upstream(Protocol):
    """What the gateway needs from the service."""

    def unary_unary(self, rpc: Rpc) -> UnaryCall:
        """A call handle for one RPC; made once at start."""
        ...

    def unary_stream(self, rpc: Rpc) -> StreamCall:
        """A call handle for one server-streaming RPC; made once at start."""
        ...

    async def check_health(self, *, timeout: float) -> str:  # noqa: ASYNC109 - a gRPC deadline
        """The grpc.health.v1 status name (``"SERVING"``, ``"NOT_SERVING"``, ...).

        Raises ``UpstreamError`` when the service cannot be asked.
        """
        ...


class GrpcUpstream:
    """``Upstream`` over one ``grpc.aio`` channel, which the caller owns."""

    def __init__(
        self, channel: grpc.aio.Channel, *, health_service: str = "", metadata: Metadata = ()
    ) -> None:
        """``metadata`` is added to every call (the gateway's proxy key)."""
        self._channel = channel
        self._health = health_pb2_grpc.HealthStub(channel)
        self._health_request = health_pb2.HealthCheckRequest(service=health_service)
        self._metadata = metadata

    def unary_unary(self, rpc: Rpc) -> UnaryCall:
        handle = self._channel.unary_unary(
            rpc.path,
            request_serializer=rpc.request_type.SerializeToString,
            response_deserializer=rpc.response_type.FromString,
        )

        async def call(
            request: Message,
            *,
            timeout: float,  # noqa: ASYNC109 - passed on as the gRPC deadline
            metadata: Metadata,
        ) -> Message:
            try:
                reply: Message = await handle(
                    request, timeout=timeout, metadata=(*metadata, *self._metadata)
                )
            except grpc.aio.AioRpcError as exc:
                raise upstream_error(exc) from exc
            return reply

        return call

    def unary_stream(self, rpc: Rpc) -> StreamCall:
        handle = self._channel.unary_stream(
            rpc.path,
            request_serializer=rpc.request_type.SerializeToString,
            response_deserializer=rpc.response_type.FromString,
        )

        def call(
            request: Message,
            *,
            timeout: float,
            metadata: Metadata,
        ) -> ReplyStream:
            return _GrpcReplyStream(
                handle(request, timeout=timeout, metadata=(*metadata, *self._metadata))
            )

        return call

    async def check_health(self, *, timeout: float) -> str:  # noqa: ASYNC109 - a gRPC deadline
        try:
            reply = await self._health.Check(self._health_request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise upstream_error(exc) from exc
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


class _GrpcReplyStream:
    """``ReplyStream`` over one ``grpc.aio`` unary-stream call."""

    def __init__(self, call: grpc.aio.UnaryStreamCall[Message, Message]) -> None:
        self._call = call
        self._cancelled = False

    async def next(self) -> Message | None:
        try:
            reply = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            raise upstream_error(exc) from exc
        except asyncio.CancelledError:
            # grpc.aio raises CancelledError in the reader when cancel() ends
            # the call from another task; only a cancelled *task* must see it.
            task = asyncio.current_task()
            if self._cancelled and task is not None and not task.cancelling():
                raise UpstreamError(grpc.StatusCode.CANCELLED, "The call was cancelled.") from None
            raise
        if reply is grpc.aio.EOF:
            return None
        assert isinstance(reply, Message)
        return reply

    def cancel(self) -> None:
        self._cancelled = True
        self._call.cancel()


def upstream_error(exc: grpc.aio.AioRpcError) -> UpstreamError:
    """The gateway's error for a failed call, with the headers the service asked for."""
    metadata = [*(exc.trailing_metadata() or ()), *(exc.initial_metadata() or ())]
    reason, facts = error_info(metadata)
    return UpstreamError(
        exc.code(),
        exc.details() or "",
        reason=reason,
        metadata=facts,
        retry_after=_header_value(metadata, "retry-after", _RETRY_AFTER_LIMIT),
        www_authenticate=_header_value(metadata, "www-authenticate", _WWW_AUTHENTICATE_LIMIT),
    )


def _header_value(metadata: Iterable[tuple[str, str | bytes]], name: str, limit: int) -> str | None:
    for key, value in metadata:
        if key.lower() != name or not isinstance(value, str):
            continue
        value = value.strip()
        # Only a short printable value may become an HTTP header.
        if 0 < len(value) <= limit and value.isprintable() and value.isascii():
            return value
    return None
