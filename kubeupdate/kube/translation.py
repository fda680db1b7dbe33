"""Kubernetes errors as kubeupdate reports them: the boundary between the two error trees.

The domain never sees a :mod:`kubeupdate.kube.errors` class: whoever calls
Kubernetes for it translates with :func:`translate_error` (``raise
translate_error(exc, "patch", namespace) from exc``), or, for the answer to a
write, :func:`translate_refusal`. A 404 is not translated here: only the
caller knows what was missing (see
:meth:`kubeupdate.workloads.access.WorkloadAccess.read`).

Not every 403 is RBAC, and not every refusal is a 422. kube-apiserver words
each refusal by who made it, and nothing but its ``Status`` body tells them
apart (the reason and code are the refuser's choice):

- the authorizer (RBAC): ``<resource> "<name>" is forbidden: User "<user>"
  cannot <verb> resource ...``, 403: kubeupdate's own service account lacks a
  permission (:class:`~kubeupdate.errors.PermissionMissing`);
- a validating admission webhook: ``admission webhook "<name>" denied the
  request: <words>``, with the code and reason the webhook chose (403 from
  Gatekeeper, 400 from Kyverno, which sets none): ADMISSION_WEBHOOK_DENIED;
- a ValidatingAdmissionPolicy: ``... is forbidden: ValidatingAdmissionPolicy
  '<name>' with binding '<binding>' denied request: <words>``, 422 by default
  or the validation's reason: ADMISSION_POLICY_DENIED;
- anything else that refuses a write (validation, quota, a namespace being
  deleted): KUBERNETES_REJECTED, with the server's words.

Whether a 422 to a JSON patch means that one of its ``test`` operations failed
(a conflict) cannot be read from the body at all: kube-apiserver answers a
patch that does not apply with a generic "the server rejected our request due
to an error in our request", no causes. Only the caller, by reading the object
again, can tell (:mod:`kubeupdate.containers`).
"""

from __future__ import annotations

import re
from typing import Final

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
        refused = _admission_refusal(exc, "change it")
        if refused is not None:
            return refused
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


def translate_refusal(
    exc: kube_errors.KubeError, doing: str, namespace: str
) -> errors.KubeupdateError:
    """The domain error for what Kubernetes answered to a write that was not applied.

    ``doing`` completes "refused to ...", e.g. ``set the image of container
    "app" in deployment default/web``. An admission refusal is named as such
    whatever its status code; a 403 from the authorizer is a missing
    permission; any other refusal (a 422, a 403 from another admission
    plugin) is KUBERNETES_REJECTED with the server's words.
    """
    if isinstance(exc, kube_errors.ApiError):
        refused = _admission_refusal(exc, doing)
        if refused is not None:
            return refused
        if isinstance(exc, kube_errors.Invalid) or (
            isinstance(exc, kube_errors.Forbidden) and not _AUTHORIZER.search(exc.message)
        ):
            return errors.Rejected(
                f"Kubernetes refused to {doing}: {api_message(exc)}",
                metadata={"namespace": namespace},
            )
    return translate_error(exc, "patch", namespace)


# How kube-apiserver words refusals (staging/src/k8s.io/apiserver: the authorizer's
# forbidden message, webhook errors' ToStatusErr, and the validating policy's denial).
_AUTHORIZER: Final = re.compile(r'User "[^"]*" cannot ')
_WEBHOOK: Final = re.compile(
    r'admission webhook "(?P<name>[^"]*)" denied the request(?:: (?P<words>.*))?', re.DOTALL
)
_POLICY: Final = re.compile(
    r"ValidatingAdmissionPolicy '(?P<name>[^']*)'(?: with binding '(?P<binding>[^']*)')? "
    r"denied request: (?P<words>.*)",
    re.DOTALL,
)


def _admission_refusal(exc: kube_errors.ApiError, doing: str) -> errors.Rejected | None:
    """The refusal of an admission webhook or policy that ``exc``'s Status reports, if any."""
    webhook = _WEBHOOK.search(exc.message)
    if webhook is not None:
        words = webhook.group("words") or "no reason given"
        return errors.Rejected(
            f'the admission webhook "{webhook.group("name")}" refused to {doing}: {words}',
            reason=ErrorReason.ADMISSION_WEBHOOK_DENIED,
            metadata={"webhook": webhook.group("name")},
        )
    policy = _POLICY.search(exc.message)
    if policy is not None:
        name, binding = policy.group("name"), policy.group("binding")
        via = f" (binding '{binding}')" if binding else ""
        metadata = {"policy": name} | ({"binding": binding} if binding else {})
        return errors.Rejected(
            f"the ValidatingAdmissionPolicy '{name}'{via} refused to {doing}: "
            f"{policy.group('words')}",
            reason=ErrorReason.ADMISSION_POLICY_DENIED,
            metadata=metadata,
        )
    return None


def api_message(exc: kube_errors.ApiError) -> str:
    """The API server's message with the causes it gave, once each."""
    causes = [c for c in exc.causes if c and c not in exc.message]
    return "; ".join([exc.message, *causes])
