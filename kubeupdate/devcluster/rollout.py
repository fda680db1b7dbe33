"""The devcluster's rollout machinery: the deployment and ReplicaSet controllers and the kubelet.

Everything runs in simulated time (:class:`~kubeupdate.devcluster.clock.SimulatedClock`)
and writes only through the :class:`~kubeupdate.devcluster.store.Store`, so a
watch sees the same sequence of objects it would see in a cluster:

- a template change creates a ReplicaSet ``<deployment>-<pod-template-hash>``
  (or re-activates the old one with the same template, as after ``kubectl
  rollout undo``) with revision = highest old revision + 1;
- Pods appear for each ReplicaSet and become Ready ``ready_after`` simulated
  seconds after they were created, unless :class:`FailureRules` say their image
  fails (``ImagePullBackOff`` or ``CrashLoopBackOff``: never Ready);
- RollingUpdate moves ``maxSurge``/``maxUnavailable`` Pods at a time as new Pods
  become available; Recreate scales the old ReplicaSets to zero first;
- Deployment status and conditions follow kube-controller-manager
  (``pkg/controller/deployment``): Progressing ``NewReplicaSetCreated`` →
  ``ReplicaSetUpdated`` → ``NewReplicaSetAvailable``, or ``ProgressDeadlineExceeded``
  after ``progressDeadlineSeconds`` without progress;
- a change of replicas while several ReplicaSets are active (mid-rollout, or
  paused) is spread over them in proportion, as the controller's ``scale`` does;
- the controller notices a new generation only ``observe_delay`` simulated
  seconds after it first saw it, so ``observedGeneration`` visibly lags a write,
  as it does in a cluster where the controller runs in another process.

Simplifications: Pods are deleted at once (no Terminating phase, no grace
period); a failing pull shows ``ErrImagePull`` once, then ``ImagePullBackOff``
for good (the kubelet alternates them); failure rules apply to running Pods at
once; orphaned ReplicaSets and Pods are neither adopted nor run; no events.

:func:`rollout_status` (from :mod:`kubeupdate.rollout_status`, which the service
uses too) is kubectl's ``DeploymentStatusViewer.Status``, the rule ``kubectl
rollout status`` applies to the objects this module writes.
"""

from __future__ import annotations

import collections
import copy
import fnmatch
import functools
import hashlib
import json
import logging
import math
import random
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from kubeupdate.devcluster.clock import SimulatedClock
from kubeupdate.devcluster.indexes import Ownership, Timers
from kubeupdate.devcluster.store import Event, ObjectExists, ObjectNotFound, Store, timestamp
from kubeupdate.rollout_status import RolloutFailed, rollout_status

__all__ = [
    "CHANGE_CAUSE_ANNOTATION",
    "CRASH_LOOP_BACK_OFF",
    "DEFAULT_FAILURE_RULES",
    "DESIRED_REPLICAS_ANNOTATION",
    "IMAGE_PULL_BACK_OFF",
    "MAX_REPLICAS_ANNOTATION",
    "POD_TEMPLATE_HASH_LABEL",
    "REVISION_ANNOTATION",
    "REVISION_HISTORY_ANNOTATION",
    "FailureRules",
    "RolloutController",
    "RolloutFailed",
    "rollout_status",
    "template_hash",
]

Object = dict[str, Any]

log = logging.getLogger(__name__)

POD_TEMPLATE_HASH_LABEL: Final = "pod-template-hash"
REVISION_ANNOTATION: Final = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION: Final = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION: Final = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION: Final = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE_ANNOTATION: Final = "kubernetes.io/change-cause"

IMAGE_PULL_BACK_OFF: Final = "ImagePullBackOff"
CRASH_LOOP_BACK_OFF: Final = "CrashLoopBackOff"

#: Images that fail unless told otherwise: a tag ending in ``-bad`` cannot be
#: pulled; a tag containing ``crash`` starts and crashes. Globs over the whole
#: image reference (so ``reg:5000/crashy/app:1`` matches the second one too).
DEFAULT_FAILURE_RULES: Final = (
    ("*:*-bad", IMAGE_PULL_BACK_OFF),
    ("*:*crash*", CRASH_LOOP_BACK_OFF),
)

# The controller copies every Deployment annotation to its new ReplicaSet except these.
_NOT_COPIED: Final = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        REVISION_HISTORY_ANNOTATION,
        DESIRED_REPLICAS_ANNOTATION,
        MAX_REPLICAS_ANNOTATION,
        "deprecated.deployment.rollback.to",
        "deployment.kubernetes.io/error-selector-overlapping-with",
        "deployment.kubernetes.io/selector-updated-at",
    }
)

# Condition reasons, as pkg/controller/deployment/util names them.
_NEW_RS_CREATED: Final = "NewReplicaSetCreated"
_FOUND_NEW_RS: Final = "FoundNewReplicaSet"
_RS_UPDATED: Final = "ReplicaSetUpdated"
_NEW_RS_AVAILABLE: Final = "NewReplicaSetAvailable"
_TIMED_OUT: Final = "ProgressDeadlineExceeded"
_PAUSED: Final = "DeploymentPaused"
_RESUMED: Final = "DeploymentResumed"

# rand.SafeEncodeString's alphabet: no vowels, no look-alikes, so names spell no words.
_SAFE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
# No progress deadline, as the API spells it.
_NO_DEADLINE: Final = 2**31 - 1
_NODE_NAME: Final = "devcluster"
# How long after a deadline next_wakeup asks for a reconcile (the deadline check is strict).
_TICK: Final = 0.001
_HOST_IP: Final = "10.0.0.10"
# The kubelet's crash-loop back-off: 10 s doubling up to 5 min.
_CRASH_BACK_OFF_START: Final = 10.0
_CRASH_BACK_OFF_MAX: Final = 300.0
# A reconcile repeats its passes until nothing changes; this bounds a bug, not a rollout.
_MAX_PASSES: Final = 200
# What the controllers run, in the order owners come before what they own.
_CONTROLLED: Final = ("deployments", "replicasets", "pods")
# Garbage collection: (controller kind, its resource) whose loss makes each one garbage.
_OWNER_OF: Final = {
    "replicasets": ("Deployment", "deployments"),
    "pods": ("ReplicaSet", "replicasets"),
}


