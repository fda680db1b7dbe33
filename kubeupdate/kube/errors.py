"""What can go wrong when kubeupdate talks to the Kubernetes API.

These errors never leave the Kubernetes boundary raw: each one is translated
into a :mod:`kubeupdate.errors` class (:mod:`kubeupdate.kube.translation`;
a 404 by :class:`kubeupdate.workloads.access.WorkloadAccess`, which knows what
was missing).

    KubeError
    ├── ApiError                 the API server answered with an error Status
    │   ├── Unauthorized         401: our credentials were refused (after one reload)
    │   ├── Forbidden            403: RBAC refused our identity, or an admission
    │   │                        webhook or policy refused the object
    │   ├── NotFound             404: details.kind says what is missing
    │   ├── Conflict             409
    │   ├── Expired              410: a watch's resourceVersion is too old; list again
    │   ├── Invalid              422: validation or a policy refused the object, or
    │   │                        a JSON patch did not apply (a failed `test`)
    │   ├── TooManyRequests      429: overloaded; retry_after in seconds, if given
    │   ├── ServerError          5xx
    │   └── UnexpectedStatus     any other non-2xx answer
    ├── ConnectionFailed         no answer: refused, reset, TLS or DNS failure
    │                            (outcome_unknown when a write may have landed)
    ├── Timeout                  no answer in time (outcome_unknown likewise)
    └── CredentialsError         the kubeconfig or service account files are unusable
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class KubeError(Exception):
    """Base of every error of the Kubernetes access layer."""


class ApiError(KubeError):
    """The API server answered with a non-2xx status.

    The fields come from the ``Status`` body when the server sent one (it does
    for every error it produces itself); otherwise from the HTTP status line.
    """

    def __init__(
        self,
        code: int,
        *,
        method: str,
        path: str,
        reason: str = "",
        message: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.method = method
        self.path = path
        self.reason = reason
        self.message = message or f"the Kubernetes API answered HTTP {code}"
        self.details: Mapping[str, Any] = details or {}
        super().__init__(f"{method} {path}: {code} {reason}: {self.message}")

    @property
    def kind(self) -> str:
        """The resource the error is about, as ``details.kind`` (e.g. ``deployments``)."""
        kind = self.details.get("kind", "")
        return kind if isinstance(kind, str) else ""

    @property
    def group(self) -> str:
        group = self.details.get("group", "")
        return group if isinstance(group, str) else ""

    @property
    def causes(self) -> list[str]:
        """The messages of ``details.causes``, which hold the detail of a 422."""
        causes = self.details.get("causes", [])
        if not isinstance(causes, list):
            return []
        return [str(cause.get("message", "")) for cause in causes if isinstance(cause, Mapping)]


class Unauthorized(ApiError):
    """401: the API server did not accept our credentials, even after a reload."""


class Forbidden(ApiError):
    """403: our identity may not do this (RBAC), or admission refused the object.

    Only the ``Status`` body's words tell which
    (:mod:`kubeupdate.kube.translation`).
    """


class NotFound(ApiError):
    """404: the object (or its namespace) does not exist."""


class Conflict(ApiError):
    """409: a precondition (resourceVersion) or an existing name conflicts."""


class Expired(ApiError):
    """410 Gone: the resourceVersion a watch asked for was compacted away."""


class Invalid(ApiError):
    """422: the object we would write was refused, or a JSON patch did not apply.

    kube-apiserver answers a patch that does not apply (a failed ``test``)
    with a generic message and no causes: only reading the object again tells.
    """


class TooManyRequests(ApiError):
    """429: the API server sheds load; ``retry_after`` is its hint in seconds."""

    def __init__(self, code: int, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(code, **kwargs)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the API server (or something in front of it) failed."""


class UnexpectedStatus(ApiError):
    """Any other non-2xx answer."""


class ConnectionFailed(KubeError):
    """No HTTP answer: connection refused or dropped, TLS or name resolution failed.

    ``outcome_unknown`` is true when the request may have reached the server
    before the connection broke, so a write may or may not have been applied.
    """

    def __init__(self, message: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


class Timeout(KubeError):
    """No answer before the per-call timeout or the caller's deadline.

    ``outcome_unknown`` as for :class:`ConnectionFailed`.
    """

    def __init__(self, message: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


class CredentialsError(KubeError):
    """The kubeconfig or the service account files cannot be loaded."""


_BY_CODE: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Expired,
    422: Invalid,
    429: TooManyRequests,
}


def error_class(code: int) -> type[ApiError]:
    """The class for an HTTP error status."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if 500 <= code < 600:
        return ServerError
    return UnexpectedStatus
