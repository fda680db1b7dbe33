"""The containers of a pod template: which there are, and where each one sits.

Deployments, ReplicaSets, StatefulSets and DaemonSets keep their pod spec at
``spec.template.spec`` (:data:`POD_SPEC`); a kind that keeps it elsewhere
passes its own path. Objects are raw JSON as the API server sends them, so
every step checks its type.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from kubeupdate.kube.api import JsonObject

#: Where a workload with a pod template keeps its pod spec.
POD_SPEC: Final = ("spec", "template", "spec")


@dataclass(frozen=True)
class ContainerImage:
    """One container of a pod template and its image."""

    name: str
    image: str
    init_container: bool


@dataclass(frozen=True)
class ContainerSlot:
    """Where a container sits in a pod template: its JSON pointer, and its image there."""

    index: int
    init_container: bool
    image: str
    pod_spec: tuple[str, ...] = POD_SPEC

    @property
    def path(self) -> str:
        """The container's JSON pointer (RFC 6901) in the object."""
        field = "initContainers" if self.init_container else "containers"
        return "/" + "/".join([*self.pod_spec, field, str(self.index)])


def pod_spec_of(obj: JsonObject, pod_spec: tuple[str, ...] = POD_SPEC) -> dict[str, Any]:
    """The pod spec of ``obj``; empty when any step of the way is missing or not an object."""
    node: Any = obj
    for key in pod_spec:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def container_images(obj: JsonObject, pod_spec: tuple[str, ...] = POD_SPEC) -> list[ContainerImage]:
    """Init containers, then containers, in pod template order."""
    spec = pod_spec_of(obj, pod_spec)
    return [
        ContainerImage(str(c.get("name", "")), str(c.get("image", "")), init)
        for init, field in ((True, "initContainers"), (False, "containers"))
        for c in _entries(spec.get(field))
    ]


def find_container(
    obj: JsonObject, container: str, pod_spec: tuple[str, ...] = POD_SPEC
) -> ContainerSlot | None:
    """The container's slot: containers first, then init containers."""
    spec = pod_spec_of(obj, pod_spec)
    for init, field in ((False, "containers"), (True, "initContainers")):
        for index, entry in enumerate(_entries(spec.get(field))):
            if entry.get("name") == container:
                return ContainerSlot(index, init, str(entry.get("image", "")), pod_spec)
    return None


def container_at(obj: JsonObject, slot: ContainerSlot) -> dict[str, Any] | None:
    """What sits at ``slot`` in ``obj`` now (another container, if things moved), if anything."""
    field = "initContainers" if slot.init_container else "containers"
    entries = _entries(pod_spec_of(obj, slot.pod_spec).get(field))
    return entries[slot.index] if slot.index < len(entries) else None


def template_with_image(obj: JsonObject, slot: ContainerSlot, image: str) -> JsonObject:
    """A copy of ``obj``'s pod template (what holds its pod spec), ``image`` set at ``slot``."""
    node: Any = obj
    for key in slot.pod_spec[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    template: JsonObject = copy.deepcopy(node) if isinstance(node, dict) else {}
    entry = container_at(template, _within_template(slot))
    if entry is not None:
        entry["image"] = image
    return template


def template_digest(template: JsonObject) -> str:
    """A digest of a pod template's content (keys sorted): equal templates, equal digests."""
    text = json.dumps(template, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _within_template(slot: ContainerSlot) -> ContainerSlot:
    """``slot`` as seen from the pod template instead of the workload."""
    return ContainerSlot(slot.index, slot.init_container, slot.image, slot.pod_spec[-1:])


def _entries(value: Any) -> Sequence[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
