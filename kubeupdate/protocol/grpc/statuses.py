"""Domain errors → gRPC status codes: the one table.

:func:`status_for` gives the code, message and trailing metadata for an
exception. A :class:`~kubeupdate.errors.KubeupdateError` becomes its code with
its message as is; anything else becomes INTERNAL with a generic message naming
the request id. :class:`~kubeupdate.protocol.grpc.interceptors.ErrorStatusInterceptor`
applies it to every call; the authentication interceptor
(:mod:`kubeupdate.auth.interceptor`) uses it for the refusals it answers itself.
"""

from __future__ import annotations

import logging
import math

import grpc

from kubeupdate import errors

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

RETRY_AFTER_KEY = "retry-after"

Metadata = tuple[tuple[str, str], ...]


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


def logged_status(exc: Exception, method: str, rid: str) -> tuple[grpc.StatusCode, str, Metadata]:
    """The status for a handler's exception, logged: domain errors briefly, others in full.

    Called from an ``except`` block, so the traceback is at hand for the log.
    """
    if isinstance(exc, errors.KubeupdateError):
        code, message, trailers = status_for(exc, rid)
        log.info("%s [%s] -> %s: %s", method, rid, code.name, message)
        return code, message, trailers
    log.exception("%s [%s] failed unexpectedly", method, rid)
    return status_for(Exception(), rid)