class FailureRules:
    """Which images fail in the devcluster, and how.

    A pattern with ``*``, ``?`` or ``[`` is a glob over the whole image
    reference; any other pattern matches as a substring. The most recently
    added rule that matches wins, so ``add`` can override a default.
    """

    REASONS: Final = (IMAGE_PULL_BACK_OFF, CRASH_LOOP_BACK_OFF)

    def __init__(self, rules: Iterable[tuple[str, str]] = DEFAULT_FAILURE_RULES) -> None:
        self._rules: list[tuple[str, str]] = []
        self._generation = 0
        for pattern, reason in rules:
            self.add(pattern, reason)

    @property
    def generation(self) -> int:
        """Grows with every change, so a cache of what the rules decided knows it is stale."""
        return self._generation

    @property
    def rules(self) -> list[tuple[str, str]]:
        """(pattern, reason) pairs, in the order they were added."""
        return list(self._rules)

    def add(self, pattern: str, reason: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"reason must be one of {', '.join(self.REASONS)}, not {reason!r}")
        if not pattern:
            raise ValueError("pattern must not be empty")
        self._rules.append((pattern, reason))
        self._generation += 1

    def remove(self, pattern: str) -> None:
        """Forgets every rule with this pattern."""
        self._rules = [rule for rule in self._rules if rule[0] != pattern]
        self._generation += 1

    def clear(self) -> None:
        self._rules.clear()
        self._generation += 1

    def failure_for(self, image: str) -> str | None:
        """``ImagePullBackOff``, ``CrashLoopBackOff``, or None for an image that works."""
        for pattern, reason in reversed(self._rules):
            if any(c in pattern for c in "*?["):
                if fnmatch.fnmatchcase(image, pattern):
                    return reason
            elif pattern in image:
                return reason
        return None


def template_hash(template: Object, collision_count: int = 0) -> str:
    """A stable short hash of a pod template: the ``pod-template-hash`` label value.

    FNV-1a over canonical JSON, written in rand.SafeEncodeString's alphabet as
    the real controller writes its own hash, so names look like ``web-5d4f8b9c7``.
    """
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += collision_count.to_bytes(4, "little")
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in str(value))


