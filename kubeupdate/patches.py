"""The patch that changes one container's image: a compare-and-swap in RFC 6902 JSON patch.

:func:`image_patch` builds::

    test    .../containers/<i>/name   == <container>      the container has not moved
    test    .../containers/<i>/image  == <previous image>  nobody changed it meanwhile
    replace .../containers/<i>/image  := <new image>

Pinning the position and name keeps concurrent updates of *other* containers
from conflicting or getting lost (kube-apiserver applies a patch without a
resourceVersion to the latest object), and turns a moved or removed container
into a 422 instead of a silently re-added one (a strategic merge patch would
append it). Pinning the previous image as well makes the patch a
compare-and-swap: two concurrent updates of the *same* container cannot both
report the same previous image, and resending a patch whose answer was lost
cannot undo a later change.

The same patch records who changed what in the ``kubernetes.io/change-cause``
annotation (:func:`change_cause`), which the controller copies to the new
revision and ``kubectl rollout history`` shows. When the object has no
annotations at all, the patch must create the map; it then also pins
``metadata.resourceVersion``, so that a map someone added meanwhile is never
replaced wholesale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from kubeupdate.kube.api import JsonObject, JsonPatch
from kubeupdate.workloads.templates import ContainerSlot

CHANGE_CAUSE_ANNOTATION: Final = "kubernetes.io/change-cause"


@dataclass(frozen=True)
class ChangeRecord:
    """Who asks for a change, and why: written into the change-cause."""

    identity: str
    reason: str = ""


def change_cause(
    container: str, previous: str, image: str, record: ChangeRecord, *, rollback: bool = False
) -> str:
    """The sentence ``kubectl rollout history`` shows for this change."""
    verb = "rolled back container" if rollback else "container"
    sentence = f"kubeupdate: {verb} {container} {previous} → {image} by {record.identity}"
    return f"{sentence} ({record.reason})" if record.reason else sentence


def image_patch(
    slot: ContainerSlot,
    container: str,
    image: str,
    cause: str | None = None,
    *,
    target: JsonObject | None = None,
) -> JsonPatch:
    """The JSON patch that sets ``container``'s image if nothing moved or changed.

    With ``cause``, it also sets the change-cause annotation of ``target`` (the
    object as read, needed to know whether it has annotations).
    """
    operations: JsonPatch = [
        {"op": "test", "path": f"{slot.path}/name", "value": container},
        {"op": "test", "path": f"{slot.path}/image", "value": slot.image},
        {"op": "replace", "path": f"{slot.path}/image", "value": image},
    ]
    if cause is None:
        return operations
    metadata = (target or {}).get("metadata") or {}
    if isinstance(metadata.get("annotations"), dict):
        # "add" of an existing member replaces it (RFC 6902), so this covers both.
        key = CHANGE_CAUSE_ANNOTATION.replace("~", "~0").replace("/", "~1")
        operations.append({"op": "add", "path": f"/metadata/annotations/{key}", "value": cause})
    else:
        operations.append(
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": str(metadata.get("resourceVersion", "")),
            }
        )
        operations.append(
            {
                "op": "add",
                "path": "/metadata/annotations",
                "value": {CHANGE_CAUSE_ANNOTATION: cause},
            }
        )
    return operations
