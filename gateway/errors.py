"""What can go wrong in the gateway, and the HTTP answer for each.

Every error reaches the caller as ``{"Status":"failed","Detail":"<sentence>",
"Code":"<gRPC code name>","Reason":"<ErrorReason name>"}``
(:func:`gateway.transcoding.error_document`);
``Code`` always uses the gRPC vocabulary and ``Reason`` the contract's
``ErrorReason`` (the service's ``google.rpc.ErrorInfo`` reason, or the
gateway's own), so a client can switch on one set of names whether the
gateway or the service refused the call. There is one Falcon error handler per family
(``gateway.app``):

    GatewayError
    ├── RequestError            the HTTP request cannot become a gRPC request
    │   ├── BadRequest          400 INVALID_ARGUMENT  REQUEST_MALFORMED: malformed
    │   │                                             JSON, unknown or mistyped field,
    │   │                                             path/body clash
    │   ├── PayloadTooLarge     413 INVALID_ARGUMENT  BODY_TOO_LARGE
    │   └── UnsupportedMediaType 415 INVALID_ARGUMENT MEDIA_TYPE_UNSUPPORTED
    └── UpstreamError           the service answered with a non-OK gRPC status;
                                HTTP status from ``HTTP_STATUS_BY_CODE``, reason
                                from its details (``FALLBACK_REASONS`` without)

    falcon.HTTPError            routing: 404 NOT_FOUND ROUTE_NOT_FOUND,
                                405 UNIMPLEMENTED HTTP_METHOD_NOT_ALLOWED (+ Allow)
    Exception                   anything else: 500 INTERNAL INTERNAL, generic
                                sentence, traceback to the log only

On a streaming route an error after the first reply cannot change the status
(200 is sent); the same document then ends the stream as its last line
(``gateway.streaming``).

Details that may reveal internals are never sent: codes in ``GENERIC_DETAIL``
get a fixed sentence (gRPC itself produces UNAVAILABLE or DEADLINE_EXCEEDED
with addresses in the text when the channel fails), and the original goes to the
log with the request id.
"""

from __future__ import annotations

from typing import Final

import grpc
from kubeupdate.v1.error_reason_pb2 import ErrorReason

# grpc-gateway's table (HTTPStatusFromCode in its runtime/errors.go), except
# CANCELLED: 499 "client closed request", the status google/rpc/code.proto gives
# it (grpc-gateway sends 408 Request Timeout; its issue #2707 asks for 499).
HTTP_STATUS_BY_CODE: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

# The sentence sent instead of the upstream's details for these codes.
GENERIC_DETAIL: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.CANCELLED: "The call was cancelled before it completed.",
    grpc.StatusCode.UNKNOWN: "The service failed with an internal error.",
    grpc.StatusCode.DEADLINE_EXCEEDED: "The service did not answer in time.",
    grpc.StatusCode.UNIMPLEMENTED: "The service does not implement this call.",
    grpc.StatusCode.INTERNAL: "The service failed with an internal error.",
    grpc.StatusCode.UNAVAILABLE: "The service is unavailable; retry later.",
    grpc.StatusCode.DATA_LOSS: "The service failed with an internal error.",
}

# Reasons whose sentence and ErrorInfo metadata reach the caller whatever the
# code: the service's own account of what it did (a hand-over says what was
# applied and where to follow it; a generic "retry later" would invite a
# second change). Such an answer carries no Retry-After.
SERVICE_ACCOUNTS: Final = frozenset({ErrorReason.Name(ErrorReason.ROLLOUT_HANDED_OVER)})

# Only these answers carry a Retry-After taken from the service's metadata.
RETRY_AFTER_STATUSES = frozenset({429, 503})

# The reason of a status the service sent without one: made by gRPC itself (the
# channel failed, the deadline passed) or by this gateway.
FALLBACK_REASONS: Final[dict[grpc.StatusCode, str]] = {
    grpc.StatusCode.UNAVAILABLE: ErrorReason.Name(ErrorReason.SERVICE_UNAVAILABLE),
    grpc.StatusCode.DEADLINE_EXCEEDED: ErrorReason.Name(ErrorReason.CALL_DEADLINE_EXCEEDED),
    grpc.StatusCode.CANCELLED: ErrorReason.Name(ErrorReason.CALL_CANCELLED),
    grpc.StatusCode.UNIMPLEMENTED: ErrorReason.Name(ErrorReason.METHOD_NOT_AVAILABLE),
    grpc.StatusCode.INTERNAL: ErrorReason.Name(ErrorReason.INTERNAL),
}
UNKNOWN_REASON: Final = ErrorReason.Name(ErrorReason.REASON_UNKNOWN)


def reason_name(reason: ErrorReason.ValueType) -> str:
    return ErrorReason.Name(reason)


class GatewayError(Exception):
    """Base of the errors the gateway turns into an HTTP answer."""

    http_status: int = 500
    code: str = "INTERNAL"
    reason: str = reason_name(ErrorReason.INTERNAL)

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RequestError(GatewayError):
    """The HTTP request cannot be translated into the gRPC request."""

    http_status = 400
    code = "INVALID_ARGUMENT"
    reason = reason_name(ErrorReason.REQUEST_MALFORMED)


class BadRequest(RequestError):
    """Malformed JSON, an unknown or mistyped field, or a path/body clash."""


class PayloadTooLarge(RequestError):
    """The body is larger than the gateway accepts."""

    http_status = 413
    reason = reason_name(ErrorReason.BODY_TOO_LARGE)


class UnsupportedMediaType(RequestError):
    """The body was sent with a content type other than JSON."""

    http_status = 415
    reason = reason_name(ErrorReason.MEDIA_TYPE_UNSUPPORTED)


class UpstreamError(GatewayError):
    """The service answered with a non-OK gRPC status.

    ``detail`` is the service's message (a sentence meant for the caller);
    ``reason`` the reason of its ErrorInfo (empty: none was sent);
    ``retry_after`` and ``www_authenticate`` are the values of the metadata
    of those names, if the service sent them; ``metadata`` the ErrorInfo's,
    passed on for reasons in ``SERVICE_ACCOUNTS`` only.
    """

    def __init__(
        self,
        status: grpc.StatusCode,
        detail: str,
        *,
        reason: str = "",
        retry_after: str | None = None,
        www_authenticate: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.account = reason in SERVICE_ACCOUNTS
        self.metadata = dict(metadata or {}) if self.account else {}
        self.retry_after = None if self.account else retry_after
        self.www_authenticate = www_authenticate
        self.http_status = HTTP_STATUS_BY_CODE.get(status, 500)
        self.code = status.name
        self.reason = reason or FALLBACK_REASONS.get(status, UNKNOWN_REASON)

    def public_detail(self) -> str:
        """The sentence the caller may see."""
        generic = None if self.account else GENERIC_DETAIL.get(self.status)
        if generic is not None:
            return generic
        return self.detail or f"The service refused the call with {self.code}."