class RolloutController:
    """Drives every Deployment toward its goal at the time ``clock.now()`` says.

    Call ``reconcile`` after every API write and whenever ``next_wakeup()`` comes
    due (or periodically); it is idempotent. It must run on the thread that owns
    the store.

    Like kube-controller-manager, it never scans the store for work: a store
    observer indexes ownership and queues what each change touches (the object,
    and the ReplicaSet or Deployment that controls it), and timers hold when each
    object's next change is due. A reconcile visits only what is queued or due,
    so its cost does not grow with the objects stored; ``visits`` counts what it
    looked at.

    Timings (simulated seconds): a Pod is Ready ``ready_after`` after it was
    created; a failing pull shows ``ErrImagePull`` after ``ready_after`` and
    ``ImagePullBackOff`` after twice that; a crashing container first crashes
    after ``ready_after`` and restarts with the kubelet's back-off (10 s, 20 s,
    ... 300 s). A new generation is acted on ``observe_delay`` after the first
    reconcile that saw it (0 acts at once).
    """

    def __init__(
        self,
        store: Store,
        clock: SimulatedClock,
        rules: FailureRules | None = None,
        *,
        ready_after: float = 1.0,
        observe_delay: float = 0.1,
        seed: int | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self.rules = rules if rules is not None else FailureRules()
        self.ready_after = ready_after
        self.observe_delay = observe_delay
        self._random = random.Random(seed)
        # Sub-second creation times (creationTimestamp keeps whole seconds only).
        self._pod_created: dict[str, float] = {}
        # Deployment uid -> (generation, simulated time the controller first saw it).
        self._seen: dict[str, tuple[int, float]] = {}
        # Work skipped while nothing it depends on has changed (a queued object may
        # need nothing, e.g. after the controller's own write):
        # Pod uid -> (resourceVersion, rules generation, ready_after, next status change);
        self._pod_memo: dict[str, tuple[str, int, float, float]] = {}
        # Deployment uid -> resourceVersions of it and its ReplicaSets its last sync started from.
        self._deployment_memo: dict[str, tuple[str, ...]] = {}
        self._changed = False
        #: Objects each phase looked at, by resource, since the controller was made.
        self.visits: collections.Counter[str] = collections.Counter()
        self._owners = Ownership()
        # (namespace, name) queued for a look, by resource.
        self._queued: dict[str, set[tuple[str, str]]] = {r: set() for r in _CONTROLLED}
        # ReplicaSets and Pods whose controller may be gone (garbage collection's queue).
        self._orphans: dict[str, set[tuple[str, str]]] = {r: set() for r in _OWNER_OF}
        # A Pod's next status change, a ReplicaSet's next availability, a Deployment's
        # observe delay: due at that time. Progress deadlines: due once it has passed.
        self._due_at = Timers()
        self._due_after = Timers(strict=True)
        self._settings = self._current_settings()
        store.add_observer(self._observe)
        # Objects stored before this controller existed: index them and look at each once.
        for resource in _CONTROLLED:
            for obj in store.list(resource):
                self._observe(Event("ADDED", resource, obj, 0))

    # --- the loop ----------------------------------------------------------

    def reconcile(self) -> None:
        now = self._clock.now()
        if self._settings != self._current_settings():
            # Rules or timings changed: every memo may be stale.
            self._settings = self._current_settings()
            self._queue_everything()
        for timers in (self._due_at, self._due_after):
            for resource, namespace, name in timers.due(now):
                self._queued[resource].add((namespace, name))
        try:
            for _ in range(_MAX_PASSES):
                self._changed = False
                self._collect_garbage()
                self._run_kubelet(now)
                self._run_replica_sets(now)
                self._run_deployments(now)
                if not self._changed:
                    return
        except BaseException:
            # The queues may have lost work mid-pass: the next reconcile looks at everything.
            self._queue_everything()
            raise
        log.warning("rollout controller: no steady state after %d passes", _MAX_PASSES)

    def next_wakeup(self) -> float | None:
        """The earliest simulated time at which ``reconcile`` has something new to do."""
        now = self._clock.now()
        # Written since the last reconcile (or rules changed): reconcile at once.
        if self._settings != self._current_settings():
            return now
        if any(self._queued.values()) or any(self._orphans.values()):
            return now
        at, after = self._due_at.next(), self._due_after.next()
        times = [t for t in (at, None if after is None else after + _TICK) if t is not None]
        return min(times) if times else None

    def _current_settings(self) -> tuple[FailureRules, int, float, float]:
        return (self.rules, self.rules.generation, self.ready_after, self.observe_delay)

    def _queue_everything(self) -> None:
        for resource in _CONTROLLED:
            for obj in self._store.list(resource):
                meta = obj["metadata"]
                self._queued[resource].add((meta.get("namespace", ""), meta["name"]))
                if resource in _OWNER_OF:
                    self._orphans[resource].add((meta.get("namespace", ""), meta["name"]))

    @staticmethod
    def _take(queue: set[tuple[str, str]]) -> list[tuple[str, str]]:
        """Empties a queue, in the store's list order (so writes come in the same order)."""
        keys = sorted(queue)
        queue.clear()
        return keys

    def _observe(self, event: Event) -> None:
        """Store observer: keeps the indexes current and queues what the change touches."""
        resource = event.resource
        if resource not in self._queued:
            return
        meta = event.object["metadata"]
        uid = meta["uid"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        key = (resource, namespace, name)
        owners: list[str | None]
        if event.type == "DELETED":
            owners = [self._owners.deleted(key, uid)]
            self._queued[resource].discard((namespace, name))
            self._due_at.discard(key)
            self._due_after.discard(key)
            for memo in (self._seen, self._deployment_memo, self._pod_created, self._pod_memo):
                memo.pop(uid, None)
            # What it controlled is garbage now.
            for child, child_namespace, child_name in self._owners.children(uid):
                if child in self._orphans:
                    self._orphans[child].add((child_namespace, child_name))
        else:
            owner = _controller_of(event.object)
            owner_uid = owner["uid"] if owner is not None else None
            owners = [self._owners.stored(key, uid, owner_uid), owner_uid]
            self._queued[resource].add((namespace, name))
            if owner is not None and self._owner_gone(resource, owner):
                self._orphans[resource].add((namespace, name))
        # A change to a Pod concerns its ReplicaSet; one to a ReplicaSet, its Deployment.
        for owner_uid in owners:
            owner_key = self._owners.key_of(owner_uid) if owner_uid is not None else None
            if owner_key is not None:
                self._queued[owner_key[0]].add(owner_key[1:])

    def _owner_gone(self, resource: str, owner: Object) -> bool:
        """Whether a ReplicaSet's Deployment (or a Pod's ReplicaSet) is no longer stored."""
        kind, owner_resource = _OWNER_OF[resource]
        if owner.get("kind") != kind:
            return False
        key = self._owners.key_of(owner["uid"])
        return key is None or key[0] != owner_resource

    def _owned(self, owner: Object, resource: str, *, same_namespace: bool) -> list[Object]:
        """Stored objects of ``resource`` that ``owner`` controls, in the store's list order."""
        namespace = owner["metadata"].get("namespace", "")
        owned: list[Object] = []
        for child_resource, child_namespace, child_name in self._owners.children(
            owner["metadata"]["uid"]
        ):
            if child_resource != resource or (same_namespace and child_namespace != namespace):
                continue
            obj = self._store.get(resource, child_namespace, child_name)
            if obj is not None:
                owned.append(obj)
        return owned

    def _schedule(self, deployment: Object, now: float) -> None:
        """Sets when a Deployment next needs a look without a change: its lag, its deadline."""
        meta = deployment["metadata"]
        key = ("deployments", meta["namespace"], meta["name"])
        lag: float | None = None
        generation = meta.get("generation", 0)
        if generation > (deployment.get("status") or {}).get("observedGeneration", 0):
            seen = self._seen.get(meta["uid"])
            if seen is not None and seen[0] == generation:
                lag = seen[1] + self.observe_delay
        self._due_at.set(key, lag if lag is not None and lag > now else None)
        deadline = self._deadline(deployment)
        self._due_after.set(key, deadline if deadline is not None and deadline >= now else None)

    def _deadline(self, deployment: Object) -> float | None:
        """When a stored rollout still progressing times out (a paused one never does)."""
        seconds = _progress_deadline(deployment)
        if seconds is None or (deployment.get("spec") or {}).get("paused"):
            return None
        return _timeout_at(deployment.get("status") or {}, seconds)

    def _write(self, resource: str, obj: Object) -> Object:
        meta = obj["metadata"]
        before = self._store.get(resource, meta.get("namespace", ""), meta["name"])
        stored = self._store.update(resource, obj)
        if stored is not before:
            self._changed = True
        return stored

    def _create(self, resource: str, obj: Object) -> Object:
        stored = self._store.create(resource, obj)
        self._changed = True
        return stored

    def _delete(self, resource: str, namespace: str, name: str) -> None:
        try:
            self._store.delete(resource, namespace, name)
        except ObjectNotFound:
            return
        self._changed = True  # the observer forgets the object's memos

    # --- garbage collection -----------------------------------------------

    def _collect_garbage(self) -> None:
        """Deletes ReplicaSets whose Deployment is gone, then Pods whose ReplicaSet is gone."""
        for resource in _OWNER_OF:  # ReplicaSets first: deleting one queues its Pods
            for namespace, name in self._take(self._orphans[resource]):
                obj = self._store.get(resource, namespace, name)
                if obj is None:
                    continue
                self.visits["garbage"] += 1
                owner = _controller_of(obj)
                if owner is not None and self._owner_gone(resource, owner):
                    self._delete(resource, namespace, name)

    # --- the kubelet -------------------------------------------------------

    def _created(self, pod: Object) -> float:
        meta = pod["metadata"]
        created = self._pod_created.get(meta["uid"])
        return created if created is not None else _parse_time(meta["creationTimestamp"])

    def _run_kubelet(self, now: float) -> None:
        generation = self.rules.generation
        for namespace, name in self._take(self._queued["pods"]):
            pod = self._store.get("pods", namespace, name)
            if pod is None or _controller_of(pod) is None:
                continue  # not ours: a Pod nobody runs keeps the status it was given
            self.visits["pods"] += 1
            uid = pod["metadata"]["uid"]
            memo = self._pod_memo.get(uid)
            inputs = (pod["metadata"]["resourceVersion"], generation, self.ready_after)
            if memo is None or memo[:3] != inputs or now >= memo[3]:
                status = self._pod_status(pod, now)
                if status != pod.get("status"):
                    pod = self._write("pods", {**pod, "status": status})
                upcoming = [t for t in self._pod_changes(pod, now) if t > now]
                version = pod["metadata"]["resourceVersion"]
                memo = (version, generation, self.ready_after, min(upcoming, default=math.inf))
                self._pod_memo[uid] = memo
            self._due_at.set(("pods", namespace, name), memo[3] if memo[3] < math.inf else None)

    def _pod_changes(self, pod: Object, now: float) -> list[float]:
        """The simulated times at which this Pod's status will change next."""
        created = self._created(pod)
        start = created + self.ready_after
        times = [start]
        for container in (pod.get("spec") or {}).get("containers") or []:
            failure = self.rules.failure_for(container.get("image", ""))
            if failure == IMAGE_PULL_BACK_OFF:
                times.append(start + self.ready_after)
            elif failure == CRASH_LOOP_BACK_OFF:
                _, last, back_off = _crash_loop(start, now)
                times.append(last + back_off)
        return times

    def _pod_status(self, pod: Object, now: float) -> Object:
        """What the kubelet reports for ``pod`` at ``now``: a pure function of time and rules."""
        meta = pod["metadata"]
        created = self._created(pod)
        start = created + self.ready_after
        started = now >= start
        statuses: list[Object] = []
        for container in (pod.get("spec") or {}).get("containers") or []:
            statuses.append(self._container_status(pod, container, start, now))
        unready = [c["name"] for c in statuses if not c["ready"]]
        # A container whose image was pulled has run, even if it crashed since.
        running = started and any(c["imageID"] for c in statuses)
        created_at = timestamp(created)
        if unready:
            detail = f"containers with unready status: [{' '.join(unready)}]"
            ready = {"status": "False", "lastTransitionTime": created_at}
            ready |= {"reason": "ContainersNotReady", "message": detail}
        else:
            ready = {"status": "True", "lastTransitionTime": timestamp(start)}

        def condition(type_: str, fields: Object) -> Object:
            return {"type": type_, "lastProbeTime": None, **fields}

        scheduled = {"status": "True", "lastTransitionTime": created_at}
        status: Object = {
            "phase": "Running" if running else "Pending",
            "conditions": [
                condition("PodReadyToStartContainers", scheduled),
                condition("Initialized", scheduled),
                condition("Ready", ready),
                condition("ContainersReady", ready),
                condition("PodScheduled", scheduled),
            ],
            "hostIP": _HOST_IP,
            "hostIPs": [{"ip": _HOST_IP}],
            "podIP": _pod_ip(meta["uid"]),
            "podIPs": [{"ip": _pod_ip(meta["uid"])}],
            "startTime": created_at,
            "containerStatuses": statuses,
            "qosClass": _qos_class(pod),
        }
        return status

    def _container_status(self, pod: Object, container: Object, start: float, now: float) -> Object:
        name = container.get("name", "")
        image = container.get("image", "")
        digest = hashlib.sha256(image.encode()).hexdigest()
        status: Object = {
            "name": name,
            "state": {"waiting": {"reason": "ContainerCreating"}},
            "lastState": {},
            "ready": False,
            "restartCount": 0,
            "image": image,
            "imageID": "",
            "started": False,
        }
        if now < start:
            return status
        meta = pod["metadata"]
        container_id = (
            "containerd://" + hashlib.sha256(f"{meta['uid']}/{name}".encode()).hexdigest()
        )
        failure = self.rules.failure_for(image)
        if failure == IMAGE_PULL_BACK_OFF:
            if now < start + self.ready_after:
                message = (
                    f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
                    f'failed to resolve reference "{image}": not found'
                )
                status["state"] = {"waiting": {"reason": "ErrImagePull", "message": message}}
            else:
                message = f'Back-off pulling image "{image}"'
                status["state"] = {"waiting": {"reason": IMAGE_PULL_BACK_OFF, "message": message}}
            return status
        status["imageID"] = f"{image.split('@')[0].rsplit(':', 1)[0]}@sha256:{digest}"
        if failure == CRASH_LOOP_BACK_OFF:
            crashes, last, back_off = _crash_loop(start, now)
            pod_ref = f"{meta['name']}_{meta.get('namespace', '')}({meta['uid']})"
            message = f"back-off {int(back_off)}s restarting failed container={name} pod={pod_ref}"
            status["state"] = {"waiting": {"reason": CRASH_LOOP_BACK_OFF, "message": message}}
            status["lastState"] = {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": timestamp(last),
                    "finishedAt": timestamp(last),
                    "containerID": container_id,
                }
            }
            status["restartCount"] = crashes - 1
            status["containerID"] = container_id
            return status
        status["state"] = {"running": {"startedAt": timestamp(start)}}
        status["ready"] = True
        status["started"] = True
        status["containerID"] = container_id
        return status

    # --- the ReplicaSet controller ------------------------------------------

    def _run_replica_sets(self, now: float) -> None:
        for namespace, name in self._take(self._queued["replicasets"]):
            rs = self._store.get("replicasets", namespace, name)
            if rs is None or _controller_of(rs) is None:
                continue  # not created by a Deployment: nobody runs it
            self.visits["replicasets"] += 1
            pods = self._owned(rs, "pods", same_namespace=False)
            wanted = _int(rs["spec"].get("replicas"), 1)
            if len(pods) < wanted:
                pods = pods + [self._create_pod(rs, now) for _ in range(wanted - len(pods))]
            elif len(pods) > wanted:
                doomed = sorted(
                    pods, key=lambda p: (_pod_ready(p), -self._created(p), p["metadata"]["name"])
                )
                for pod in doomed[: len(pods) - wanted]:
                    self._delete("pods", pod["metadata"]["namespace"], pod["metadata"]["name"])
                pods = doomed[len(pods) - wanted :]
            self._write("replicasets", {**rs, "status": _replica_set_status(rs, pods, now)})
            self._due_at.set(("replicasets", namespace, name), _next_available(rs, pods, now))

    def _create_pod(self, rs: Object, now: float) -> Object:
        meta = rs["metadata"]
        template = rs["spec"]["template"]
        template_meta = template.get("metadata") or {}
        pod_meta: Object = {
            "generateName": f"{meta['name']}-",
            "namespace": meta["namespace"],
            "labels": dict(template_meta.get("labels") or {}),
            "ownerReferences": [_owner_reference("ReplicaSet", rs)],
        }
        if template_meta.get("annotations"):
            pod_meta["annotations"] = dict(template_meta["annotations"])
        spec = copy.deepcopy(template.get("spec") or {})
        spec["nodeName"] = _NODE_NAME
        while True:
            suffix = "".join(self._random.choice(_SAFE_ALPHABET) for _ in range(5))
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {**pod_meta, "name": f"{meta['name']}-{suffix}"},
                "spec": spec,
            }
            try:
                stored = self._create("pods", pod)
            except ObjectExists:
                continue
            break
        self._pod_created[stored["metadata"]["uid"]] = now
        return stored

    # --- the deployment controller --------------------------------------------

    def _run_deployments(self, now: float) -> None:
        for namespace, name in self._take(self._queued["deployments"]):
            deployment = self._store.get("deployments", namespace, name)
            if deployment is None:
                continue
            self.visits["deployments"] += 1
            if self._noticed(deployment, now):
                uid = deployment["metadata"]["uid"]
                # A sync that wrote something syncs again (its own writes are events, as in a
                # cluster); one that wrote nothing waits for a change or for its deadline.
                versions = _versions(
                    deployment, self._owned(deployment, "replicasets", same_namespace=False)
                )
                deadline = self._deadline(deployment)
                if self._deployment_memo.get(uid) != versions or (
                    deadline is not None and now > deadline
                ):
                    self._deployment_memo[uid] = versions
                    _DeploymentSync(self, deployment, now).run()
                    deployment = self._store.get("deployments", namespace, name) or deployment
            self._schedule(deployment, now)

    def _noticed(self, deployment: Object, now: float) -> bool:
        """Whether the controller has caught up with this generation yet (the lag)."""
        meta = deployment["metadata"]
        generation = meta.get("generation", 0)
        if generation <= (deployment.get("status") or {}).get("observedGeneration", 0):
            return True
        seen = self._seen.get(meta["uid"])
        if seen is None or seen[0] != generation:
            seen = self._seen[meta["uid"]] = (generation, now)
        return now >= seen[1] + self.observe_delay

    def _replica_sets_of(self, deployment: Object) -> list[Object]:
        owned = self._owned(deployment, "replicasets", same_namespace=True)
        return sorted(owned, key=_creation_order)

    def _pods_of(self, rs: Object) -> list[Object]:
        return self._owned(rs, "pods", same_namespace=True)


