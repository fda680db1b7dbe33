"""The ReplicaSet controller: as many Pods as ``spec.replicas`` says, and the counts in status.

Only ReplicaSets a Deployment controls are run (orphans are neither adopted
nor run). Pods being deleted (Terminating) no longer count: they are
replaced at once, and ``status.terminatingReplicas`` counts them apart from
``replicas`` (the DeploymentReplicaSetTerminatingReplicas feature, on by
default since Kubernetes 1.35). Scaling down deletes, gracefully, the Pods
kube-controller-manager ranks first: pending before running, unready before
ready, ready for less time, restarted more often, then the newest. A Pod is
available ``minReadySeconds`` after it became Ready; a timer wakes the
ReplicaSet when its next Pod becomes available. Events: SuccessfulCreate,
SuccessfulDelete.
"""

from __future__ import annotations

import copy
import random
from typing import Any, Final

from devcluster.controllers.events import NORMAL, REPLICASET_CONTROLLER
from devcluster.controllers.objects import (
    NODE_NAME,
    SAFE_ALPHABET,
    controller_of,
    int_or,
    owner_reference,
    parse_time,
    pod_active,
    pod_ready,
    pod_terminating,
)
from devcluster.controllers.work import Work
from devcluster.store import ObjectExists

Object = dict[str, Any]

# Scaling down deletes Pods in this order of phase first (controller.ActivePodsWithRanks).
_PHASE_RANK: Final = {"Pending": 0, "Unknown": 1, "Running": 2}


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
            active = [pod for pod in pods if pod_active(pod)]
            terminating = [pod for pod in pods if pod_terminating(pod)]
            wanted = int_or(rs["spec"].get("replicas"), 1)
            if rs["metadata"].get("deletionTimestamp"):
                pass  # being deleted (in foreground): its Pods are the garbage collector's
            elif len(active) < wanted:
                active += [self._create_pod(rs, now) for _ in range(wanted - len(active))]
            elif len(active) > wanted:
                doomed = sorted(active, key=lambda pod: _deletion_rank(work.created(pod), pod))
                for pod in doomed[: len(active) - wanted]:
                    work.delete_gracefully("pods", pod, now)
                    work.events.record(
                        rs,
                        NORMAL,
                        "SuccessfulDelete",
                        f"Deleted pod: {pod['metadata']['name']}",
                        REPLICASET_CONTROLLER,
                        now,
                    )
                    terminating.append(pod)
                active = doomed[len(active) - wanted :]
            status = _replica_set_status(rs, active, len(terminating), now)
            work.update("replicasets", {**rs, "status": status})
            work.due_at.set(("replicasets", namespace, name), _next_available(rs, active, now))

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
        spec["nodeName"] = NODE_NAME
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
        self._work.events.record(
            rs,
            NORMAL,
            "SuccessfulCreate",
            f"Created pod: {stored['metadata']['name']}",
            REPLICASET_CONTROLLER,
            now,
        )
        return stored


def _replica_set_status(rs: Object, active: list[Object], terminating: int, now: float) -> Object:
    """calculateStatus: counts over the active Pods, and the terminating ones apart."""
    min_ready = int_or(rs["spec"].get("minReadySeconds"), 0)
    template_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
    ready = [pod for pod in active if pod_ready(pod)]
    available = [pod for pod in ready if _ready_since(pod) + min_ready <= now]
    labelled = [
        pod
        for pod in active
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
    # Zero counts are omitted (omitempty); terminatingReplicas is a pointer, so 0 is written.
    return {
        "replicas": len(active),
        **{k: v for k, v in counts.items() if v},
        "terminatingReplicas": terminating,
    }


def _deletion_rank(created: float, pod: Object) -> tuple[int, bool, float, int, float, str]:
    """Which Pod to delete first when scaling down: the smallest rank."""
    status = pod.get("status") or {}
    ready = pod_ready(pod)
    restarts = sum(int(c.get("restartCount", 0)) for c in status.get("containerStatuses") or [])
    return (
        _PHASE_RANK.get(status.get("phase", "Pending"), 0),
        ready,
        -_ready_since(pod) if ready else 0.0,
        -restarts,
        -created,
        pod["metadata"]["name"],
    )


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
