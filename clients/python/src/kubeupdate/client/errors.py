"""The exceptions of the kubeupdate client, one class per kind of failure.

::

    KubeUpdateError                  base; .code is the gRPC status (None if local)
    ├── InvalidArgument              INVALID_ARGUMENT, OUT_OF_RANGE: a bad name or image
    ├── FailedPrecondition           FAILED_PRECONDITION: Kubernetes refused the change
    ├── NotFound                     NOT_FOUND: namespace, Deployment or container
    ├── Conflict                     ABORTED, ALREADY_EXISTS: kept changing; retry later
    ├── AuthError
    │   ├── Unauthenticated          UNAUTHENTICATED: no token, or a bad one
    │   ├── PermissionDenied         PERMISSION_DENIED (alias Denied): not allowed there
    │   └── CredentialsError         (local) no token could be obtained, e.g. OIDC fetch
    ├── Unavailable                  UNAVAILABLE: server or Kubernetes unreachable
    │   └── ResourceExhausted        RESOURCE_EXHAUSTED: overloaded, retry later
    ├── DeadlineExceeded             DEADLINE_EXCEEDED: the call's deadline passed
    ├── Cancelled                    CANCELLED
    ├── Unimplemented                UNIMPLEMENTED: the server is older than this client
    ├── ServerError                  INTERNAL, UNKNOWN, DATA_LOSS and anything else
    └── RolloutFailed                (local) set(wait=True) did not complete (FAILED...)

:func:`from_rpc_error` applies the one table, ``ERROR_FOR_CODE``, and reads the
status details the server attaches: ``.reason`` is the ``google.rpc.ErrorInfo``
reason (a name of the contract's ``ErrorReason``, e.g. ``CONTAINER_NOT_FOUND``)
and ``.metadata`` its facts. Where no server said why, the client names the
reason itself: ``UNREACHABLE`` (UNAVAILABLE from gRPC: the service was not
reached), ``CALL_DEADLINE_EXCEEDED``, ``CALL_CANCELLED``, and
``OIDC_TOKEN_UNAVAILABLE`` for a :class:`CredentialsError`; otherwise empty. Programs switch
on ``.reason`` and ``.code``, never on ``.message``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import grpc
from google.rpc import error_details_pb2, status_pb2

if TYPE_CHECKING:
    from kubeupdate.client.results import ImageChange


#: The ErrorInfo domain of kubeupdate's reasons.
DOMAIN = "kubeupdate.dev"

# Reasons the client gives itself, when no server said why (the GitHub Action
# uses the same names). A status without ErrorInfo came from gRPC itself.
#: No token could be obtained (a CredentialsError).
OIDC_TOKEN_UNAVAILABLE = "OIDC_TOKEN_UNAVAILABLE"  # noqa: S105 (a reason, not a secret)
#: UNAVAILABLE without a reason: the kubeupdate service was not reached.
UNREACHABLE = "UNREACHABLE"
#: For the gRPC codes gRPC gives on its own, the server's name for the same thing.
LOCAL_REASONS: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAVAILABLE: UNREACHABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: "CALL_DEADLINE_EXCEEDED",
    grpc.StatusCode.CANCELLED: "CALL_CANCELLED",
}
#: The trailer that carries a call's google.rpc.Status.
DETAILS_KEY = "grpc-status-details-bin"


class KubeUpdateError(Exception):
    """Any failure of a kubeupdate call.

    ``code`` is the gRPC status (None for a local failure); ``reason`` the
    server's ErrorInfo reason ("" when there is none) and ``metadata`` its facts.
    ``hint`` says what the caller may change, when the client can tell (for
    example which audience an OIDC token was asked for); it is empty otherwise.
    """

    def __init__(
        self,
        message: str,
        code: grpc.StatusCode | None = None,
        *,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.hint = ""


class InvalidArgument(KubeUpdateError):
    """The server refused the request itself: a malformed name or image reference."""


class FailedPrecondition(KubeUpdateError):
    """Kubernetes refused the new object (an admission rule, a validation)."""


class NotFound(KubeUpdateError):
    """The namespace, the Deployment or the container does not exist."""


class Conflict(KubeUpdateError):
    """The Deployment kept changing under the server; retrying later is safe."""


class AuthError(KubeUpdateError):
    """The caller could not be authenticated or is not allowed."""


class Unauthenticated(AuthError):
    """No credentials were sent, or the server did not accept them."""


class PermissionDenied(AuthError):
    """The caller (or kubeupdate's own service account) may not do this."""


Denied = PermissionDenied


class CredentialsError(AuthError):
    """No token could be obtained locally (e.g. the GitHub OIDC request failed)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason=OIDC_TOKEN_UNAVAILABLE)


class Unavailable(KubeUpdateError):
    """The server, or the Kubernetes API behind it, cannot be reached now."""


class ResourceExhausted(Unavailable):
    """The server or Kubernetes is overloaded; retry later."""


class DeadlineExceeded(KubeUpdateError):
    """The call's deadline passed before the server answered."""


class Cancelled(KubeUpdateError):
    """The call was cancelled."""


class Unimplemented(KubeUpdateError):
    """The server does not offer this call (it is older than this client)."""


class ServerError(KubeUpdateError):
    """The server failed (INTERNAL, UNKNOWN, DATA_LOSS); details are in its log."""


class RolloutFailed(KubeUpdateError):
    """``set(wait=True)`` stored the image but the rollout did not complete.

    ``result`` is the full answer: ``result.rollout.state`` is FAILED,
    TIMED_OUT, ROLLED_BACK or PAUSED and ``result.rollout.message`` says why.
    """

    def __init__(self, result: ImageChange) -> None:
        rollout = result.rollout
        detail = f"{rollout.state.name}: {rollout.message or rollout.reason}" if rollout else ""
        super().__init__(
            f"rollout of {result.image} to {result.namespace}/{result.deployment} "
            f"did not complete ({detail})"
        )
        self.result = result


ERROR_FOR_CODE: dict[grpc.StatusCode, type[KubeUpdateError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.ALREADY_EXISTS: Conflict,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
}


def from_rpc_error(error: grpc.RpcError) -> KubeUpdateError:
    """The client exception for a failed gRPC call (``raise from_rpc_error(e) from e``)."""
    # Every RpcError grpc raises for a call is also a grpc.Call.
    if not isinstance(error, grpc.Call):
        return ServerError("unknown", grpc.StatusCode.UNKNOWN)
    code = error.code()
    message = error.details() or code.name.lower().replace("_", " ")
    reason, metadata = error_info(error.trailing_metadata() or ())
    reason = reason or LOCAL_REASONS.get(code, "")
    return ERROR_FOR_CODE.get(code, ServerError)(message, code, reason=reason, metadata=metadata)


def error_info(trailers: Iterable[Any]) -> tuple[str, dict[str, str]]:
    """The reason and metadata of kubeupdate's ErrorInfo in a call's trailing metadata.

    ``trailers`` are (key, value) pairs, as sync and ``grpc.aio`` calls give them.
    """
    for key, value in trailers:
        if key != DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except Exception:  # a malformed trailer: as if there were none
            return "", {}
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info) and info.domain == DOMAIN:
                return str(info.reason), dict(info.metadata)
    return "", {}
