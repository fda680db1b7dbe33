"""What the controllers and the kubelet read from objects, and the names they write.

Annotation and label names are kube-controller-manager's
(``pkg/controller/deployment/util``); the readers are small and pure.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any, Final

Object = dict[str, Any]

POD_TEMPLATE_HASH_LABEL: Final = "pod-template-hash"
REVISION_ANNOTATION: Final = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION: Final = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION: Final = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION: Final = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE_ANNOTATION: Final = "kubernetes.io/change-cause"

#: rand.SafeEncodeString's alphabet: no vowels, no look-alikes, so names spell no words.
SAFE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
#: The devcluster's one node: where the ReplicaSet controller puts every Pod.
NODE_NAME: Final = "devcluster"


def int_or(value: Any, default: int) -> int:
    """An optional integer field (``replicas`` defaults to 1 when absent)."""
    return default if value is None else int(value)


def status_count(obj: Object, field: str) -> int:
    """A count in ``status``; Go's omitempty leaves zeros out."""
    return int((obj.get("status") or {}).get(field) or 0)


@functools.lru_cache(maxsize=4096)  # the same few timestamps, parsed on every look at a Pod
def parse_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def controller_of(obj: Object) -> Object | None:
    """The owner reference marked ``controller``, if any."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_reference(kind: str, owner: Object) -> Object:
    """The controller reference a ReplicaSet or Pod gets from what created it."""
    meta = owner["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_ready(pod: Object) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def pod_finished(pod: Object) -> bool:
    """Succeeded or Failed: it counts neither as running nor as terminating."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_active(pod: Object) -> bool:
    """controller.IsPodActive: not finished and not being deleted."""
    return not pod_finished(pod) and not pod["metadata"].get("deletionTimestamp")


def pod_terminating(pod: Object) -> bool:
    """Being deleted and not finished yet (``status.terminatingReplicas`` counts these)."""
    return not pod_finished(pod) and bool(pod["metadata"].get("deletionTimestamp"))
