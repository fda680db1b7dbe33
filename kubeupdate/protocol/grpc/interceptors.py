"""The interceptor base class, and the interceptor that turns exceptions into statuses.

:class:`ErrorStatusInterceptor` is the outermost layer of every call: it reads
the caller's ``x-request-id`` (or makes one, :mod:`kubeupdate.request_ids`) so
that every log line of the call and an INTERNAL message carry it, turns
whatever a unary or server-streaming handler raises into its status with the
table of :mod:`kubeupdate.protocol.grpc.statuses`, and, with metrics, counts
and times each call by its final code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias, cast

import grpc
import grpc.aio

from kubeupdate import request_ids
from kubeupdate.protocol.grpc.statuses import Metadata, logged_status

if TYPE_CHECKING:
    from kubeupdate.metrics import CallMetrics, ServiceMetrics

log = logging.getLogger(__name__)

# Generic only in the type stubs, so the alias is a string.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class HandlerWrappingInterceptor(grpc.aio.ServerInterceptor):
    """A server interceptor that wraps each method's handler, once per method.

    grpc.aio runs interceptors for every call, but the handler found for a
    method is the same object each time (generic handlers keep them in a
    dict): wrap it once, and again only if it ever changes. Subclasses say how
    in :meth:`wrap`; per-call data (metadata, peer) comes from the context.
    """

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self.wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def wrap(self, handler: Handler, method: str) -> Handler:
        raise NotImplementedError


class ErrorStatusInterceptor(HandlerWrappingInterceptor):
    """Turns exceptions raised by unary and server-streaming handlers into gRPC statuses.

    With ``metrics``, it also counts every call by code and times it: it is the
    outermost layer and the one place that knows the final code.
    """

    def __init__(self, metrics: ServiceMetrics | None = None) -> None:
        super().__init__()
        self._metrics = metrics

    def wrap(self, handler: Handler, method: str) -> Handler:
        if handler.unary_stream is not None:
            return self._guard_stream(handler, method)
        if handler.unary_unary is None:
            return handler
        behavior = handler.unary_unary
        timing = self._metrics.call(method, streaming=False) if self._metrics else None

        async def guarded(request: Any, context: Context) -> Any:
            call = _Call(method, context, timing)
            try:
                response = await behavior(request, cast(Any, context))
            except BaseException as exc:
                status = call.failed(exc)
                if status is None:
                    raise
            else:
                call.succeeded()
                return response
            # abort() raises; calling it outside the except keeps it from being caught.
            await context.abort(status.code, status.message, trailing_metadata=status.trailers)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _guard_stream(self, handler: Handler, method: str) -> Handler:
        """The same for a server-streaming handler (an async generator)."""
        behavior: Any = handler.unary_stream
        timing = self._metrics.call(method, streaming=True) if self._metrics else None

        async def guarded(request: Any, context: Context) -> Any:
            call = _Call(method, context, timing)
            try:
                async for response in behavior(request, cast(Any, context)):
                    yield response
            except BaseException as exc:
                status = call.failed(exc)
                if status is None:
                    raise
            else:
                call.succeeded()
                return
            await context.abort(status.code, status.message, trailing_metadata=status.trailers)

        return grpc.unary_stream_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class _Status(NamedTuple):
    code: grpc.StatusCode
    message: str
    trailers: Metadata


class _Call:
    """One call as the error interceptor sees it: its request id, its clock, its final code."""

    def __init__(self, method: str, context: Context, timing: CallMetrics | None) -> None:
        self._method = method
        self._context = context
        self._timing = timing
        self.rid = request_ids.from_metadata(context.invocation_metadata())
        request_ids.current.set(self.rid)
        self._started = time.perf_counter()

    def succeeded(self) -> None:
        log.debug("%s [%s] -> OK", self._method, self.rid)
        self._done(grpc.StatusCode.OK)

    def failed(self, exc: BaseException) -> _Status | None:
        """The status to abort with, or None when ``exc`` must go on as it is."""
        if isinstance(exc, grpc.aio.AbortError):
            self._done(_code(self._context))  # an inner layer already chose the status
            return None
        if isinstance(exc, asyncio.CancelledError):
            # The client went away (or the server stops): gRPC reports CANCELLED.
            self._done(grpc.StatusCode.CANCELLED)
            return None
        if not isinstance(exc, Exception):
            return None  # GeneratorExit and the like: not a failure of the call
        status = _Status(*logged_status(exc, self._method, self.rid))
        self._done(status.code)
        return status

    def _done(self, code: grpc.StatusCode) -> None:
        if self._timing is not None:
            self._timing.done(code, time.perf_counter() - self._started)


def _code(context: Context) -> grpc.StatusCode:
    """The code an inner layer aborted with (UNKNOWN if grpc cannot tell)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    # Some grpc versions give the numeric code.
    return _CODES_BY_VALUE.get(code, grpc.StatusCode.UNKNOWN)


_CODES_BY_VALUE: dict[object, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}
