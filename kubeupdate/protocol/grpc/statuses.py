"""Domain errors → gRPC statuses: the one table, and the reasons they carry.

:func:`status_for` gives the code, message and trailing metadata for an
exception. A :class:`~kubeupdate.errors.KubeupdateError` becomes its code
(:data:`STATUS_CODES`) with its message as is; anything else becomes INTERNAL
with a generic message naming the request id. Every status carries rich
details (the ``grpc-status-details-bin`` trailer, a serialized
``google.rpc.Status``) holding one ``google.rpc.ErrorInfo``: the error's
reason (``ErrorReason`` in the proto), the domain ``kubeupdate.dev`` and the
error's metadata. :class:`~kubeupdate.protocol.grpc.interceptors.ErrorStatusInterceptor`
applies it to every call; the security interceptor (:mod:`kubeupdate.auth.interceptor`)
to the refusals it answers itself.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from kubeupdate import errors
from kubeupdate.errors import ErrorReason

log = logging.getLogger(__name__)

STATUS_CODES: dict[type[errors.KubeupdateError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.Rejected: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PreconditionFailed: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PermissionMissing: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.Denied: grpc.StatusCode.PERMISSION_DENIED,
    errors.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

RETRY_AFTER_KEY = "retry-after"
#: Where gRPC carries a call's google.rpc.Status (grpcio-status' key).
DETAILS_KEY = "grpc-status-details-bin"

Metadata = tuple[tuple[str, str | bytes], ...]


def status_for(exc: BaseException, rid: str) -> tuple[grpc.StatusCode, str, Metadata]:
    """The code, message and trailing metadata reported for ``exc``."""
    if isinstance(exc, errors.KubeupdateError):
        # The nearest mapped class wins, so a subclass added later maps like its parent.
        for cls in type(exc).__mro__:
            if cls in STATUS_CODES:
                code = STATUS_CODES[cls]
                metadata = dict(exc.metadata)
                trailers: list[tuple[str, str | bytes]] = []
                retry_after = exc.retry_after
                if retry_after is not None:
                    # Whole seconds, rounded up, as HTTP's Retry-After.
                    seconds = str(max(0, math.ceil(retry_after)))
                    trailers.append((RETRY_AFTER_KEY, seconds))
                    metadata.setdefault("retryAfterSeconds", seconds)
                details = rich_status(code, exc.message, exc.reason, metadata)
                return code, exc.message, (*trailers, (DETAILS_KEY, details))
    message = f"internal error (request id {rid})"
    code = grpc.StatusCode.INTERNAL
    return code, message, ((DETAILS_KEY, rich_status(code, message, ErrorReason.INTERNAL)),)


def rich_status(
    code: grpc.StatusCode,
    message: str,
    reason: errors.Reason,
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """A serialized ``google.rpc.Status`` with one ErrorInfo, for :data:`DETAILS_KEY`."""
    info = error_details_pb2.ErrorInfo(
        reason=ErrorReason.Name(reason), domain=errors.DOMAIN, metadata=dict(metadata or {})
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    serialized: bytes = status.SerializeToString()
    return serialized


def logged_status(exc: Exception, method: str, rid: str) -> tuple[grpc.StatusCode, str, Metadata]:
    """The status for a handler's exception, logged: domain errors briefly, others in full.

    Called from an ``except`` block, so the traceback is at hand for the log.
    """
    if isinstance(exc, errors.KubeupdateError):
        code, message, trailers = status_for(exc, rid)
        log.info("%s [%s] -> %s %s: %s", method, rid, code.name, exc.reason_name, message)
        return code, message, trailers
    log.exception("%s [%s] failed unexpectedly", method, rid)
    return status_for(Exception(), rid)
