"""Validation of the fields kubeupdate touches, worded as kube-apiserver words it.

Only what matters to the project is checked (names, containers and their
images, replicas, the Deployment selector); everything else is accepted as
given. Each problem becomes a :class:`~devcluster.statuses.Cause`
of a 422 Invalid.
"""

from __future__ import annotations

import json
import re
from typing import Any

from devcluster.resources import (
    DEPLOYMENTS,
    EVENTS,
    LEASES,
    NAMESPACES,
    PODS,
    REPLICASETS,
    ResourceType,
)
from devcluster.statuses import Cause

Object = dict[str, Any]

_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + ")*"
_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-',"
    " and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc',"
    f" regex used for validation is '{_DNS1123_LABEL}')"
)
_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-'"
    " or '.', and must start and end with an alphanumeric character (e.g. 'example.com',"
    f" regex used for validation is '{_DNS1123_SUBDOMAIN}')"
)


def go_value(value: Any) -> str:
    """A value as Go's ``%#v`` prints it in field errors (close enough for messages)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        inner = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(value.items()))
        return "map[string]string{" + inner + "}"
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"))


def required(field: str, detail: str = "") -> Cause:
    return Cause("FieldValueRequired", field, "Required value" + (f": {detail}" if detail else ""))


def invalid_value(field: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", field, f"Invalid value: {go_value(value)}: {detail}")


def _check_name(field: str, name: Any, label: bool) -> list[Cause]:
    pattern, message, limit = (
        (_DNS1123_LABEL, _LABEL_MESSAGE, 63)
        if label
        else (_DNS1123_SUBDOMAIN, _SUBDOMAIN_MESSAGE, 253)
    )
    if not isinstance(name, str) or not name:
        return [required(field, "name or generateName is required")]
    causes: list[Cause] = []
    if len(name) > limit:
        causes.append(invalid_value(field, name, f"must be no more than {limit} characters"))
    if not re.fullmatch(pattern, name):
        causes.append(invalid_value(field, name, message))
    return causes


def _check_containers(field: str, containers: Any, required_: bool) -> list[Cause]:
    if not containers:
        return [required(field)] if required_ else []
    if not isinstance(containers, list):
        return [invalid_value(field, containers, "must be a list")]
    causes: list[Cause] = []
    seen: set[str] = set()
    for index, container in enumerate(containers):
        path = f"{field}[{index}]"
        if not isinstance(container, dict):
            causes.append(invalid_value(path, container, "must be an object"))
            continue
        name = container.get("name")
        if not name:
            causes.append(required(f"{path}.name"))
        elif not isinstance(name, str) or not re.fullmatch(_DNS1123_LABEL, name):
            causes.append(invalid_value(f"{path}.name", name, _LABEL_MESSAGE))
        elif name in seen:
            causes.append(
                Cause("FieldValueDuplicate", f"{path}.name", f"Duplicate value: {go_value(name)}")
            )
        else:
            seen.add(name)
        image = container.get("image")
        if not isinstance(image, str) or not image.strip():
            causes.append(required(f"{path}.image"))
        elif image != image.strip():
            causes.append(
                invalid_value(
                    f"{path}.image", image, "must not have leading or trailing whitespace"
                )
            )
    return causes


def _check_pod_spec(field: str, spec: Any) -> list[Cause]:
    if not isinstance(spec, dict):
        return [required(f"{field}.containers")]
    return _check_containers(f"{field}.initContainers", spec.get("initContainers"), False) + (
        _check_containers(f"{field}.containers", spec.get("containers"), True)
    )


def _check_workload(obj: Object) -> list[Cause]:
    """Deployments and ReplicaSets: replicas, selector, template."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec.selector"), required("spec.template.spec.containers")]
    causes: list[Cause] = []
    replicas = spec.get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
        causes.append(
            invalid_value("spec.replicas", replicas, "must be greater than or equal to 0")
        )
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        causes.append(required("spec.selector"))
    else:
        match_labels = selector.get("matchLabels") or {}
        expressions = selector.get("matchExpressions") or []
        if not match_labels and not expressions:
            causes.append(
                invalid_value("spec.selector", selector, "empty selector is invalid for deployment")
            )
        elif any(labels.get(k) != v for k, v in match_labels.items()) or not _expressions_match(
            expressions, labels
        ):
            causes.append(
                invalid_value(
                    "spec.template.metadata.labels",
                    labels,
                    "`selector` does not match template `labels`",
                )
            )
    causes.extend(_check_pod_spec("spec.template.spec", template.get("spec")))
    return causes


def _expressions_match(expressions: list[Any], labels: dict[str, str]) -> bool:
    for expression in expressions:
        key = expression.get("key")
        operator = expression.get("operator")
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def validate(resource: ResourceType, obj: Object, old: Object | None = None) -> list[Cause]:
    """Problems with ``obj`` as a new object (``old`` None) or as an update of ``old``."""
    name = (obj.get("metadata") or {}).get("name")
    causes = _check_name("metadata.name", name, label=resource is NAMESPACES) if old is None else []
    if resource in (DEPLOYMENTS, REPLICASETS):
        causes.extend(_check_workload(obj))
        if old is not None and resource is DEPLOYMENTS:
            selector = (obj.get("spec") or {}).get("selector")
            if selector != (old.get("spec") or {}).get("selector"):
                causes.append(invalid_value("spec.selector", selector, "field is immutable"))
    elif resource is PODS:
        causes.extend(_check_pod_spec("spec", obj.get("spec")))
    elif resource is LEASES:
        causes.extend(_check_lease_spec(obj.get("spec") or {}))
    elif resource is EVENTS:
        causes.extend(_check_event(obj))
    if old is not None:
        causes.extend(_check_deletion_unchanged(obj, old))
    return causes


def _check_lease_spec(spec: Object) -> list[Cause]:
    """pkg/apis/coordination/validation: ValidateLeaseSpec (times need no check)."""
    causes: list[Cause] = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        causes.append(
            invalid_value("spec.leaseDurationSeconds", duration, "must be greater than 0")
        )
    transitions = spec.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        causes.append(
            invalid_value(
                "spec.leaseTransitions", transitions, "must be greater than or equal to 0"
            )
        )
    if spec.get("preferredHolder") and not spec.get("strategy"):
        causes.append(
            Cause(
                "FieldValueForbidden",
                "spec.preferredHolder",
                "Forbidden: may only be specified if `strategy` is defined",
            )
        )
    return causes


def _check_event(event: Object) -> list[Cause]:
    """The part of legacyValidateEvent a client can get wrong: the namespaces must agree."""
    namespace = (event.get("metadata") or {}).get("namespace", "")
    involved = (event.get("involvedObject") or {}).get("namespace", "")
    if (involved and involved != namespace) or (not involved and namespace not in ("", "default")):
        return [
            invalid_value("involvedObject.namespace", involved, "does not match event.namespace")
        ]
    return []


def _check_deletion_unchanged(obj: Object, old: Object) -> list[Cause]:
    """ValidateObjectMetaUpdate: no update may set or change a deletionTimestamp."""
    new_value = (obj.get("metadata") or {}).get("deletionTimestamp")
    if new_value != old["metadata"].get("deletionTimestamp"):
        return [invalid_value("metadata.deletionTimestamp", new_value, "field is immutable")]
    return []
