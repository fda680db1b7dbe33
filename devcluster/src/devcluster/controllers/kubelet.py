"""The kubelet: what a Pod's status says, as a function of simulated time and failure rules.

A Pod created by a ReplicaSet shows ``ContainerCreating`` until ``ready_after``
simulated seconds have passed, then runs and is Ready, unless
:class:`FailureRules` say its image fails:

- ``ImagePullBackOff``: ``ErrImagePull`` after ``ready_after``, then
  ``ImagePullBackOff`` after twice that, for good (a real kubelet alternates
  the two);
- ``CrashLoopBackOff``: the container starts, crashes at once and is restarted
  with the kubelet's back-off (10 s, 20 s, ... 300 s), never Ready.

Failure rules apply to running Pods at once. Pods are deleted at once (no
Terminating phase, no grace period); a Pod nobody controls keeps the status it
was given.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
from collections.abc import Iterable
from typing import Any, Final

from devcluster.controllers.objects import controller_of
from devcluster.controllers.work import Work
from devcluster.store import timestamp

Object = dict[str, Any]

IMAGE_PULL_BACK_OFF: Final = "ImagePullBackOff"
CRASH_LOOP_BACK_OFF: Final = "CrashLoopBackOff"

#: Images that fail unless told otherwise: a tag ending in ``-bad`` cannot be
#: pulled; a tag containing ``crash`` starts and crashes. Globs over the whole
#: image reference (so ``reg:5000/crashy/app:1`` matches the second one too).
DEFAULT_FAILURE_RULES: Final = (
    ("*:*-bad", IMAGE_PULL_BACK_OFF),
    ("*:*crash*", CRASH_LOOP_BACK_OFF),
)

_NODE_IP: Final = "10.0.0.10"
# The kubelet's crash-loop back-off: 10 s doubling up to 5 min.
_CRASH_BACK_OFF_START: Final = 10.0
_CRASH_BACK_OFF_MAX: Final = 300.0


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


class Kubelet:
    """Writes the status of every queued Pod that a ReplicaSet controls.

    A Pod's status is a pure function of its creation time, ``now``,
    ``ready_after`` and the rules; a memo skips Pods whose inputs did not
    change, and a timer wakes each Pod when its status next changes.
    """

    def __init__(self, work: Work, rules: FailureRules, ready_after: float) -> None:
        self._work = work
        self.rules = rules
        self.ready_after = ready_after
        # Pod uid -> (resourceVersion, rules generation, ready_after, next status change).
        self._memo: dict[str, tuple[str, int, float, float]] = {}

    def forget(self, uid: str) -> None:
        self._memo.pop(uid, None)

    def run(self, now: float) -> None:
        work = self._work
        generation = self.rules.generation
        for namespace, name in work.take("pods"):
            pod = work.store.get("pods", namespace, name)
            if pod is None or controller_of(pod) is None:
                continue  # not ours: a Pod nobody runs keeps the status it was given
            work.visits["pods"] += 1
            uid = pod["metadata"]["uid"]
            memo = self._memo.get(uid)
            inputs = (pod["metadata"]["resourceVersion"], generation, self.ready_after)
            if memo is None or memo[:3] != inputs or now >= memo[3]:
                status = self._pod_status(pod, now)
                if status != pod.get("status"):
                    pod = work.update("pods", {**pod, "status": status})
                upcoming = [t for t in self._pod_changes(pod, now) if t > now]
                version = pod["metadata"]["resourceVersion"]
                memo = (version, generation, self.ready_after, min(upcoming, default=math.inf))
                self._memo[uid] = memo
            work.due_at.set(("pods", namespace, name), memo[3] if memo[3] < math.inf else None)

    def _pod_changes(self, pod: Object, now: float) -> list[float]:
        """The simulated times at which this Pod's status will change next."""
        start = self._work.created(pod) + self.ready_after
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
        created = self._work.created(pod)
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
            "hostIP": _NODE_IP,
            "hostIPs": [{"ip": _NODE_IP}],
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
