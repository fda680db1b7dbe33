"""Status bodies as kube-apiserver writes them, and the error that carries one.

Every failure the server answers is an :class:`ApiError` holding the exact
``Status`` object (kind, apiVersion v1, empty metadata, status Failure,
message, reason, details, code). The constructors mirror apimachinery's
``k8s.io/apimachinery/pkg/api/errors`` so message wording matches what
clients parse and show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from devcluster.resources import NAMESPACES, ResourceType

Status = dict[str, Any]

APPLY_PATCH = "application/apply-patch+yaml"
#: Patch types a built-in resource accepts, in kube-apiserver's order.
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
    "application/strategic-merge-patch+json",
)


@dataclass(frozen=True)
class Cause:
    """One field error inside a 422 Invalid: reason FieldValueRequired, FieldValueInvalid, ..."""

    reason: str
    field: str
    message: str  # e.g. 'Required value' or 'Invalid value: "x": must be ...'

    def render(self) -> str:
        return f"{self.field}: {self.message}"


class ApiError(Exception):
    """A failure answered with a Status body; ``headers`` adds e.g. Retry-After."""

    def __init__(self, status: Status, headers: dict[str, str] | None = None) -> None:
        super().__init__(status["message"])
        self.status = status
        self.headers = headers or {}

    @property
    def code(self) -> int:
        return int(self.status["code"])


def failure(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> Status:
    """A Failure Status; like Go's omitempty, an empty reason and None details are left out.

    ``details={}`` is written as ``"details":{}``: apimachinery's generic answers carry a
    non-nil details pointer with nothing in it.
    """
    status: Status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
    }
    if reason:
        status["reason"] = reason
    if details is not None:
        status["details"] = details
    status["code"] = code
    return status


def success(resource: ResourceType, name: str, uid: str) -> Status:
    """What DELETE answers for resources that do not return the deleted object."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": _details(resource, name) | {"uid": uid},
    }


def _details(resource: ResourceType, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if resource.group:
        details["group"] = resource.group
    details["kind"] = resource.name
    return details


def not_found(resource: ResourceType, name: str) -> ApiError:
    return ApiError(
        failure(
            404, "NotFound", f'{resource.qualified} "{name}" not found', _details(resource, name)
        )
    )


def namespace_not_found(namespace: str) -> ApiError:
    return not_found(NAMESPACES, namespace)


def already_exists(resource: ResourceType, name: str) -> ApiError:
    return ApiError(
        failure(
            409,
            "AlreadyExists",
            f'{resource.qualified} "{name}" already exists',
            _details(resource, name),
        )
    )


def conflict(resource: ResourceType, name: str) -> ApiError:
    return ApiError(
        failure(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {resource.qualified} "{name}": the object has'
            " been modified; please apply your changes to the latest version and try again",
            _details(resource, name),
        )
    )


def uid_conflict(resource: ResourceType, name: str, wanted: str, stored: str) -> ApiError:
    """The storage's 409 for a write whose ``metadata.uid`` names another object."""
    return ApiError(
        failure(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {resource.qualified} "{name}": Precondition'
            f" failed: UID in precondition: {wanted}, UID in object meta: {stored}",
            _details(resource, name),
        )
    )


def delete_precondition_failed(
    resource: ResourceType, name: str, field: str, wanted: str, stored: str
) -> ApiError:
    """rest.BeforeDelete's 409 when a DELETE's precondition (UID or ResourceVersion) fails.

    It names the resource by its kind ("Deployment.apps"), unlike the storage's conflicts.
    """
    group_kind = f"{resource.kind}.{resource.group}" if resource.group else resource.kind
    why = (
        "The object might have been deleted and then recreated"
        if field == "UID"
        else "The object might have been modified"
    )
    details: dict[str, Any] = {"name": name}
    if resource.group:
        details["group"] = resource.group
    details["kind"] = resource.kind
    return ApiError(
        failure(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {group_kind} "{name}": the {field} in the'
            f" precondition ({wanted}) does not match the {field} in record ({stored}). {why}",
            details,
        )
    )


def invalid_options(kind: str, causes: list[Cause]) -> ApiError:
    """A 422 for request options (``DeleteOptions``, ``ListOptions``) of group meta.k8s.io."""
    rendered = [cause.render() for cause in causes]
    joined = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    details = {
        "group": "meta.k8s.io",
        "kind": kind,
        "causes": [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes],
    }
    return ApiError(failure(422, "Invalid", f'{kind}.meta.k8s.io "" is invalid: {joined}', details))


def resource_version_required(resource: ResourceType, name: str) -> ApiError:
    """The 422 for a PUT without resourceVersion where the kind refuses unconditional updates.

    The generic registry names the kind by its resource here ("leases.coordination.k8s.io",
    details kind "leases"), unlike validation errors.
    """
    cause = Cause(
        "FieldValueInvalid",
        "metadata.resourceVersion",
        "Invalid value: 0: must be specified for an update",
    )
    details = _details(resource, name) | {
        "causes": [{"reason": cause.reason, "message": cause.message, "field": cause.field}]
    }
    return ApiError(
        failure(
            422, "Invalid", f'{resource.qualified} "{name}" is invalid: {cause.render()}', details
        )
    )


def invalid(resource: ResourceType, name: str, causes: list[Cause]) -> ApiError:
    rendered = [cause.render() for cause in causes]
    joined = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    details: dict[str, Any] = {"name": name}
    if resource.group:
        details["group"] = resource.group
    details["kind"] = resource.kind
    details["causes"] = [
        {"reason": c.reason, "message": c.message, "field": c.field} for c in causes
    ]
    return ApiError(
        failure(422, "Invalid", f'{resource.qualified_kind} "{name}" is invalid: {joined}', details)
    )


def rejected_request() -> ApiError:
    """apimachinery's ``NewGenericServerResponse(422, ...)`` without causes.

    What the patch handler answers when a patch does not apply (a failed JSON-patch
    ``test``, a path that does not exist): the library's own words are dropped, and
    ``details`` is present but empty.
    """
    message = "the server rejected our request due to an error in our request"
    return ApiError(failure(422, "Invalid", message, {}))


def webhook_denied(webhook: str, message: str, code: int, reason: str) -> ApiError:
    """A validating admission webhook's refusal, as the webhook's ``ToStatusErr`` builds it.

    The webhook chooses code and reason (controller-runtime's ``Denied``, so Gatekeeper:
    403 Forbidden; Kyverno sets neither); the apiserver raises a code below 400 to 400
    and prefixes the message. No details: nothing names the object or an RBAC rule.
    """
    denied_by = f"admission webhook {json.dumps(webhook)} denied the request"
    if message:
        text = f"{denied_by}: {message}"
    elif reason:
        text = f"{denied_by}: {reason}"
    else:
        text = f"{denied_by} without explanation"
    return ApiError(failure(max(code, 400), reason, text))


#: The reasons a ValidatingAdmissionPolicy validation may give, and the code each answers.
POLICY_REASON_CODES = {
    "Invalid": 422,
    "Forbidden": 403,
    "Unauthorized": 401,
    "RequestEntityTooLarge": 413,
}


def policy_denied(
    resource: ResourceType, name: str, policy: str, binding: str | None, message: str, reason: str
) -> ApiError:
    """A ValidatingAdmissionPolicy's refusal: ``admission.NewForbidden`` with the policy's reason.

    The message always says "is forbidden", but the code follows the validation's
    ``reason`` (Invalid, the default, is 422); the denial is repeated as the one cause.
    """
    via = f" with binding '{binding}'" if binding else ""
    denial = f"ValidatingAdmissionPolicy '{policy}'{via} denied request: {message}"
    subject = f"{resource.qualified} {json.dumps(name)}" if name else resource.qualified
    details = _details(resource, name) | {"causes": [{"message": denial}]}
    if not name:
        del details["name"]
    return ApiError(
        failure(POLICY_REASON_CODES[reason], reason, f"{subject} is forbidden: {denial}", details)
    )


def forbidden(
    resource: ResourceType, name: str, verb: str, namespace: str | None, user: str
) -> ApiError:
    """The RBAC authorizer's denial, worded as kube-apiserver words it."""
    subject = f'{resource.qualified} "{name}"' if name else resource.qualified
    scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    message = (
        f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource.name}"'
        f' in API group "{resource.group}"{scope}'
    )
    return ApiError(failure(403, "Forbidden", message, _details(resource, name)))


