"""The deployment controller: ReplicaSets per pod template, rolling them, and the status it reports.

It follows kube-controller-manager's ``pkg/controller/deployment``:

- a template change creates a ReplicaSet ``<deployment>-<pod-template-hash>``
  (or re-activates the old one with the same template, as after ``kubectl
  rollout undo``) with revision = highest old revision + 1;
- RollingUpdate moves ``maxSurge``/``maxUnavailable`` Pods at a time as new Pods
  become available; Recreate scales the old ReplicaSets to zero first;
- status and conditions: Progressing ``NewReplicaSetCreated`` →
  ``ReplicaSetUpdated`` → ``NewReplicaSetAvailable``, or ``ProgressDeadlineExceeded``
  after ``progressDeadlineSeconds`` without progress;
- a change of replicas while several ReplicaSets are active (mid-rollout, or
  paused) is spread over them in proportion, as the controller's ``scale`` does;
- a new generation is noticed only ``observe_delay`` simulated seconds after
  the controller first saw it, so ``observedGeneration`` visibly lags a write,
  as it does in a cluster where the controller runs in another process;
- ``status.terminatingReplicas`` sums its ReplicaSets' (Pods being deleted),
  and Recreate waits until the old Pods are gone, not just marked;
- every resize is a ``ScalingReplicaSet`` Event ("Scaled up replica set
  web-5d4f8b9c7 from 0 to 3").
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable
from typing import Any, Final

from devcluster.controllers.events import DEPLOYMENT_CONTROLLER, NORMAL
from devcluster.controllers.objects import (
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    SAFE_ALPHABET,
    int_or,
    owner_reference,
    parse_time,
    pod_finished,
    status_count,
)
from devcluster.controllers.work import Work
from devcluster.store import ObjectExists, timestamp

Object = dict[str, Any]

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

# No progress deadline, as the API spells it.
_NO_DEADLINE: Final = 2**31 - 1
# Hash collisions tried before giving up on naming a new ReplicaSet (bounds a bug).
_MAX_COLLISIONS: Final = 200


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
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in str(value))


class DeploymentController:
    """Syncs every queued Deployment once the controller has noticed its generation."""

    def __init__(self, work: Work, observe_delay: float) -> None:
        self._work = work
        self.observe_delay = observe_delay
        # Deployment uid -> (generation, simulated time the controller first saw it).
        self._seen: dict[str, tuple[int, float]] = {}
        # Deployment uid -> resourceVersions of it and its ReplicaSets its last sync started
        # from: a queued Deployment whose inputs did not change needs no sync.
        self._memo: dict[str, tuple[str, ...]] = {}

    def forget(self, uid: str) -> None:
        self._seen.pop(uid, None)
        self._memo.pop(uid, None)

    def run(self, now: float) -> None:
        work = self._work
        for namespace, name in work.take("deployments"):
            deployment = work.store.get("deployments", namespace, name)
            if deployment is None:
                continue
            work.visits["deployments"] += 1
            if self._noticed(deployment, now):
                uid = deployment["metadata"]["uid"]
                # A sync that wrote something syncs again (its own writes are events, as in a
                # cluster); one that wrote nothing waits for a change or for its deadline.
                versions = _versions(
                    deployment, work.owned(deployment, "replicasets", same_namespace=False)
                )
                deadline = self._deadline(deployment)
                if self._memo.get(uid) != versions or (deadline is not None and now > deadline):
                    self._memo[uid] = versions
                    _DeploymentSync(self, work, deployment, now).run()
                    deployment = work.store.get("deployments", namespace, name) or deployment
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

    def replica_sets_of(self, deployment: Object) -> list[Object]:
        owned = self._work.owned(deployment, "replicasets", same_namespace=True)
        return sorted(owned, key=_creation_order)

    def pods_of(self, rs: Object) -> list[Object]:
        return self._work.owned(rs, "pods", same_namespace=True)

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
        self._work.due_at.set(key, lag if lag is not None and lag > now else None)
        deadline = self._deadline(deployment)
        self._work.due_after.set(
            key, deadline if deadline is not None and deadline >= now else None
        )

    def _deadline(self, deployment: Object) -> float | None:
        """When a stored rollout still progressing times out (a paused one never does)."""
        seconds = _progress_deadline(deployment)
        if seconds is None or (deployment.get("spec") or {}).get("paused"):
            return None
        return _timeout_at(deployment.get("status") or {}, seconds)


class _DeploymentSync:
    """One sync of one Deployment, as ``syncDeployment`` does it."""

    def __init__(
        self, controller: DeploymentController, work: Work, deployment: Object, now: float
    ) -> None:
        self.c = controller
        self.work = work
        self.d = _working_copy(deployment)
        self.now = now
        self.name = deployment["metadata"]["name"]
        self.namespace = deployment["metadata"]["namespace"]
        self.spec: Object = self.d.get("spec") or {}
        self.status: Object = self.d.setdefault("status", {})
        self.replicas = int_or(self.spec.get("replicas"), 1)

    def run(self) -> None:
        rss = self.c.replica_sets_of(self.d)
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
        new, old = self._new_and_old(self.c.replica_sets_of(self.d), create=False)
        self._finish(new, old, estimate_progress=True)

    def _recreate(self, rss: list[Object]) -> None:
        new, old = self._new_and_old(rss, create=False)
        scaled_down = False
        for rs in old:
            if int_or(rs["spec"].get("replicas"), 1):
                self._scale(rs, 0)
                scaled_down = True
        # oldPodsRunning: a Pod being deleted still runs until it has finished or is gone.
        old_running = any(not pod_finished(p) for rs in old for p in self.c.pods_of(rs))
        if not scaled_down and not old_running:
            if new is None:
                new, old = self._new_and_old(self.c.replica_sets_of(self.d), create=True)
            assert new is not None
            self._scale(new, self.replicas)
            if _complete(self.d, self.status, self.replicas):
                self._cleanup(old)
        new, old = self._new_and_old(self.c.replica_sets_of(self.d), create=False)
        self._finish(new, old, estimate_progress=True)

    def _reconcile_new(self, new: Object, old: list[Object]) -> bool:
        current = int_or(new["spec"].get("replicas"), 1)
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
        current_new = int_or(new["spec"].get("replicas"), 1) if new is not None else 0
        everyone = _spec_replicas(old) + current_new
        ceiling = self.replicas + surge
        if everyone >= ceiling:
            return current_new
        return current_new + min(ceiling - everyone, self.replicas - current_new)

    def _reconcile_old(self, new: Object, old: list[Object]) -> bool:
        if _spec_replicas(old) == 0:
            return False
        min_available = self.replicas - _max_unavailable(self.d)
        new_unavailable = int_or(new["spec"].get("replicas"), 1) - status_count(
            new, "availableReplicas"
        )
        budget = _spec_replicas([*old, new]) - min_available - new_unavailable
        if budget <= 0:
            return False
        # Unhealthy old Pods go first: removing them costs no availability.
        cleaned = 0
        remaining: list[Object] = []
        for rs in old:
            size = int_or(rs["spec"].get("replicas"), 1)
            unhealthy = size - status_count(rs, "availableReplicas")
            if cleaned < budget and size and unhealthy > 0:
                count = min(budget - cleaned, unhealthy)
                self._scale(rs, size - count)
                rs = self._latest(rs)
                cleaned += count
            remaining.append(rs)
        available = status_count(new, "availableReplicas") + sum(
            status_count(rs, "availableReplicas") for rs in remaining
        )
        scaled = 0
        if available > min_available:
            allowed = available - min_available
            for rs in remaining:
                size = int_or(rs["spec"].get("replicas"), 1)
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
        new, old = self._new_and_old(self.c.replica_sets_of(self.d), create=False)
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
            before = _annotation_int(rs, MAX_REPLICAS_ANNOTATION) or status_count(
                self.d, "replicas"
            )
            after = self.replicas + _max_surge(self.d)
            fraction = _round_half_up(size * after / before) - size if before else 0
        left = to_add - added
        return min(fraction, left) if to_add > 0 else max(fraction, left)

    def _saturated(self, new: Object) -> bool:
        """The new ReplicaSet runs every replica, sized for this count, all available."""
        return (
            _size(new) == self.replicas
            and _annotation_int(new, DESIRED_REPLICAS_ANNOTATION) == self.replicas
            and status_count(new, "availableReplicas") == self.replicas
        )

    def _cleanup(self, old: list[Object]) -> None:
        """Deletes the oldest idle ReplicaSets beyond revisionHistoryLimit."""
        limit = int_or(self.spec.get("revisionHistoryLimit"), 10)
        idle = [
            rs
            for rs in old
            if int_or(rs["spec"].get("replicas"), 1) == 0
            and status_count(rs, "replicas") == 0
            and rs["metadata"].get("generation", 0) <= status_count(rs, "observedGeneration")
        ]
        idle.sort(key=lambda rs: (_revision(rs), _creation_order(rs)))
        for rs in idle[: max(len(idle) - limit, 0)]:
            self.work.delete("replicasets", self.namespace, rs["metadata"]["name"])

    # --- ReplicaSets ---------------------------------------------------------

    def _latest(self, rs: Object) -> Object:
        current = self.work.store.get("replicasets", self.namespace, rs["metadata"]["name"])
        return current if current is not None else rs

    def _scale(self, rs: Object, replicas: int) -> bool:
        """Sets the size and the replica annotations; True if the size changed."""
        rs = self._latest(rs)
        annotations = dict(rs["metadata"].get("annotations") or {})
        annotations[DESIRED_REPLICAS_ANNOTATION] = str(self.replicas)
        annotations[MAX_REPLICAS_ANNOTATION] = str(self.replicas + _max_surge(self.d))
        resized = int_or(rs["spec"].get("replicas"), 1) != replicas
        meta = {**rs["metadata"], "annotations": annotations}
        if resized:
            meta["generation"] = meta.get("generation", 1) + 1
        self.work.update(
            "replicasets", {**rs, "metadata": meta, "spec": {**rs["spec"], "replicas": replicas}}
        )
        if resized:
            self._report_scaling(
                rs["metadata"]["name"], int_or(rs["spec"].get("replicas"), 1), replicas
            )
        return resized

    def _report_scaling(self, name: str, before: int, after: int) -> None:
        """The ScalingReplicaSet Event of a resize."""
        direction = "up" if after > before else "down"
        message = f"Scaled {direction} replica set {name} from {before} to {after}"
        self.work.events.record(
            self.d, NORMAL, "ScalingReplicaSet", message, DEPLOYMENT_CONTROLLER, self.now
        )

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
            rs = self.work.update(
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
        template = self.spec.get("template") or {}  # read only: each attempt copies it
        for _ in range(_MAX_COLLISIONS):
            collisions = int_or(self.status.get("collisionCount"), 0)
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
                    "ownerReferences": [owner_reference("Deployment", self.d)],
                },
                "spec": spec,
                "status": {"replicas": 0},
            }
            try:
                created = self.work.create("replicasets", rs)
            except ObjectExists:
                # A hash collision with someone else's ReplicaSet: count it, hash again.
                self.status["collisionCount"] = collisions + 1
                continue
            if _progress_deadline(self.d) is not None:
                message = f'Created new replica set "{name}"'
                _set_condition(
                    self.status, "Progressing", "True", _NEW_RS_CREATED, message, self.now
                )
            if spec["replicas"] > 0:
                self._report_scaling(name, 0, spec["replicas"])
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
        self.d = _working_copy(self.work.update("deployments", self.d))
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
        self.work.update("deployments", self.d)

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
                transition = parse_time(current["lastTransitionTime"])
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


def _working_copy(deployment: Object) -> Object:
    """A copy a sync may change: metadata, annotations and status are its own; the spec
    (the pod template most of all) is shared with the stored snapshot and only read."""
    meta = dict(deployment["metadata"])
    if "annotations" in meta:
        meta["annotations"] = dict(meta["annotations"])
    # Conditions are replaced, never changed in place: copying the list and each dict is enough.
    status = dict(deployment.get("status") or {})
    if "conditions" in status:
        status["conditions"] = [dict(c) for c in status["conditions"]]
    return {**deployment, "metadata": meta, "status": status}


def _size(rs: Object) -> int:
    return int_or(rs["spec"].get("replicas"), 1)


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
    replicas = int_or(spec.get("replicas"), 1)
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
    replicas = int_or((deployment.get("spec") or {}).get("replicas"), 1)
    if not _rolling_update(deployment) or replicas == 0:
        return 0
    return min(_fenceposts(deployment)[1], replicas)


def _progress_deadline(deployment: Object) -> int | None:
    seconds = int_or((deployment.get("spec") or {}).get("progressDeadlineSeconds"), 600)
    return None if seconds == _NO_DEADLINE else seconds


def _timeout_at(status: Object, seconds: int) -> float | None:
    """When a rollout times out without progress: the first instant *after* this one.

    None when no rollout is in progress (complete, already timed out, or never started).
    """
    progressing = _condition(status, "Progressing")
    if progressing is None or progressing.get("reason") in (_NEW_RS_AVAILABLE, _TIMED_OUT):
        return None
    return parse_time(progressing["lastUpdateTime"]) + seconds


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
    available = sum(status_count(rs, "availableReplicas") for rs in rss)
    counts = {
        "replicas": sum(status_count(rs, "replicas") for rs in rss),
        "updatedReplicas": status_count(new, "replicas") if new else 0,
        "readyReplicas": sum(status_count(rs, "readyReplicas") for rs in rss),
        "availableReplicas": available,
        "unavailableReplicas": max(_spec_replicas(rss) - available, 0),
    }
    # Zero counts are omitted, as Go's omitempty writes them.
    status: Object = {"observedGeneration": deployment["metadata"].get("generation", 0)}
    status |= {k: v for k, v in counts.items() if v}
    status["conditions"] = [dict(c) for c in previous.get("conditions") or []]
    if previous.get("collisionCount") is not None:
        status["collisionCount"] = previous["collisionCount"]
    terminating = _terminating_replicas(rss)
    if terminating is not None:
        status["terminatingReplicas"] = terminating
    replicas = int_or((deployment.get("spec") or {}).get("replicas"), 1)
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


def _terminating_replicas(rss: list[Object]) -> int | None:
    """GetTerminatingReplicaCountForReplicaSets: None if a ReplicaSet that was synced lacks it."""
    total = 0
    for rs in rss:
        status = rs.get("status") or {}
        if "terminatingReplicas" not in status:
            if status_count(rs, "observedGeneration") == 0:
                continue  # never synced by its controller yet
            return None
        total += int(status["terminatingReplicas"])
    return total


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
