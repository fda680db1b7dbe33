"""Label and field selectors, parsed once per request and matched per object.

Supports what kubectl and client libraries send: equality (``a=b``, ``a==b``,
``a!=b``), set-based (``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``) label
requirements, and the field selectors every resource supports
(``metadata.name``, ``metadata.namespace``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devcluster.statuses import bad_request

Object = dict[str, Any]

_SET_REQUIREMENT = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_FIELDS: dict[str, Callable[[Object], str]] = {
    "metadata.name": lambda o: str(o.get("metadata", {}).get("name", "")),
    "metadata.namespace": lambda o: str(o.get("metadata", {}).get("namespace", "")),
}


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


class FieldSelector:
    def __init__(self, terms: list[tuple[str, bool, str]]) -> None:
        self.terms = terms  # (field, equal?, value)

    @classmethod
    def parse(cls, text: str) -> FieldSelector:
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
            field = field.strip()
            if field not in _FIELDS:
                raise bad_request(f"field label not supported: {field}")
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


class Selection:
    """Label and field selectors of one LIST or WATCH."""

    def __init__(self, labels: str | None, fields: str | None) -> None:
        self.labels = LabelSelector.parse(labels) if labels else None
        self.fields = FieldSelector.parse(fields) if fields else None

    def matches(self, obj: Object) -> bool:
        if self.labels is not None and not self.labels.matches(obj):
            return False
        return self.fields is None or self.fields.matches(obj)