class _DeploymentSync:
    """One sync of one Deployment, as ``syncDeployment`` does it."""

    def __init__(self, controller: RolloutController, deployment: Object, now: float) -> None:
        self.c = controller
        self.d = copy.deepcopy(deployment)
        self.now = now
        self.name = deployment["metadata"]["name"]
        self.namespace = deployment["metadata"]["namespace"]
        self.spec: Object = self.d.get("spec") or {}
        self.status: Object = self.d.setdefault("status", {})
        self.replicas = _int(self.spec.get("replicas"), 1)

    def run(self) -> None:
        rss = self.c._replica_sets_of(self.d)
        if self.d["metadata"].get("deletionTimestamp"):
            # Being deleted (finalizers pending): report, change nothing.
            new, old = self._new_and_old(rss, create=False)
            self._finish(new, old, estimate_progress=False)
            return
        self._check_paused_conditions()
        if self.spec.get("paused") or self._scaling_event(rss):
            self._sync_scale(rss)
        elif (self.spec.get("strategy") or {}).get("type") == "Recreate":
            self._recreate(rss)
        else:
            self._rolling(rss)

    # --- the strategies ----------------------------------------------------

    def _rolling(self, rss: list[Object]) -> None:
        new, old = self._new_and_old(rss, create=True)
        assert new is not None
        scaled = self._reconcile_new(new, old) or self._reconcile_old(new, old)
        if not scaled and _complete(self.d, self.status, self.replicas):
            self._cleanup(old)
        new, old = self._new_and_old(self.c._replica_sets_of(self.d), create=False)
        self._finish(new, old, estimate_progress=True)

    def _recreate(self, rss: list[Object]) -> None:
        new, old = self._new_and_old(rss, create=False)
        scaled_down = False
        for rs in old:
            if _int(rs["spec"].get("replicas"), 1):
                self._scale(rs, 0)
                scaled_down = True
        old_running = any(self.c._pods_of(rs) for rs in old)
        if not scaled_down and not old_running:
            if new is None:
                new, old = self._new_and_old(self.c._replica_sets_of(self.d), create=True)
            assert new is not None
            self._scale(new, self.replicas)
            if _complete(self.d, self.status, self.replicas):
                self._cleanup(old)
        new, old = self._new_and_old(self.c._replica_sets_of(self.d), create=False)
        self._finish(new, old, estimate_progress=True)

    def _reconcile_new(self, new: Object, old: list[Object]) -> bool:
        current = _int(new["spec"].get("replicas"), 1)
        if current == self.replicas:
            return False
        if current > self.replicas:
            return self._scale(new, self.replicas)
        return self._scale(new, self._new_replicas(new, old))

    def _new_replicas(self, new: Object | None, old: list[Object]) -> int:
        """NewRSNewReplicas: how far the new ReplicaSet may grow now."""
        if (self.spec.get("strategy") or {}).get("type") == "Recreate":
            return self.replicas
        surge, _ = _fenceposts(self.d)
        current_new = _int(new["spec"].get("replicas"), 1) if new is not None else 0
        everyone = _spec_replicas(old) + current_new
        ceiling = self.replicas + surge
        if everyone >= ceiling:
            return current_new
        return current_new + min(ceiling - everyone, self.replicas - current_new)

    def _reconcile_old(self, new: Object, old: list[Object]) -> bool:
        if _spec_replicas(old) == 0:
            return False
        min_available = self.replicas - _max_unavailable(self.d)
        new_unavailable = _int(new["spec"].get("replicas"), 1) - _status(new, "availableReplicas")
        budget = _spec_replicas([*old, new]) - min_available - new_unavailable
        if budget <= 0:
            return False
        # Unhealthy old Pods go first: removing them costs no availability.
        cleaned = 0
        remaining: list[Object] = []
        for rs in old:
            size = _int(rs["spec"].get("replicas"), 1)
            unhealthy = size - _status(rs, "availableReplicas")
            if cleaned < budget and size and unhealthy > 0:
                count = min(budget - cleaned, unhealthy)
                self._scale(rs, size - count)
                rs = self._latest(rs)
                cleaned += count
            remaining.append(rs)
        available = _status(new, "availableReplicas") + sum(
            _status(rs, "availableReplicas") for rs in remaining
        )
        scaled = 0
        if available > min_available:
            allowed = available - min_available
            for rs in remaining:
                size = _int(rs["spec"].get("replicas"), 1)
                if scaled >= allowed:
                    break
                if size == 0:
                    continue
                count = min(size, allowed - scaled)
                self._scale(rs, size - count)
                scaled += count
        return cleaned + scaled > 0

    def _scaling_event(self, rss: list[Object]) -> bool:
        """Whether an active ReplicaSet was sized for another replica count than the current one."""
        new, old = self._new_and_old(rss, create=False)
        for rs in [*old, *([new] if new else [])]:
            desired = _annotation_int(rs, DESIRED_REPLICAS_ANNOTATION)
            if _size(rs) and desired is not None and desired != self.replicas:
                return True
        return False

    def _sync_scale(self, rss: list[Object]) -> None:
        """sync: scale (proportionally) without rolling, as when paused or resized."""
        new, old = self._new_and_old(rss, create=False)
        self._scale_proportionally(new, old)
        new, old = self._new_and_old(self.c._replica_sets_of(self.d), create=False)
        if self.spec.get("paused"):
            self._cleanup(old)
        self._finish(new, old, estimate_progress=False)

    def _scale_proportionally(self, new: Object | None, old: list[Object]) -> None:
        """Spreads a change of replicas over the active ReplicaSets by their share of it."""
        everyone = [*old, *([new] if new else [])]
        active = [rs for rs in everyone if _size(rs)]
        if len(active) <= 1:
            # One active ReplicaSet (or none: the newest) takes the whole count.
            target = (
                active[0] if active else (new if new is not None else (old[-1] if old else None))
            )
            if target is not None and _size(target) != self.replicas:
                self._scale(target, self.replicas)
            return
        if new is not None and self._saturated(new):
            for rs in old:
                if _size(rs):
                    self._scale(rs, 0)
            return
        if not _rolling_update(self.d):
            return
        allowed = self.replicas + _max_surge(self.d) if self.replicas > 0 else 0
        to_add = allowed - _spec_replicas(active)
        # Largest first; among equals, newest first when growing and oldest first when shrinking.
        active.sort(key=_creation_order, reverse=to_add > 0)
        active.sort(key=_size, reverse=True)
        sizes: dict[str, int] = {}
        added = 0
        for rs in active:
            share = self._proportion(rs, to_add, added) if to_add else 0
            sizes[rs["metadata"]["name"]] = _size(rs) + share
            added += share
        for index, rs in enumerate(active):
            size = sizes[rs["metadata"]["name"]]
            if index == 0 and to_add:
                size = max(size + to_add - added, 0)  # rounding leftovers go to the largest
            self._scale(rs, size)

    def _proportion(self, rs: Object, to_add: int, added: int) -> int:
        """GetProportion: this ReplicaSet's share of ``to_add``, within what is left of it."""
        size = _size(rs)
        if size == 0 or to_add == added:
            return 0
        if self.replicas == 0:
            fraction = -size
        else:
            before = _annotation_int(rs, MAX_REPLICAS_ANNOTATION) or _status(self.d, "replicas")
            after = self.replicas + _max_surge(self.d)
            fraction = _round_half_up(size * after / before) - size if before else 0
        left = to_add - added
        return min(fraction, left) if to_add > 0 else max(fraction, left)

    def _saturated(self, new: Object) -> bool:
        """The new ReplicaSet runs every replica, sized for this count, all available."""
        return (
            _size(new) == self.replicas
            and _annotation_int(new, DESIRED_REPLICAS_ANNOTATION) == self.replicas
            and _status(new, "availableReplicas") == self.replicas
        )

    def _cleanup(self, old: list[Object]) -> None:
        """Deletes the oldest idle ReplicaSets beyond revisionHistoryLimit."""
        limit = _int(self.spec.get("revisionHistoryLimit"), 10)
        idle = [
            rs
            for rs in old
            if _int(rs["spec"].get("replicas"), 1) == 0
            and _status(rs, "replicas") == 0
            and rs["metadata"].get("generation", 0) <= _status(rs, "observedGeneration")
        ]
        idle.sort(key=lambda rs: (_revision(rs), _creation_order(rs)))
        for rs in idle[: max(len(idle) - limit, 0)]:
            self.c._delete("replicasets", self.namespace, rs["metadata"]["name"])

    # --- ReplicaSets ---------------------------------------------------------

    def _latest(self, rs: Object) -> Object:
        current = self.c._store.get("replicasets", self.namespace, rs["metadata"]["name"])
        return current if current is not None else rs

    def _scale(self, rs: Object, replicas: int) -> bool:
        """Sets the size and the replica annotations; True if the size changed."""
        rs = self._latest(rs)
        annotations = dict(rs["metadata"].get("annotations") or {})
        annotations[DESIRED_REPLICAS_ANNOTATION] = str(self.replicas)
        annotations[MAX_REPLICAS_ANNOTATION] = str(self.replicas + _max_surge(self.d))
        resized = _int(rs["spec"].get("replicas"), 1) != replicas
        meta = {**rs["metadata"], "annotations": annotations}
        if resized:
            meta["generation"] = meta.get("generation", 1) + 1
        self.c._write(
            "replicasets", {**rs, "metadata": meta, "spec": {**rs["spec"], "replicas": replicas}}
        )
        return resized

    def _new_and_old(
        self, rss: list[Object], *, create: bool
    ) -> tuple[Object | None, list[Object]]:
        """getAllReplicaSetsAndSyncRevision: the new ReplicaSet (found or made), and the others."""
        template = self.spec.get("template") or {}
        new = next(
            (rs for rs in rss if _without_hash(rs["spec"].get("template") or {}) == template), None
        )
        old = [rs for rs in rss if rs is not new]
        revision = max((_revision(rs) for rs in old), default=0) + 1
        if new is not None:
            new = self._adopt_revision(new, revision)
        elif create:
            new = self._create_replica_set(old, revision)
        if new is not None:
            annotations = self.d["metadata"].setdefault("annotations", {})
            annotations[REVISION_ANNOTATION] = new["metadata"]["annotations"][REVISION_ANNOTATION]
        return new, old

    def _adopt_revision(self, rs: Object, revision: int) -> Object:
        """Brings the new ReplicaSet's annotations up to date; a rollback keeps its history."""
        annotations = dict(rs["metadata"].get("annotations") or {})
        changed = _copy_annotations(self.d, annotations)
        had = annotations.get(REVISION_ANNOTATION)
        if _revision(rs) < revision:
            annotations[REVISION_ANNOTATION] = str(revision)
            changed = True
        if had is not None and changed and annotations[REVISION_ANNOTATION] != had:
            history = annotations.get(REVISION_HISTORY_ANNOTATION)
            annotations[REVISION_HISTORY_ANNOTATION] = f"{history},{had}" if history else had
        if (self.spec.get("minReadySeconds") or 0) != (rs["spec"].get("minReadySeconds") or 0):
            spec = {**rs["spec"], "minReadySeconds": self.spec.get("minReadySeconds") or 0}
            meta = {**rs["metadata"], "generation": rs["metadata"].get("generation", 1) + 1}
            rs = {**rs, "metadata": meta, "spec": spec}
            changed = True
        if changed:
            rs = self.c._write(
                "replicasets", {**rs, "metadata": {**rs["metadata"], "annotations": annotations}}
            )
        if (
            _progress_deadline(self.d) is not None
            and _condition(self.status, "Progressing") is None
        ):
            message = f'Found new replica set "{rs["metadata"]["name"]}"'
            _set_condition(self.status, "Progressing", "True", _FOUND_NEW_RS, message, self.now)
        return rs

    def _create_replica_set(self, old: list[Object], revision: int) -> Object:
        template = copy.deepcopy(self.spec.get("template") or {})
        for _ in range(_MAX_PASSES):
            collisions = _int(self.status.get("collisionCount"), 0)
            hash_ = template_hash(template, collisions)
            name = f"{self.name}-{hash_}"
            rs_template = copy.deepcopy(template)
            labels = {
                **(rs_template.get("metadata") or {}).get("labels", {}),
                POD_TEMPLATE_HASH_LABEL: hash_,
            }
            rs_template.setdefault("metadata", {})["labels"] = labels
            selector = copy.deepcopy(self.spec.get("selector") or {})
            selector["matchLabels"] = {
                **(selector.get("matchLabels") or {}),
                POD_TEMPLATE_HASH_LABEL: hash_,
            }
            annotations: Object = {}
            _copy_annotations(self.d, annotations)
            annotations[REVISION_ANNOTATION] = str(revision)
            annotations[DESIRED_REPLICAS_ANNOTATION] = str(self.replicas)
            annotations[MAX_REPLICAS_ANNOTATION] = str(self.replicas + _max_surge(self.d))
            spec: Object = {
                "replicas": self._new_replicas(None, old),
                "selector": selector,
                "template": rs_template,
            }
            if self.spec.get("minReadySeconds"):
                spec["minReadySeconds"] = self.spec["minReadySeconds"]
            rs: Object = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": name,
                    "namespace": self.namespace,
                    "labels": labels,
                    "annotations": annotations,
                    "ownerReferences": [_owner_reference("Deployment", self.d)],
                },
                "spec": spec,
                "status": {"replicas": 0},
            }
            try:
                created = self.c._create("replicasets", rs)
            except ObjectExists:
                # A hash collision with someone else's ReplicaSet: count it, hash again.
                self.status["collisionCount"] = collisions + 1
                continue
            if _progress_deadline(self.d) is not None:
                message = f'Created new replica set "{name}"'
                _set_condition(
                    self.status, "Progressing", "True", _NEW_RS_CREATED, message, self.now
                )
            return created
        raise RuntimeError(f"no free ReplicaSet name for Deployment {self.name!r}")

    # --- status ------------------------------------------------------------------

    def _check_paused_conditions(self) -> None:
        if _progress_deadline(self.d) is None:
            return
        progressing = _condition(self.status, "Progressing")
        if progressing is not None and progressing.get("reason") == _TIMED_OUT:
            return
        paused_shown = progressing is not None and progressing.get("reason") == _PAUSED
        if self.spec.get("paused") and not paused_shown:
            reason, message = _PAUSED, "Deployment is paused"
        elif not self.spec.get("paused") and paused_shown:
            reason, message = _RESUMED, "Deployment is resumed"
        else:
            return
        _set_condition(self.status, "Progressing", "Unknown", reason, message, self.now)
        # Written at once, as the real controller does, so a watch sees it before the rollout.
        self.d = copy.deepcopy(self.c._write("deployments", self.d))
        self.spec = self.d["spec"]
        self.status = self.d["status"]

    def _finish(self, new: Object | None, old: list[Object], *, estimate_progress: bool) -> None:
        """calculateStatus (+ syncRolloutStatus when rolling), then one write."""
        all_rss = [*old, *([new] if new else [])]
        previous = self.status
        status = _calculate_status(self.d, all_rss, new, self.now)
        if estimate_progress:
            self._estimate_progress(previous, status, new)
        self.d["status"] = status
        self.c._write("deployments", self.d)

    def _estimate_progress(self, previous: Object, status: Object, new: Object | None) -> None:
        deadline = _progress_deadline(self.d)
        if deadline is None:
            status["conditions"] = [
                c for c in status.get("conditions", []) if c["type"] != "Progressing"
            ]
            if not status["conditions"]:
                del status["conditions"]
            return
        current = _condition(previous, "Progressing")
        done = (
            status.get("replicas", 0) == status.get("updatedReplicas", 0)
            and current is not None
            and current.get("reason") == _NEW_RS_AVAILABLE
        )
        if done:
            return
        subject = f'ReplicaSet "{new["metadata"]["name"]}"' if new else f'Deployment "{self.name}"'
        if _complete(self.d, status, self.replicas):
            message = f"{subject} has successfully progressed."
            _set_condition(status, "Progressing", "True", _NEW_RS_AVAILABLE, message, self.now)
        elif _progressed(previous, status):
            # Progress refreshes lastUpdateTime even with the same reason: the deadline restarts.
            transition = self.now
            if current is not None and current.get("status") == "True":
                transition = _parse_time(current["lastTransitionTime"])
            conditions = [c for c in status.get("conditions", []) if c["type"] != "Progressing"]
            conditions.append(
                _new_condition(
                    "Progressing", "True", _RS_UPDATED, f"{subject} is progressing.", self.now
                )
                | {"lastTransitionTime": timestamp(transition)}
            )
            status["conditions"] = conditions
        elif self._timed_out(status, deadline):
            message = f"{subject} has timed out progressing."
            _set_condition(status, "Progressing", "False", _TIMED_OUT, message, self.now)

    def _timed_out(self, status: Object, deadline: int) -> bool:
        """DeploymentTimedOut."""
        progressing = _condition(status, "Progressing")
        if progressing is not None and progressing.get("reason") == _TIMED_OUT:
            return True
        timeout = _timeout_at(status, deadline)
        return timeout is not None and timeout < self.now


