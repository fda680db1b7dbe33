"""Label and field selectors, parsed once per request and matched per object.

Supports what kubectl and client libraries send: equality (``a=b``, ``a==b``,
``a!=b``), set-based (``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``) label
requirements, and field selectors on the fields each kind lets kube-apiserver
select by (``metadata.name`` and ``metadata.namespace`` everywhere; Pods add
``spec.nodeName``, ``status.phase`` and more; see
:attr:`~devcluster.resources.ResourceType.field_labels`), refused with
kube-apiserver's words otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devcluster.resources import ResourceType
from devcluster.statuses import bad_request

Object = dict[str, Any]

_SET_REQUIREMENT = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _field(*path: str) -> Callable[[Object], str]:
    """Reads a string field; absent is "", as Go's zero value."""

    def read(obj: Object) -> str:
        value: Any = obj
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return "" if value is None else str(value)

    return read


def _pod_ip(obj: Object) -> str:
    ips = (obj.get("status") or {}).get("podIPs") or []
    return str(ips[0].get("ip", "")) if ips else ""


def _host_network(obj: Object) -> str:
    return "true" if (obj.get("spec") or {}).get("hostNetwork") else "false"


def _event_source(obj: Object) -> str:
    # An events.k8s.io Event has no source; its reportingController stands in.
    return _field("source", "component")(obj) or _field("reportingComponent")(obj)


#: How each selectable field is read (the selectable fields sets of kube-apiserver's strategies).
_FIELDS: dict[str, Callable[[Object], str]] = {
    "metadata.name": _field("metadata", "name"),
    "metadata.namespace": _field("metadata", "namespace"),
    "spec.nodeName": _field("spec", "nodeName"),
    "spec.restartPolicy": _field("spec", "restartPolicy"),
    "spec.schedulerName": _field("spec", "schedulerName"),
    "spec.serviceAccountName": _field("spec", "serviceAccountName"),
    "spec.hostNetwork": _host_network,
    "status.phase": _field("status", "phase"),
    "status.podIP": _pod_ip,
    "status.podIPs": lambda obj: "",  # accepted by the conversion, selects on nothing
    "status.nominatedNodeName": _field("status", "nominatedNodeName"),
    "involvedObject.kind": _field("involvedObject", "kind"),
    "involvedObject.namespace": _field("involvedObject", "namespace"),
    "involvedObject.name": _field("involvedObject", "name"),
    "involvedObject.uid": _field("involvedObject", "uid"),
    "involvedObject.apiVersion": _field("involvedObject", "apiVersion"),
    "involvedObject.resourceVersion": _field("involvedObject", "resourceVersion"),
    "involvedObject.fieldPath": _field("involvedObject", "fieldPath"),
    "reason": _field("reason"),
    "reportingComponent": _field("reportingComponent"),
    "source": _event_source,
    "type": _field("type"),
}
_ALIASES = {"spec.host": "spec.nodeName"}
_DEFAULT_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # =, !=, in, notin, exists, !exists
    values: frozenset[str]

    def matches(self, labels: dict[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!exists":
            return self.key not in labels
        if self.operator in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        # != and notin also match objects without the label, as in Kubernetes.
        return self.key not in labels or labels[self.key] not in self.values


def _split_top_level(text: str) -> list[str]:
    """Splits on commas outside parentheses (``a in (x,y),b`` is two requirements)."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


class LabelSelector:
    def __init__(self, requirements: list[Requirement]) -> None:
        self.requirements = requirements

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        requirements: list[Requirement] = []
        for part in _split_top_level(text):
            set_match = _SET_REQUIREMENT.match(part)
            if set_match:
                key, operator, values = set_match.groups()
                items = frozenset(v.strip() for v in values.split(",") if v.strip())
                requirements.append(Requirement(key, operator, items))
            elif "!=" in part:
                key, value = part.split("!=", 1)
                requirements.append(Requirement(key.strip(), "!=", frozenset({value.strip()})))
            elif "=" in part:
                key, value = part.split("==", 1) if "==" in part else part.split("=", 1)
                requirements.append(Requirement(key.strip(), "=", frozenset({value.strip()})))
            elif part.startswith("!"):
                requirements.append(Requirement(part[1:].strip(), "!exists", frozenset()))
            elif re.fullmatch(r"[A-Za-z0-9./_-]+", part):
                requirements.append(Requirement(part, "exists", frozenset()))
            else:
                raise bad_request(f"unable to parse requirement: invalid label selector: {part!r}")
        return cls(requirements)

    def matches(self, obj: Object) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(r.matches(labels) for r in self.requirements)

    def index_hint(self) -> tuple[str, frozenset[str] | None] | None:
        """A requirement only objects carrying a label can meet: (key, values or None for any).

        ``=`` and ``in`` narrow to values, a bare ``key`` to the key; the others
        (``!=``, ``notin``, ``!key``) also match objects without the label, so they
        cannot use a label index.
        """
        best: tuple[str, frozenset[str] | None] | None = None
        for requirement in self.requirements:
            if requirement.operator in ("=", "in"):
                if best is None or best[1] is None or len(requirement.values) < len(best[1]):
                    best = (requirement.key, requirement.values)
            elif requirement.operator == "exists" and best is None:
                best = (requirement.key, None)
        return best


class FieldSelector:
    def __init__(self, terms: list[tuple[str, bool, str]]) -> None:
        self.terms = terms  # (field, equal?, value)

    @classmethod
    def parse(cls, text: str, resource: ResourceType) -> FieldSelector:
        terms: list[tuple[str, bool, str]] = []
        for part in _split_top_level(text):
            if "!=" in part:
                field, value = part.split("!=", 1)
                equal = False
            elif "=" in part:
                field, value = part.split("==", 1) if "==" in part else part.split("=", 1)
                equal = True
            else:
                raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
            field = _field_label(field.strip(), resource)
            terms.append((field, equal, value.strip()))
        return cls(terms)

    def matches(self, obj: Object) -> bool:
        return all((_FIELDS[f](obj) == v) == equal for f, equal, v in self.terms)

    def name(self) -> str | None:
        """The single name this selector pins, letting a LIST skip the scan."""
        for field, equal, value in self.terms:
            if field == "metadata.name" and equal:
                return value
        return None


def _field_label(field: str, resource: ResourceType) -> str:
    """The field a selector names, as the kind's field label conversion accepts it (or 400)."""
    if resource.field_labels is None:
        if field not in _DEFAULT_FIELDS:
            # runtime.DefaultMetaV1FieldSelectorConversion
            raise bad_request(
                f'"{field}" is not a known field selector: only "metadata.name",'
                ' "metadata.namespace"'
            )
        return field
    if field not in resource.field_labels:
        raise bad_request(f"field label not supported: {field}")
    return _ALIASES.get(field, field)


class Selection:
    """Label and field selectors of one LIST or WATCH of ``resource``."""

    def __init__(self, resource: ResourceType, labels: str | None, fields: str | None) -> None:
        self.labels = LabelSelector.parse(labels) if labels else None
        self.fields = FieldSelector.parse(fields, resource) if fields else None

    def matches(self, obj: Object) -> bool:
        if self.labels is not None and not self.labels.matches(obj):
            return False
        return self.fields is None or self.fields.matches(obj)

    def name(self) -> str | None:
        """The one name the field selector pins, if any."""
        return self.fields.name() if self.fields is not None else None

    def label_hint(self) -> tuple[str, frozenset[str] | None] | None:
        """The label requirement that narrows candidates most, for the store's index."""
        return self.labels.index_hint() if self.labels is not None else None
