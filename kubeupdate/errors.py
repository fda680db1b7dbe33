"""What can go wrong in kubeupdate, as the domain sees it, and why, for programs.

The gRPC adapter maps each class to one gRPC status code in a single table
(:mod:`kubeupdate.protocol.grpc.statuses`); the gateway maps that code to HTTP.
Kubernetes errors never cross this boundary raw: :mod:`kubeupdate.kube` has its
own hierarchy, translated at the boundary
(:func:`kubeupdate.kube.translation.translate_error`).

    KubeupdateError                                              default reason
    ├── InvalidArgument      the request itself is wrong           OPTIONS_INVALID
    │                        (INVALID_ARGUMENT)
    ├── NotFound             namespace, Deployment or container    DEPLOYMENT_NOT_FOUND
    │                        (NOT_FOUND), or the image in its registry
    ├── Aborted              kept conflicting; safe to retry       CONFLICT_RETRIES_EXHAUSTED
    │                        (ABORTED)
    ├── Rejected             Kubernetes refused the new object     KUBERNETES_REJECTED
    │                        (FAILED_PRECONDITION); an admission   ADMISSION_WEBHOOK_DENIED
    │                        webhook or policy says which          ADMISSION_POLICY_DENIED
    ├── PreconditionFailed   what was asked cannot be done as      DEPLOYMENT_PAUSED
    │   │                    things stand: a waited change of a
    │   │                    paused workload (FAILED_PRECONDITION)
    │   └── ImageRefused     the registry check refused the image  IMAGE_PLATFORM_MISSING
    │                        (a platform or signature is missing)
    ├── PermissionMissing    our service account lacks an RBAC     KUBERNETES_PERMISSION_MISSING
    │                        permission, never shown as 404 (PERMISSION_DENIED)
    ├── Unavailable          API unreachable, 429 or 5xx, or the   KUBERNETES_UNAVAILABLE
    │                        OIDC keys cannot be fetched (UNAVAILABLE)
    ├── DeadlineExceeded     a timeout or the caller's deadline    CALL_DEADLINE_EXCEEDED
    │                        (DEADLINE_EXCEEDED)
    ├── Unauthenticated      no, malformed or wrong credentials    CREDENTIALS_MISSING
    │                        (UNAUTHENTICATED)
    ├── Denied               the policy refuses this caller this   TARGET_NOT_ALLOWED
    │                        target or image (PERMISSION_DENIED)
    └── RateLimited          the caller's request budget is used   RATE_LIMITED
                             (RESOURCE_EXHAUSTED)

Every message is a sentence a human understands; it goes to the caller as is,
so it must never contain a credential. Every error also carries a ``reason``
for programs: a value of the contract's ``ErrorReason`` enum
(``proto/kubeupdate/v1/error_reason.proto``, the one list, documented there),
sent as ``google.rpc.ErrorInfo.reason``. Each class has a default; a raise
names a more precise one where there is one (``NotFound(...,
reason=ErrorReason.CONTAINER_NOT_FOUND)``). ``metadata`` holds facts for
programs (lowerCamelCase keys, string values), never a credential;
``retry_after`` the seconds after which a retry makes sense, when known
(an UNAVAILABLE or RESOURCE_EXHAUSTED answer carries it as Retry-After).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Final, TypeAlias

from kubeupdate.v1.error_reason_pb2 import ErrorReason

__all__ = [
    "DOMAIN",
    "Aborted",
    "DeadlineExceeded",
    "Denied",
    "ErrorReason",
    "InvalidArgument",
    "KubeupdateError",
    "NotFound",
    "PermissionMissing",
    "PreconditionFailed",
    "RateLimited",
    "Rejected",
    "Unauthenticated",
    "Unavailable",
]

#: ``google.rpc.ErrorInfo.domain`` of every reason kubeupdate gives.
DOMAIN: Final = "kubeupdate.dev"

Reason: TypeAlias = "ErrorReason.ValueType"


class KubeupdateError(Exception):
    """Base of every error kubeupdate reports to its callers."""

    default_reason: ClassVar[Reason] = ErrorReason.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        reason: Reason | None = None,
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason if reason is not None else self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})
        #: Seconds after which retrying makes sense, when known (Retry-After).
        self.retry_after = retry_after

    @property
    def reason_name(self) -> str:
        """The reason as sent: the enum value's name, e.g. ``CONTAINER_NOT_FOUND``."""
        return ErrorReason.Name(self.reason)


class InvalidArgument(KubeupdateError):
    """The request breaks a rule (a name, an image reference, a field)."""

    default_reason = ErrorReason.OPTIONS_INVALID


class NotFound(KubeupdateError):
    """The namespace, the Deployment or the container does not exist (or the image's tag)."""

    default_reason = ErrorReason.DEPLOYMENT_NOT_FOUND


class Aborted(KubeupdateError):
    """The object kept changing under us; the change was not applied."""

    default_reason = ErrorReason.CONFLICT_RETRIES_EXHAUSTED


class Rejected(KubeupdateError):
    """Kubernetes refused the object we would write (validation, admission)."""

    default_reason = ErrorReason.KUBERNETES_REJECTED


class PreconditionFailed(KubeupdateError):
    """What was asked cannot be done as things stand (a paused workload); nothing was done."""

    default_reason = ErrorReason.DEPLOYMENT_PAUSED


class ImageRefused(PreconditionFailed):
    """The registry check refused the image: a required platform or signature is missing.

    Found before any Kubernetes call, so nothing was written. Each raise names
    its reason (IMAGE_PLATFORM_MISSING, IMAGE_SIGNATURE_MISSING or
    IMAGE_SIGNATURE_INVALID: :mod:`kubeupdate.registry.translation`).
    """

    default_reason = ErrorReason.IMAGE_PLATFORM_MISSING


class PermissionMissing(KubeupdateError):
    """kubeupdate's own service account lacks a Kubernetes permission."""

    default_reason = ErrorReason.KUBERNETES_PERMISSION_MISSING


class Unavailable(KubeupdateError):
    """Kubernetes cannot be reached or is overloaded; try again later."""

    default_reason = ErrorReason.KUBERNETES_UNAVAILABLE


class DeadlineExceeded(KubeupdateError):
    """A Kubernetes call or the caller's deadline ran out."""

    default_reason = ErrorReason.CALL_DEADLINE_EXCEEDED


class Unauthenticated(KubeupdateError):
    """The call carries no credentials, or ones that cannot be verified.

    The message only says that authentication is required or failed: never
    which part was wrong (an unknown token id and a wrong secret read alike).
    The reason says as much as is safe: which kind of credential failed.
    """

    default_reason = ErrorReason.CREDENTIALS_MISSING


class Denied(KubeupdateError):
    """The authenticated caller may not do this (target, access or image rule)."""

    default_reason = ErrorReason.TARGET_NOT_ALLOWED


class RateLimited(KubeupdateError):
    """The caller sent more requests than its budget allows; retry later."""

    default_reason = ErrorReason.RATE_LIMITED
