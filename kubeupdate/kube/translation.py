"""Kubernetes errors as kubeupdate reports them: the boundary between the two error trees.

The domain never sees a :mod:`kubeupdate.kube.errors` class: whoever calls
Kubernetes for it translates with :func:`translate_error` (``raise
translate_error(exc, "patch", namespace) from exc``). A 404 is not translated
here: only the caller knows what was missing (see
:meth:`kubeupdate.workloads.access.WorkloadAccess.read`).
"""

from __future__ import annotations

from kubeupdate import errors
from kubeupdate.errors import ErrorReason
from kubeupdate.kube import errors as kube_errors


def translate_error(
    exc: kube_errors.KubeError, verb: str, namespace: str
) -> errors.KubeupdateError:
    """The domain error for a Kubernetes error other than 404 (``verb`` for a 403).

    A 400, 415 or the like means kubeupdate sent something wrong: a bug, not
    the caller's problem, so it is raised again as is and surfaces as INTERNAL
    with the details in the log.
    """
    if isinstance(exc, kube_errors.Forbidden):
        resource = exc.kind or "deployments"
        group = exc.group if exc.kind else "apps"
        if group:
            resource = f"{resource}.{group}"
        return errors.PermissionMissing(
            f"kubeupdate's service account may not {verb} {resource} in namespace "
            f'"{namespace}" (Kubernetes said: {exc.message})',
            metadata={"verb": verb, "resource": resource, "namespace": namespace},
        )
    if isinstance(exc, kube_errors.TooManyRequests):
        hint = f"; retry after {exc.retry_after:g}s" if exc.retry_after is not None else ""
        return errors.Unavailable(
            f"the Kubernetes API is overloaded (429){hint}",
            retry_after=exc.retry_after,
            reason=ErrorReason.KUBERNETES_OVERLOADED,
        )
    if isinstance(exc, kube_errors.ServerError):
        return errors.Unavailable(f"the Kubernetes API failed (HTTP {exc.code}: {exc.message})")
    if isinstance(exc, kube_errors.Unauthorized):
        return errors.Unavailable(
            "the Kubernetes API refused kubeupdate's credentials (401), even after reloading them",
            reason=ErrorReason.KUBERNETES_CREDENTIALS_INVALID,
        )
    if isinstance(exc, kube_errors.CredentialsError):
        return errors.Unavailable(str(exc), reason=ErrorReason.KUBERNETES_CREDENTIALS_INVALID)
    if isinstance(exc, kube_errors.ConnectionFailed):
        return errors.Unavailable(str(exc))
    if isinstance(exc, kube_errors.Timeout):
        return errors.DeadlineExceeded(str(exc), reason=ErrorReason.KUBERNETES_TIMEOUT)
    if isinstance(exc, kube_errors.Invalid):
        return errors.Rejected(f"Kubernetes refused the change: {api_message(exc)}")
    raise exc


def api_message(exc: kube_errors.ApiError) -> str:
    """The API server's message with the causes it gave, once each."""
    causes = [c for c in exc.causes if c and c not in exc.message]
    return "; ".join([exc.message, *causes])
