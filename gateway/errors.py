"""What can go wrong in the gateway, and the HTTP answer for each.

Every error reaches the caller as ``{"Status":"failed","Detail":"<sentence>",
"Code":"<gRPC code name>"}``; ``Code`` always uses the gRPC vocabulary so a
client can switch on one set of names whether the gateway or the service
refused the call. There is one Falcon error handler per family
(``gateway.app``):

    GatewayError
    ├── RequestError            the HTTP request cannot become a gRPC request
    │   ├── BadRequest          400 INVALID_ARGUMENT  malformed JSON, unknown or
    │   │                                             mistyped field, path/body clash
    │   ├── PayloadTooLarge     413 INVALID_ARGUMENT  body above the limit
    │   └── UnsupportedMediaType 415 INVALID_ARGUMENT body not sent as JSON
    └── UpstreamError           the service answered with a non-OK gRPC status;
                                HTTP status from ``HTTP_STATUS_BY_CODE``

    falcon.HTTPError            routing: 404 NOT_FOUND, 405 UNIMPLEMENTED (+ Allow)
    Exception                   anything else: 500 INTERNAL, generic sentence,
                                traceback to the log only

On a streaming route an error after the first reply cannot change the status
(200 is sent); the same document then ends the stream as its last line
(``gateway.streaming``).

Details that may reveal internals are never sent: codes in ``GENERIC_DETAIL``
get a fixed sentence (gRPC itself produces UNAVAILABLE or DEADLINE_EXCEEDED
with addresses in the text when the channel fails), and the original goes to the
log with the request id.
"""

from __future__ import annotations

import grpc

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

# Only these answers carry a Retry-After taken from the service's metadata.
RETRY_AFTER_STATUSES = frozenset({429, 503})


class GatewayError(Exception):
    """Base of the errors the gateway turns into an HTTP answer."""

    http_status: int = 500
    code: str = "INTERNAL"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RequestError(GatewayError):
    """The HTTP request cannot be translated into the gRPC request."""

    http_status = 400
    code = "INVALID_ARGUMENT"


class BadRequest(RequestError):
    """Malformed JSON, an unknown or mistyped field, or a path/body clash."""


class PayloadTooLarge(RequestError):
    """The body is larger than the gateway accepts."""

    http_status = 413


class UnsupportedMediaType(RequestError):
    """The body was sent with a content type other than JSON."""

    http_status = 415


class UpstreamError(GatewayError):
    """The service answered with a non-OK gRPC status.

    ``detail`` is the service's message (a sentence meant for the caller);
    ``retry_after`` and ``www_authenticate`` are the values of the metadata
    of those names, if the service sent them.
    """

    def __init__(
        self,
        status: grpc.StatusCode,
        detail: str,
        *,
        retry_after: str | None = None,
        www_authenticate: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.retry_after = retry_after
        self.www_authenticate = www_authenticate
        self.http_status = HTTP_STATUS_BY_CODE.get(status, 500)
        self.code = status.name

    def public_detail(self) -> str:
        """The sentence the caller may see."""
        generic = GENERIC_DETAIL.get(self.status)
        if generic is not None:
            return generic
        return self.detail or f"The service refused the call with {self.code}."
