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

The same patch records what kubeupdate changed, for whom and why, in the
:data:`CHANGE_ANNOTATION` annotation (:class:`RecordedChange`, JSON). The
deployment controller copies a Deployment's annotations to the ReplicaSet of
each new revision, whoever made it: a record left on the Deployment lands on
the next revision too, when someone else changes the template with ``kubectl
set image`` or ``kubectl edit``. So the record names the pod template its
change produced (a digest), and a revision is attributed to kubeupdate only
when its template is that one (:meth:`RecordedChange.made`).

The same copying is why kubeupdate no longer writes ``kubernetes.io/change-cause``
(and why ``kubectl --record`` was deprecated): kubectl cannot check whom a
copied sentence belongs to, and ``kubectl rollout history`` would show
kubeupdate's sentence for a later revision kubeupdate did not make. Instead,
the patch removes a ``kubernetes.io/change-cause`` it finds on the object: it
describes the template being replaced, and would otherwise be copied to
kubeupdate's revision. Earlier revisions keep their own copy.

When the object has no annotations at all, the patch must create the map; it
then also pins ``metadata.resourceVersion``, so that a map someone added
meanwhile is never replaced wholesale.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Final

from kubeupdate.kube.api import JsonObject, JsonPatch
from kubeupdate.workloads.templates import ContainerSlot

#: kubeupdate's record of the change that made a revision (JSON, :class:`RecordedChange`).
CHANGE_ANNOTATION: Final = "kubeupdate.dev/change"
#: kubectl's change-cause: read for history, removed by kubeupdate's changes, never written.
CHANGE_CAUSE_ANNOTATION: Final = "kubernetes.io/change-cause"


@dataclass(frozen=True)
class ChangeRecord:
    """Who asks for a change, why, and in which request: written into the change's record."""

    identity: str
    reason: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class RecordedChange:
    """What kubeupdate changed, as the :data:`CHANGE_ANNOTATION` annotation holds it."""

    container: str
    image: str
    previous_image: str
    identity: str
    reason: str
    request_id: str
    rollback: bool
    #: :func:`~kubeupdate.workloads.templates.template_digest` of the pod template it produced.
    template: str

    @classmethod
    def of(
        cls,
        container: str,
        previous: str,
        image: str,
        record: ChangeRecord,
        *,
        template: str,
        rollback: bool = False,
    ) -> RecordedChange:
        return cls(
            container=container,
            image=image,
            previous_image=previous,
            identity=record.identity,
            reason=record.reason,
            request_id=record.request_id,
            rollback=rollback,
            template=template,
        )

    def annotation(self) -> str:
        """The annotation's value."""
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def parse(cls, value: Any) -> RecordedChange | None:
        """The record in an annotation's value; None when there is none, or it is malformed."""
        try:
            fields = json.loads(value) if isinstance(value, str) else None
        except ValueError:
            return None
        if not isinstance(fields, dict):
            return None
        texts = [f for f in cls.__dataclass_fields__ if f != "rollback"]
        if not all(isinstance(fields.get(f), str) for f in texts) or not isinstance(
            fields.get("rollback"), bool
        ):
            return None  # written by someone else, or by hand
        return cls(rollback=fields["rollback"], **{f: fields[f] for f in texts})

    def made(self, template_digest: str) -> bool:
        """Whether a revision whose pod template has this digest is the one this change made."""
        return bool(self.template) and self.template == template_digest

    def sentence(self) -> str:
        """The change in words, as a change-cause would say it."""
        verb = "rolled back container" if self.rollback else "container"
        sentence = (
            f"kubeupdate: {verb} {self.container} {self.previous_image} → {self.image} "
            f"by {self.identity}"
        )
        return f"{sentence} ({self.reason})" if self.reason else sentence


def image_patch(
    slot: ContainerSlot,
    container: str,
    image: str,
    record: RecordedChange | None = None,
    *,
    target: JsonObject | None = None,
) -> JsonPatch:
    """The JSON patch that sets ``container``'s image if nothing moved or changed.

    With ``record``, it also records the change on ``target`` (the object as
    read, needed to know which annotations it has).
    """
    operations: JsonPatch = [
        {"op": "test", "path": f"{slot.path}/name", "value": container},
        {"op": "test", "path": f"{slot.path}/image", "value": slot.image},
        {"op": "replace", "path": f"{slot.path}/image", "value": image},
    ]
    if record is None:
        return operations
    metadata = (target or {}).get("metadata") or {}
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict):
        # "add" of an existing member replaces it (RFC 6902), so this covers both.
        operations.append(
            {"op": "add", "path": _annotation_path(CHANGE_ANNOTATION), "value": record.annotation()}
        )
        if CHANGE_CAUSE_ANNOTATION in annotations:
            operations.append({"op": "remove", "path": _annotation_path(CHANGE_CAUSE_ANNOTATION)})
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
                "value": {CHANGE_ANNOTATION: record.annotation()},
            }
        )
    return operations


def _annotation_path(key: str) -> str:
    return "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
