"""Domain errors → gRPC status codes: the one table and the one place it is applied.

:class:`ErrorStatusInterceptor` wraps every unary and server-streaming handler. A
:class:`~kubeupdate.errors.KubeupdateError` becomes its code with its message
as is; anything else becomes INTERNAL with a generic message naming the
request id, and the traceback goes to the log. It also reads the caller's
``x-request-id`` (or makes one up) so that every log line of the request and
the INTERNAL message carry it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import grpc
import grpc.aio

from kubeupdate import errors

if TYPE_CHECKING:
    from kubeupdate.metrics import ServiceMetrics

log = logging.getLogger(__name__)

STATUS_CODES: dict[type[errors.KubeupdateError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.Rejected: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PermissionMissing: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.Denied: grpc.StatusCode.PERMISSION_DENIED,
    errors.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

REQUEST_ID_KEY = "x-request-id"
RETRY_AFTER_KEY = "retry-after"

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

Metadata = tuple[tuple[str, str], ...]
# Generic only in the type stubs, so the alias is a string.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def status_for(exc: BaseException, rid: str) -> tuple[grpc.StatusCode, str, Metadata]:
    """The code, message and trailing metadata reported for ``exc``."""
    if isinstance(exc, errors.KubeupdateError):
        # The nearest mapped class wins, so a subclass added later maps like its parent.
        for cls in type(exc).__mro__:
            if cls in STATUS_CODES:
                trailers: Metadata = ()
                retry_after = (
                    exc.retry_after
                    if isinstance(exc, errors.Unavailable | errors.RateLimited)
                    else None
                )
                if retry_after is not None:
                    # Whole seconds, rounded up, as HTTP's Retry-After.
                    trailers = ((RETRY_AFTER_KEY, str(max(0, math.ceil(retry_after)))),)
                return STATUS_CODES[cls], exc.message, trailers
    return grpc.StatusCode.INTERNAL, f"internal error (request id {rid})", ()


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every log record, for formats that show it.

    ``sources`` are read in order and the first one set wins: by default the
    service's id; ``kubeupdate serve`` adds the gateway's, as both may run in
    one process.
    """

    def __init__(self, *sources: contextvars.ContextVar[str]) -> None:
        super().__init__()
        self._sources = sources or (request_id,)

    def filter(self, record: logging.LogRecord) -> bool:
        rid = "-"
        for source in self._sources:
            rid = source.get()
            if rid != "-":
                break
        record.request_id = rid
        return True


def _failure(exc: Exception, method: str, rid: str) -> tuple[grpc.StatusCode, str, Metadata]:
    """The status for a handler's exception, logged: domain errors briefly, others in full.

    Called from an ``except`` block, so the traceback is at hand for the log.
    """
    if isinstance(exc, errors.KubeupdateError):
        code, message, trailers = status_for(exc, rid)
        log.info("%s [%s] -> %s: %s", method, rid, code.name, message)
        return code, message, trailers
    log.exception("%s [%s] failed unexpectedly", method, rid)
    return status_for(Exception(), rid)


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

        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            rid = _request_id(context.invocation_metadata())
            request_id.set(rid)
            started = time.perf_counter()
            try:
                response = await behavior(request, cast(Any, context))
                log.debug("%s [%s] -> OK", method, rid)
                if timing is not None:
                    timing.done(grpc.StatusCode.OK, time.perf_counter() - started)
                return response
            except grpc.aio.AbortError:
                # An inner layer already chose the status.
                if timing is not None:
                    timing.done(_code(context), time.perf_counter() - started)
                raise
            except asyncio.CancelledError:
                # The client went away (or the server stops): gRPC reports CANCELLED.
                if timing is not None:
                    timing.done(grpc.StatusCode.CANCELLED, time.perf_counter() - started)
                raise
            except Exception as exc:
                code, message, trailers = _failure(exc, method, rid)
            if timing is not None:
                timing.done(code, time.perf_counter() - started)
            # abort() raises; calling it outside the except keeps it from being caught.
            await context.abort(code, message, trailing_metadata=trailers)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _guard_stream(self, handler: Handler, method: str) -> Handler:
        """The same for a server-streaming handler (an async generator)."""
        behavior: Any = handler.unary_stream
        timing = self._metrics.call(method, streaming=True) if self._metrics else None

        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            rid = _request_id(context.invocation_metadata())
            request_id.set(rid)
            started = time.perf_counter()
            try:
                async for response in behavior(request, cast(Any, context)):
                    yield response
                log.debug("%s [%s] -> OK", method, rid)
                if timing is not None:
                    timing.done(grpc.StatusCode.OK, time.perf_counter() - started)
                return
            except grpc.aio.AbortError:
                if timing is not None:
                    timing.done(_code(context), time.perf_counter() - started)
                raise
            except asyncio.CancelledError:
                # The client went away (or the server stops): gRPC reports CANCELLED.
                if timing is not None:
                    timing.done(grpc.StatusCode.CANCELLED, time.perf_counter() - started)
                raise
            except Exception as exc:
                code, message, trailers = _failure(exc, method, rid)
            if timing is not None:
                timing.done(code, time.perf_counter() - started)
            await context.abort(code, message, trailing_metadata=trailers)

        return grpc.unary_stream_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    """The code an inner layer aborted with (UNKNOWN if grpc cannot tell)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    # Some grpc versions give the numeric code.
    return _CODES_BY_VALUE.get(code, grpc.StatusCode.UNKNOWN)


_CODES_BY_VALUE: dict[object, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}


def _request_id(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str):
            # Shown in logs and messages: keep it short and printable.
            cleaned = value[:64]
            if not cleaned.isprintable():
                cleaned = "".join(ch for ch in cleaned if ch.isprintable())
            if cleaned:
                return cleaned
    return uuid.uuid4().hex[:16]
