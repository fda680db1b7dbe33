"""The ReplicaSet controller: as many Pods as ``spec.replicas`` says, and the counts in status.

Only ReplicaSets a Deployment controls are run (orphans are neither adopted
nor run). Scaling down removes unready Pods first, then the newest. A Pod is
available ``minReadySeconds`` after it became Ready; a timer wakes the
ReplicaSet when its next Pod becomes available.
"""

from __future__ import annotations

import copy
import random
from typing import Any, Final

from devcluster.controllers.objects import (
    SAFE_ALPHABET,
    controller_of,
    int_or,
    owner_reference,
    parse_time,
    pod_ready,
)
from devcluster.controllers.work import Work
from devcluster.store import ObjectExists

Object = dict[str, Any]

_NODE_NAME: Final = "devcluster"


class ReplicaSetController:
    """Creates and deletes the Pods of every queued ReplicaSet and writes its status."""

    def __init__(self, work: Work, names: random.Random) -> None:
        self._work = work
        self._names = names  # Pod name suffixes, seeded for reproducible tests

    def run(self, now: float) -> None:
        work = self._work
        for namespace, name in work.take("replicasets"):
            rs = work.store.get("replicasets", namespace, name)
            if rs is None or controller_of(rs) is None:
                continue  # not created by a Deployment: nobody runs it
            work.visits["replicasets"] += 1
            pods = work.owned(rs, "pods", same_namespace=False)
            wanted = int_or(rs["spec"].get("replicas"), 1)
            if len(pods) < wanted:
                pods = pods + [self._create_pod(rs, now) for _ in range(wanted - len(pods))]
            elif len(pods) > wanted:
                doomed = sorted(
                    pods, key=lambda p: (pod_ready(p), -work.created(p), p["metadata"]["name"])
                )
                for pod in doomed[: len(pods) - wanted]:
                    work.delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
                pods = doomed[len(pods) - wanted :]
            work.update("replicasets", {**rs, "status": _replica_set_status(rs, pods, now)})
            work.due_at.set(("replicasets", namespace, name), _next_available(rs, pods, now))

    def _create_pod(self, rs: Object, now: float) -> Object:
        meta = rs["metadata"]
        template = rs["spec"]["template"]
        template_meta = template.get("metadata") or {}
        pod_meta: Object = {
            "generateName": f"{meta['name']}-",
            "namespace": meta["namespace"],
            "labels": dict(template_meta.get("labels") or {}),
            "ownerReferences": [owner_reference("ReplicaSet", rs)],
        }
        if template_meta.get("annotations"):
            pod_meta["annotations"] = dict(template_meta["annotations"])
        spec = copy.deepcopy(template.get("spec") or {})
        spec["nodeName"] = _NODE_NAME
        while True:
            suffix = "".join(self._names.choice(SAFE_ALPHABET) for _ in range(5))
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {**pod_meta, "name": f"{meta['name']}-{suffix}"},
                "spec": spec,
            }
            try:
                stored = self._work.create("pods", pod)
            except ObjectExists:
                continue
            break
        self._work.pod_created[stored["metadata"]["uid"]] = now
        return stored


def _replica_set_status(rs: Object, pods: list[Object], now: float) -> Object:
    min_ready = int_or(rs["spec"].get("minReadySeconds"), 0)
    template_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
    ready = [pod for pod in pods if pod_ready(pod)]
    available = [pod for pod in ready if _ready_since(pod) + min_ready <= now]
    labelled = [
        pod
        for pod in pods
        if all(
            (pod["metadata"].get("labels") or {}).get(k) == v for k, v in template_labels.items()
        )
    ]
    counts = {
        "fullyLabeledReplicas": len(labelled),
        "readyReplicas": len(ready),
        "availableReplicas": len(available),
        "observedGeneration": rs["metadata"].get("generation", 0),
    }
    return {"replicas": len(pods), **{k: v for k, v in counts.items() if v}}


def _next_available(rs: Object, pods: list[Object], now: float) -> float | None:
    """When the next Ready Pod of ``rs`` becomes available (minReadySeconds after Ready).

    Even without minReadySeconds: a Ready time is stored rounded to the second, so
    it can lie a moment after the instant the Pod became Ready.
    """
    min_ready = int_or(rs["spec"].get("minReadySeconds"), 0)
    times = [_ready_since(pod) + min_ready for pod in pods if pod_ready(pod)]
    return min((t for t in times if t > now), default=None)


def _ready_since(pod: Object) -> float:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return parse_time(c["lastTransitionTime"])
    return 0.0
