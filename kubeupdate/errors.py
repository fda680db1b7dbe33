"""What can go wrong in kubeupdate, as the domain sees it.

The gRPC adapter maps each class to one gRPC status code in a single table
(:mod:`kubeupdate.protocol.grpc.statuses`); the gateway maps that code to HTTP.
Kubernetes errors never cross this boundary raw: :mod:`kubeupdate.kube` has its
own hierarchy, translated at the boundary
(:func:`kubeupdate.kube.translation.translate_error`).

    KubeupdateError
    ├── InvalidArgument      the request itself is wrong        INVALID_ARGUMENT
    ├── NotFound             namespace, Deployment or container  NOT_FOUND
    ├── Aborted              kept conflicting; safe to retry     ABORTED
    ├── Rejected             Kubernetes refused the new object   FAILED_PRECONDITION
    ├── PermissionMissing    our service account lacks an RBAC   PERMISSION_DENIED
    │                        permission (never shown as 404)
    ├── Unavailable          API unreachable, 429 or 5xx         UNAVAILABLE
    │                        (or the OIDC keys cannot be fetched)
    ├── DeadlineExceeded     a timeout or the caller's deadline  DEADLINE_EXCEEDED
    ├── Unauthenticated      no, malformed or wrong credentials  UNAUTHENTICATED
    ├── Denied               the policy refuses this caller this PERMISSION_DENIED
    │                        target or image
    └── RateLimited          the caller's request budget is used RESOURCE_EXHAUSTED

Every message is a sentence a human understands; it goes to the caller as is,
so it must never contain a credential.
"""

from __future__ import annotations


class KubeupdateError(Exception):
    """Base of every error kubeupdate reports to its callers."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(KubeupdateError):
    """The request breaks a rule (a name, an image reference, a field)."""


class NotFound(KubeupdateError):
    """The namespace, the Deployment or the container does not exist."""


class Aborted(KubeupdateError):
    """The object kept changing under us; the change was not applied."""


class Rejected(KubeupdateError):
    """Kubernetes refused the object we would write (validation, admission)."""


class PermissionMissing(KubeupdateError):
    """kubeupdate's own service account lacks a Kubernetes permission."""


class Unavailable(KubeupdateError):
    """Kubernetes cannot be reached or is overloaded; try again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(KubeupdateError):
    """A Kubernetes call or the caller's deadline ran out."""


class Unauthenticated(KubeupdateError):
    """The call carries no credentials, or ones that cannot be verified.

    The message only says that authentication is required or failed: never
    which part was wrong (an unknown token id and a wrong secret read alike).
    """


class Denied(KubeupdateError):
    """The authenticated caller may not do this (target, access or image rule)."""


class RateLimited(KubeupdateError):
    """The caller sent more requests than its budget allows; retry later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