def unauthorized() -> ApiError:
    return ApiError(failure(401, "Unauthorized", "Unauthorized"))


def unsupported_media_type(accepted: tuple[str, ...] = PATCH_TYPES) -> ApiError:
    return ApiError(
        failure(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(accepted),
        )
    )


def apply_not_served() -> ApiError:
    """A 415 saying plainly that server-side apply is one thing the devcluster does not do."""
    served = ", ".join(t for t in PATCH_TYPES if t != APPLY_PATCH)
    return ApiError(
        failure(
            415,
            "UnsupportedMediaType",
            f"server-side apply ({APPLY_PATCH}) is not served by the devcluster - accepted"
            f" media types include: {served}",
        )
    )


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        failure(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
            {"retryAfterSeconds": retry_after},
        ),
        {"Retry-After": str(retry_after)},
    )


def internal_error(message: str) -> ApiError:
    return ApiError(
        failure(
            500,
            "InternalError",
            f"Internal error occurred: {message}",
            {"causes": [{"message": message}]},
        )
    )


def service_unavailable(
    message: str = "the server is currently unable to handle the request",
) -> ApiError:
    return ApiError(failure(503, "ServiceUnavailable", message))


def bad_request(message: str) -> ApiError:
    return ApiError(failure(400, "BadRequest", message))


def expired(requested: int, oldest: int) -> Status:
    """The 410 a watch sends as an ERROR event when its resourceVersion was compacted."""
    return failure(410, "Expired", f"too old resource version: {requested} ({oldest})")


def page_not_found() -> ApiError:
    return ApiError(failure(404, "NotFound", "the server could not find the requested resource"))


def method_not_allowed(resource: ResourceType, verb: str) -> ApiError:
    return ApiError(
        failure(
            405,
            "MethodNotAllowed",
            f"{verb} is not supported on resources of kind {resource.qualified!r}",
            {"group": resource.group, "kind": resource.name}
            if resource.group
            else {"kind": resource.name},
        )
    )