# --- pure helpers ------------------------------------------------------------


def _int(value: Any, default: int) -> int:
    return default if value is None else int(value)


def _status(obj: Object, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def _size(rs: Object) -> int:
    return _int(rs["spec"].get("replicas"), 1)


def _spec_replicas(rss: Iterable[Object]) -> int:
    return sum(_size(rs) for rs in rss)


def _annotation_int(obj: Object, key: str) -> int | None:
    try:
        return int((obj["metadata"].get("annotations") or {})[key])
    except (KeyError, ValueError):
        return None


def _round_half_up(value: float) -> int:
    # Go's math.Round for the positive sizes it is used on (Python rounds half to even).
    return math.floor(value + 0.5)


def _versions(deployment: Object, rss: Iterable[Object]) -> tuple[str, ...]:
    """What a Deployment's sync depends on, besides time: it and its ReplicaSets."""
    owned = sorted(f"{rs['metadata']['name']}@{rs['metadata']['resourceVersion']}" for rs in rss)
    return (deployment["metadata"]["resourceVersion"], *owned)


def _revision(rs: Object) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0  # an unreadable revision is skipped, as the controller does


def _creation_order(obj: Object) -> tuple[str, str]:
    return (obj["metadata"].get("creationTimestamp", ""), obj["metadata"]["name"])


@functools.lru_cache(maxsize=4096)  # the same few timestamps, parsed on every look at a Pod
def _parse_time(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _controller_of(obj: Object) -> Object | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def _owner_reference(kind: str, owner: Object) -> Object:
    meta = owner["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _without_hash(template: Object) -> Object:
    """The template as the Deployment holds it: without the pod-template-hash label."""
    labels = (template.get("metadata") or {}).get("labels") or {}
    if POD_TEMPLATE_HASH_LABEL not in labels:
        return template
    rest = {k: v for k, v in labels.items() if k != POD_TEMPLATE_HASH_LABEL}
    return {**template, "metadata": {**template["metadata"], "labels": rest}}


def _copy_annotations(deployment: Object, annotations: Object) -> bool:
    changed = False
    for key, value in (deployment["metadata"].get("annotations") or {}).items():
        if key not in _NOT_COPIED and annotations.get(key) != value:
            annotations[key] = value
            changed = True
    return changed


def _scaled(value: Any, total: int, *, round_up: bool) -> int:
    """An int-or-percent of ``total``: surge rounds up, unavailability rounds down."""
    if isinstance(value, str) and value.endswith("%"):
        percent = int(value[:-1])
        return -(-percent * total // 100) if round_up else percent * total // 100
    return int(value)


def _fenceposts(deployment: Object) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in Pods; both zero would deadlock, so unavailable becomes 1."""
    spec = deployment.get("spec") or {}
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    replicas = _int(spec.get("replicas"), 1)
    surge = _scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _rolling_update(deployment: Object) -> bool:
    strategy = (deployment.get("spec") or {}).get("strategy") or {}
    return bool(strategy.get("type", "RollingUpdate") == "RollingUpdate")


def _max_surge(deployment: Object) -> int:
    return _fenceposts(deployment)[0] if _rolling_update(deployment) else 0


def _max_unavailable(deployment: Object) -> int:
    replicas = _int((deployment.get("spec") or {}).get("replicas"), 1)
    if not _rolling_update(deployment) or replicas == 0:
        return 0
    return min(_fenceposts(deployment)[1], replicas)


def _progress_deadline(deployment: Object) -> int | None:
    seconds = _int((deployment.get("spec") or {}).get("progressDeadlineSeconds"), 600)
    return None if seconds == _NO_DEADLINE else seconds


def _timeout_at(status: Object, seconds: int) -> float | None:
    """When a rollout times out without progress: the first instant *after* this one.

    None when no rollout is in progress (complete, already timed out, or never started).
    """
    progressing = _condition(status, "Progressing")
    if progressing is None or progressing.get("reason") in (_NEW_RS_AVAILABLE, _TIMED_OUT):
        return None
    return _parse_time(progressing["lastUpdateTime"]) + seconds


def _condition(status: Object, type_: str) -> Object | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def _new_condition(type_: str, status: str, reason: str, message: str, now: float) -> Object:
    at = timestamp(now)
    return {
        "type": type_,
        "status": status,
        "lastUpdateTime": at,
        "lastTransitionTime": at,
        "reason": reason,
        "message": message,
    }


def _set_condition(
    status: Object, type_: str, value: str, reason: str, message: str, now: float
) -> None:
    """SetDeploymentCondition: same status and reason, no change; same status, same transition."""
    current = _condition(status, type_)
    if current is not None and (current["status"], current.get("reason")) == (value, reason):
        return
    condition = _new_condition(type_, value, reason, message, now)
    if current is not None and current["status"] == value:
        condition["lastTransitionTime"] = current["lastTransitionTime"]
    status["conditions"] = [c for c in status.get("conditions") or [] if c["type"] != type_] + [
        condition
    ]


def _calculate_status(
    deployment: Object, rss: list[Object], new: Object | None, now: float
) -> Object:
    previous = deployment.get("status") or {}
    available = sum(_status(rs, "availableReplicas") for rs in rss)
    counts = {
        "replicas": sum(_status(rs, "replicas") for rs in rss),
        "updatedReplicas": _status(new, "replicas") if new else 0,
        "readyReplicas": sum(_status(rs, "readyReplicas") for rs in rss),
        "availableReplicas": available,
        "unavailableReplicas": max(_spec_replicas(rss) - available, 0),
    }
    # Zero counts are omitted, as Go's omitempty writes them.
    status: Object = {"observedGeneration": deployment["metadata"].get("generation", 0)}
    status |= {k: v for k, v in counts.items() if v}
    status["conditions"] = copy.deepcopy(previous.get("conditions") or [])
    if previous.get("collisionCount") is not None:
        status["collisionCount"] = previous["collisionCount"]
    replicas = _int((deployment.get("spec") or {}).get("replicas"), 1)
    if available >= replicas - _max_unavailable(deployment):
        args = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    else:
        args = (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    _set_condition(status, "Available", *args, now)
    return status


def _complete(deployment: Object, status: Object, replicas: int) -> bool:
    """DeploymentComplete: every replica updated and available, nothing old, generation seen."""
    return bool(
        status.get("updatedReplicas", 0) == replicas
        and status.get("replicas", 0) == replicas
        and status.get("availableReplicas", 0) == replicas
        and status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    )


def _progressed(previous: Object, status: Object) -> bool:
    """DeploymentProgressing: more updated, ready or available Pods, or fewer old ones."""

    def old(s: Object) -> int:
        return int(s.get("replicas", 0)) - int(s.get("updatedReplicas", 0))

    return (
        status.get("updatedReplicas", 0) > previous.get("updatedReplicas", 0)
        or old(status) < old(previous)
        or status.get("readyReplicas", 0) > previous.get("readyReplicas", 0)
        or status.get("availableReplicas", 0) > previous.get("availableReplicas", 0)
    )


def _pod_ready(pod: Object) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _replica_set_status(rs: Object, pods: list[Object], now: float) -> Object:
    min_ready = _int(rs["spec"].get("minReadySeconds"), 0)
    template_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
    ready = [pod for pod in pods if _pod_ready(pod)]
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
    min_ready = _int(rs["spec"].get("minReadySeconds"), 0)
    times = [_ready_since(pod) + min_ready for pod in pods if _pod_ready(pod)]
    return min((t for t in times if t > now), default=None)


def _ready_since(pod: Object) -> float:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return _parse_time(c["lastTransitionTime"])
    return 0.0


def _crash_loop(start: float, now: float) -> tuple[int, float, float]:
    """(crashes so far, time of the last one, back-off before the next) of a container
    that crashes as soon as it starts, first at ``start``."""
    count, at, back_off = 1, start, _CRASH_BACK_OFF_START
    while at + back_off <= now:
        if back_off >= _CRASH_BACK_OFF_MAX:
            # Steady state: one crash every five minutes; no need to walk them one by one.
            extra = int((now - at) // back_off)
            return count + extra, at + extra * back_off, back_off
        at += back_off
        count += 1
        back_off = min(back_off * 2, _CRASH_BACK_OFF_MAX)
    return count, at, back_off


def _pod_ip(uid: str) -> str:
    n = int(hashlib.sha256(uid.encode()).hexdigest(), 16)
    return f"10.244.{(n >> 8) % 256}.{n % 254 + 1}"


def _qos_class(pod: Object) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    return "Burstable" if any(c.get("resources") for c in containers) else "BestEffort"
