"""The kubelet of the devcluster's one node: Pod status and Pod Events over simulated time.

For every Pod a ReplicaSet controls, the kubelet does what a real one would:

- ``ready_after`` simulated seconds after the Pod was created it pulls the
  images, init containers first, one after the other (each runs a second and
  exits 0), then the containers. Whether a pull works is the
  :class:`~devcluster.controllers.failures.FailureRules`' call first, then
  the :class:`~devcluster.controllers.catalog.ImageCatalog`'s; a reference it
  cannot parse waits in InvalidImageName.
- The container then runs (Ready at once: no probe to pass), crash-loops, or
  never becomes Ready; failed pulls alternate ErrImagePull and
  ImagePullBackOff. :mod:`devcluster.controllers.lifecycle` has the timings
  (the kubelet's back-offs).
- A Pod marked for deletion (``deletionTimestamp``) is stopped: each running
  container exits :data:`STOP_SECONDS` after SIGTERM (after its ``preStop``
  sleep, if any), or is killed when the grace period ends; then the Pod
  reports its terminal phase and is deleted.
- It writes ``status`` as the kubelet does (phase, the five conditions,
  container states, ``lastState``, ``restartCount``, ``started``, image IDs)
  and the kubelet's and the scheduler's Events: Scheduled, Pulling, Pulled,
  Failed, BackOff, InspectFailed, Created, Started, Killing, Unhealthy.

Failure rules and the catalogue apply to running Pods at once (their
timelines are worked out again from the start). A Pod nobody controls keeps
the status it was given, and goes at once when it is deleted.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from devcluster.controllers.catalog import (
    Found,
    ImageCatalog,
    Missing,
    Pending,
    Resolution,
    found,
    not_found,
)
from devcluster.controllers.events import NORMAL, WARNING, EventRecorder, Source
from devcluster.controllers.failures import (
    CRASH_LOOP_BACK_OFF,
    IMAGE_PULL_BACK_OFF,
    UNREADY,
    Failure,
    FailureRules,
)
from devcluster.controllers.lifecycle import (
    RESYNC,
    Phase,
    Step,
    Termination,
    completes,
    creating,
    failed_pulls,
    go_duration,
    invalid_image,
    runs,
    stopped,
)
from devcluster.controllers.objects import NODE_NAME, controller_of, parse_time
from devcluster.controllers.references import (
    ImageReference,
    InvalidReference,
    go_quote,
    parse_reference,
)
from devcluster.controllers.work import Work
from devcluster.store import timestamp

Object = dict[str, Any]

KUBELET: Final = Source("kubelet", NODE_NAME)
#: Seconds a running container takes to exit after SIGTERM.
STOP_SECONDS: Final = 1.0
#: Seconds an init container runs before it exits 0.
INIT_RUNS_FOR: Final = 1.0
_NODE_IP: Final = "10.0.0.10"
_PROBE_PERIOD: Final = 10
# ``sleep N`` ending an exec preStop hook's command.
_SLEEP_COMMAND: Final = re.compile(r"(?:^|\s)sleep\s+(\d+)\s*$")
INIT: Final = "initContainers"
MAIN: Final = "containers"
# Phases in which a container that never started is still waiting.
_WAITING: Final = (Phase.CREATING, Phase.PULL_FAILED, Phase.PULL_BACK_OFF, Phase.INVALID_IMAGE)


class Kubelet:
    """Runs every queued Pod that a ReplicaSet controls."""

    def __init__(
        self,
        work: Work,
        rules: FailureRules,
        catalog: ImageCatalog,
        events: EventRecorder,
        ready_after: float,
    ) -> None:
        self._work = work
        self.rules = rules
        self.catalog = catalog
        self._events = events
        self.ready_after = ready_after
        self._pods: dict[str, _PodLife] = {}
        # Images pulled on the node: later Pods find them "already present".
        self._pulled: set[str] = set()

    def forget(self, uid: str) -> None:
        self._pods.pop(uid, None)

    def run(self, now: float) -> None:
        work = self._work
        for namespace, name in work.take("pods"):
            pod = work.store.get("pods", namespace, name)
            if pod is None:
                continue
            if controller_of(pod) is None:
                # Not ours to run; once deleted, its (unrun) containers are gone at once.
                if pod["metadata"].get("deletionTimestamp"):
                    work.delete("pods", namespace, name)
                continue
            work.visits["pods"] += 1
            life = self._life_of(pod, now)
            passed = life.advance(now)
            self._report(pod, life, passed, now)
            status = life.status(pod)
            if status != pod.get("status"):
                pod = work.update("pods", {**pod, "status": status})
            if life.ended:
                # The terminal status went first, as the kubelet's status manager sends it.
                work.delete("pods", namespace, name)
                self.forget(life.uid)
                continue
            work.due_at.set(("pods", namespace, name), life.next_change(now))

    # --- a Pod's life ------------------------------------------------------------

    def _life_of(self, pod: Object, now: float) -> _PodLife:
        """The Pod's life, worked out again when something it depends on changed."""
        meta = pod["metadata"]
        inputs = (
            self.rules.generation,
            self.catalog.generation,
            self.ready_after,
            _images(pod),
            meta.get("deletionTimestamp"),
            meta.get("deletionGracePeriodSeconds"),
        )
        old = self._pods.get(meta["uid"])
        if old is not None and old.inputs == inputs and not old.retry_due(now):
            return old
        life = _PodLife(meta["uid"], self._work.created(pod), inputs)
        if meta.get("deletionTimestamp"):
            grace = float(meta.get("deletionGracePeriodSeconds") or 0)
            if old is not None and old.killed_at is not None:
                life.killed_at = old.killed_at
            elif old is not None:
                life.killed_at = now  # seen the moment it was marked
            else:  # a kubelet that started after the mark: when the API server made it
                life.killed_at = parse_time(meta["deletionTimestamp"]) - grace
            life.deadline = life.killed_at + grace
        if old is not None:
            life.carry_over(old, now)
        self._plan(life, pod, now)
        self._pods[meta["uid"]] = life
        return life

    def _plan(self, life: _PodLife, pod: Object, now: float) -> None:
        """Each container's timeline, or all of them pulling while the catalogue has no answer."""
        spec = pod.get("spec") or {}
        init_specs: list[Object] = list(spec.get("initContainers") or [])
        specs: list[Object] = list(spec.get("containers") or [])
        decisions = [self._decide(c) for c in [*init_specs, *specs]]
        start = max(life.created + self.ready_after, life.not_before)
        # A Pod with init containers shows PodInitializing, not ContainerCreating, for every
        # container not created yet (the kubelet's default waiting state).
        initializing = bool(init_specs)
        if any(isinstance(d.resolution, Pending) for d in decisions):
            life.retry_at = max(now, start) + RESYNC
            life.init = [
                _Container(c, INIT, _waiting(life, c), None, initializing) for c in init_specs
            ]
            life.main = [_Container(c, MAIN, _waiting(life, c), None, initializing) for c in specs]
            return
        blocked = False
        for c, decision in zip(init_specs, decisions, strict=False):
            if blocked:
                life.init.append(_Container(c, INIT, _waiting(life, c), None, initializing))
                continue
            sidecar = c.get("restartPolicy") == "Always"
            steps = self._timeline(life, c, decision, start, init=not sidecar)
            life.init.append(_Container(c, INIT, steps, decision, initializing))
            done = start if sidecar else _completion(decision, start)
            if done is None:
                blocked = True  # what follows waits for good
            else:
                start = done + RESYNC
        for c, decision in zip(specs, decisions[len(init_specs) :], strict=True):
            if blocked:
                life.main.append(_Container(c, MAIN, _waiting(life, c), None, initializing))
            else:
                steps = self._timeline(life, c, decision, start, init=False)
                life.main.append(_Container(c, MAIN, steps, decision, initializing))

    def _decide(self, container: Object) -> _Decision:
        image = str(container.get("image", ""))
        try:
            reference = parse_reference(image)
        except InvalidReference as exc:
            return _Decision(image, None, None, None, str(exc))
        failure = self.rules.lookup(image)
        resolution: Resolution
        if failure is not None and failure.reason == IMAGE_PULL_BACK_OFF:
            resolution = not_found(reference)
        elif failure is not None:
            resolution = found(reference)
        else:
            resolution = self.catalog.resolve(reference)
        return _Decision(image, reference, resolution, failure, None)

    @staticmethod
    def _timeline(
        life: _PodLife, spec: Object, decision: _Decision, start: float, *, init: bool
    ) -> Iterator[Step]:
        steps: Iterator[Step]
        if decision.invalid is not None:
            steps = invalid_image(start)
        elif isinstance(decision.resolution, Missing):
            steps = failed_pulls(start)
        elif decision.failure is not None and decision.failure.reason == CRASH_LOOP_BACK_OFF:
            steps = runs(start, decision.failure.runs_for)
        elif init:
            steps = completes(start, INIT_RUNS_FOR)
        else:
            steps = runs(start, None)
        return _ending(life, spec, itertools.chain([creating(life.created)], steps))

    # --- Events ------------------------------------------------------------------

    def _report(
        self, pod: Object, life: _PodLife, passed: list[tuple[_Container, Step]], now: float
    ) -> None:
        """Events for what happened since the last visit, each at the simulated time it happened."""
        if life.reported_until < life.created:
            self._events.record_scheduled(pod, NODE_NAME, life.created)
        if life.killed_at is not None and not life.killing_reported:
            life.killing_reported = True
            for container in life.containers:
                if container.running_at(life.killed_at):
                    message = f"Stopping container {container.name}"
                    self._say(pod, container, NORMAL, "Killing", message, life.killed_at)
        for container, step in passed:
            if step.at > life.reported_until:
                self._report_step(pod, container, step)
        for container in life.containers:
            for at in container.probes(life.reported_until, now, life.killed_at):
                message = f"Readiness probe failed: {container.probe_failure(pod)}"
                self._say(pod, container, WARNING, "Unhealthy", message, at)
        life.reported_until = max(life.reported_until, now)

    def _report_step(self, pod: Object, container: _Container, step: Step) -> None:
        decision = container.decision
        if decision is None:
            return
        quoted = go_quote(decision.image)

        def say(type_: str, reason: str, message: str) -> None:
            self._say(pod, container, type_, reason, message, step.at)

        if step.phase is Phase.INVALID_IMAGE:
            say(WARNING, "InspectFailed", decision.invalid or "")
            say(WARNING, "Failed", "Error: InvalidImageName")
        elif step.phase is Phase.PULL_FAILED:
            say(NORMAL, "Pulling", f"Pulling image {quoted}")
            say(WARNING, "Failed", f"Failed to pull image {quoted}: {decision.pull_error}")
            say(WARNING, "Failed", "Error: ErrImagePull")
        elif step.phase is Phase.PULL_BACK_OFF:
            say(NORMAL, "BackOff", f"Back-off pulling image {quoted}")
            say(WARNING, "Failed", "Error: ImagePullBackOff")
        elif step.phase is Phase.RUNNING:
            if (
                container.spec.get("imagePullPolicy") == "Always"
                or decision.image not in self._pulled
            ):
                self._pulled.add(decision.image)
                took = go_duration(self.ready_after)
                size = decision.resolution.size if isinstance(decision.resolution, Found) else 0
                say(NORMAL, "Pulling", f"Pulling image {quoted}")
                say(
                    NORMAL,
                    "Pulled",
                    f"Successfully pulled image {quoted} in {took} ({took} including waiting)."
                    f" Image size: {size} bytes.",
                )
            else:
                say(NORMAL, "Pulled", f"Container image {quoted} already present on machine")
            say(NORMAL, "Created", f"Created container: {container.name}")
            say(NORMAL, "Started", f"Started container {container.name}")
        elif step.phase is Phase.CRASH_BACK_OFF:
            message = (
                f"Back-off restarting failed container {container.name} in pod {_pod_key(pod)}"
            )
            say(WARNING, "BackOff", message)

    def _say(
        self, pod: Object, container: _Container, type_: str, reason: str, message: str, at: float
    ) -> None:
        self._events.record(
            pod, type_, reason, message, KUBELET, at, field_path=container.field_path
        )


@dataclass(frozen=True)
class _Decision:
    """What pulling a container's image comes to."""

    image: str
    reference: ImageReference | None
    resolution: Resolution | None
    failure: Failure | None
    #: The kubelet's message when the reference does not parse.
    invalid: str | None

    @property
    def pull_error(self) -> str:
        return self.resolution.error if isinstance(self.resolution, Missing) else ""

    @property
    def ready_when_running(self) -> bool:
        return self.failure is None or self.failure.reason not in (CRASH_LOOP_BACK_OFF, UNREADY)

    @property
    def probes_fail(self) -> bool:
        return self.failure is not None and self.failure.reason == UNREADY


class _Container:
    """One container's timeline: where it is now and what comes next."""

    def __init__(
        self,
        spec: Object,
        kind: str,
        steps: Iterator[Step],
        decision: _Decision | None = None,
        initializing: bool = False,
    ) -> None:
        self.spec = spec
        self.name = str(spec.get("name", ""))
        self.field_path = f"spec.{kind}{{{self.name}}}"
        self.init = kind == INIT and spec.get("restartPolicy") != "Always"
        self.decision = decision
        #: In a Pod with init containers: waits as PodInitializing until created.
        self.initializing = initializing
        self._steps = iter(steps)
        self.current = next(self._steps)
        self.upcoming = next(self._steps, None)

    def advance(self, now: float) -> list[Step]:
        """Moves to ``now``; the steps entered on the way, in order."""
        passed: list[Step] = []
        while self.upcoming is not None and self.upcoming.at <= now:
            self.current = self.upcoming
            self.upcoming = next(self._steps, None)
            passed.append(self.current)
        return passed

    @property
    def ended(self) -> bool:
        return self.upcoming is None and self.current.phase in (Phase.EXITED, Phase.STOPPED)

    @property
    def ready(self) -> bool:
        return (
            self.current.phase is Phase.RUNNING
            and not self.init
            and self.decision is not None
            and self.decision.ready_when_running
        )

    @property
    def initialized(self) -> bool:
        """An init container that has done its part (exited 0, or a sidecar that started)."""
        step = self.current
        if not self.init:
            return step.phase is Phase.RUNNING or step.has_run
        return step.terminated is not None and step.terminated.exit_code == 0

    def running_at(self, at: float) -> bool:
        return self.current.phase is Phase.RUNNING and self.current.at <= at

    def probes(self, since: float, until: float, killed_at: float | None) -> list[float]:
        """When the failing readiness probe ran in (since, until] (a container never Ready)."""
        step = self.current
        if (
            self.decision is None
            or not self.decision.probes_fail
            or step.phase is not Phase.RUNNING
        ):
            return []
        assert step.started_at is not None
        first, period = self._probe_schedule(step.started_at)
        if killed_at is not None:
            until = min(until, killed_at)
        index = 0 if since < first else math.floor((since - first) / period) + 1
        times: list[float] = []
        while (at := first + index * period) <= until:
            times.append(at)
            index += 1
        return times

    def next_probe(self, now: float) -> float | None:
        step = self.current
        if (
            self.decision is None
            or not self.decision.probes_fail
            or step.phase is not Phase.RUNNING
        ):
            return None
        assert step.started_at is not None
        first, period = self._probe_schedule(step.started_at)
        if now < first:
            return first
        return first + (math.floor((now - first) / period) + 1) * period

    def _probe_schedule(self, started_at: float) -> tuple[float, float]:
        probe = self.spec.get("readinessProbe") or {}
        delay = float(probe.get("initialDelaySeconds") or 0)
        period = float(probe.get("periodSeconds") or _PROBE_PERIOD)
        return started_at + delay, period

    def probe_failure(self, pod: Object) -> str:
        """What the failing readiness probe says, by its kind."""
        probe = self.spec.get("readinessProbe") or {}
        if "tcpSocket" in probe:
            port = probe["tcpSocket"].get("port", "")
            return f"dial tcp {_pod_ip(pod['metadata']['uid'])}:{port}: connect: connection refused"
        if "exec" in probe:
            return ""
        return "HTTP probe failed with statuscode: 503"

    def status(self, pod: Object) -> Object:
        """This container's entry in ``containerStatuses`` / ``initContainerStatuses``."""
        step, decision = self.current, self.decision
        reference = decision.reference if decision is not None else None
        uid = pod["metadata"]["uid"]
        status: Object = {
            "name": self.name,
            "state": self._state(pod),
            "lastState": {"terminated": _terminated(step.last, uid, self.name)}
            if step.last
            else {},
            "ready": self.ready,
            "restartCount": step.restarts,
            "image": str(self.spec.get("image", "")),
            "imageID": "",
            "started": step.phase is Phase.RUNNING,
        }
        if step.has_run and reference is not None and decision is not None:
            digest = decision.resolution.digest if isinstance(decision.resolution, Found) else ""
            status["image"] = reference.normalized
            status["imageID"] = f"{reference.repository}@{digest}"
            status["containerID"] = _container_id(uid, self.name, step.run)
        return status

    def _state(self, pod: Object) -> Object:
        step, decision = self.current, self.decision
        if step.phase is Phase.RUNNING:
            assert step.started_at is not None
            return {"running": {"startedAt": timestamp(step.started_at)}}
        if step.terminated is not None:
            return {"terminated": _terminated(step.terminated, pod["metadata"]["uid"], self.name)}
        if decision is None or step.phase is Phase.CREATING:
            reason = "PodInitializing" if self.initializing else "ContainerCreating"
            return {"waiting": {"reason": reason}}
        message = ""
        if step.phase is Phase.PULL_FAILED:
            message = decision.pull_error
        elif step.phase is Phase.PULL_BACK_OFF:
            message = (
                f"Back-off pulling image {go_quote(decision.image)}: ErrImagePull:"
                f" {decision.pull_error}"
            )
        elif step.phase is Phase.INVALID_IMAGE:
            message = decision.invalid or ""
        elif step.phase is Phase.CRASH_BACK_OFF:
            message = (
                f"back-off {go_duration(step.back_off)} restarting failed container={self.name}"
                f" pod={_pod_key(pod)}"
            )
        return {"waiting": {"reason": step.phase.value, "message": message}}


class _PodLife:
    """One Pod as the kubelet runs it: its containers, and what it already reported."""

    def __init__(self, uid: str, created: float, inputs: tuple[Any, ...]) -> None:
        self.uid = uid
        self.created = created
        self.inputs = inputs
        self.init: list[_Container] = []
        self.main: list[_Container] = []
        self.killed_at: float | None = None
        self.deadline = math.inf
        #: Pulls wait for the catalogue's answer until then (None: answered).
        self.retry_at: float | None = None
        #: No pull starts before this (an answer that came late).
        self.not_before = -math.inf
        #: Events are written for what happened up to here.
        self.reported_until = -math.inf
        self.killing_reported = False
        #: (status, since) of the Ready and Initialized conditions.
        self.ready: tuple[bool, float] = (False, created)
        self.initialized: tuple[bool, float] | None = None

    def carry_over(self, old: _PodLife, now: float) -> None:
        """What a life worked out again keeps of the one before."""
        self.reported_until = old.reported_until
        self.killing_reported = old.killing_reported
        self.ready = old.ready
        self.initialized = old.initialized
        self.not_before = now if old.retry_at is not None else old.not_before

    @property
    def containers(self) -> list[_Container]:
        return [*self.init, *self.main]

    def retry_due(self, now: float) -> bool:
        return self.retry_at is not None and now >= self.retry_at

    def advance(self, now: float) -> list[tuple[_Container, Step]]:
        passed = [(c, step) for c in self.containers for step in c.advance(now)]
        return sorted(passed, key=lambda item: item[1].at)

    @property
    def ended(self) -> bool:
        return self.killed_at is not None and all(c.ended for c in self.containers)

    def next_change(self, now: float) -> float | None:
        times = [c.upcoming.at for c in self.containers if c.upcoming is not None]
        times += [t for c in self.containers if (t := c.next_probe(now)) is not None]
        if self.retry_at is not None:
            times.append(self.retry_at)
        return min(times, default=None)

    def status(self, pod: Object) -> Object:
        """``status`` as the kubelet writes it for ``pod`` now."""
        uid = pod["metadata"]["uid"]
        created_at = timestamp(self.created)
        terminal = self.ended
        initialized = all(c.initialized for c in self.init)
        if self.initialized is None or self.initialized[0] != initialized:
            done = max((c.current.at for c in self.init), default=self.created)
            self.initialized = (initialized, done if initialized else self.created)
        ready = initialized and all(c.ready for c in self.main)
        if ready != self.ready[0]:
            if ready:
                since = max(c.current.started_at or c.current.at for c in self.main)
            else:
                since = min((c.current.at for c in self.main if not c.ready), default=self.created)
            self.ready = (ready, max(since, self.ready[1]))

        def condition(
            type_: str, true: bool, since: float, reason: str = "", message: str = ""
        ) -> Object:
            fields: Object = {
                "type": type_,
                "status": "True" if true else "False",
                "lastProbeTime": None,
                "lastTransitionTime": timestamp(since),
            }
            if reason:
                fields["reason"] = reason
            if message:
                fields["message"] = message
            return fields

        if terminal:
            end = max(c.current.at for c in self.containers)
            ready_conditions = [
                condition("Ready", False, end, "PodCompleted"),
                condition("ContainersReady", False, end, "PodCompleted"),
            ]
        elif ready:
            ready_conditions = [
                condition("Ready", True, self.ready[1]),
                condition("ContainersReady", True, self.ready[1]),
            ]
        else:
            unready = " ".join(c.name for c in self.main if not c.ready)
            message = f"containers with unready status: [{unready}]"
            ready_conditions = [
                condition("Ready", False, self.ready[1], "ContainersNotReady", message),
                condition("ContainersReady", False, self.ready[1], "ContainersNotReady", message),
            ]
        if initialized:
            init_condition = condition("Initialized", True, self.initialized[1])
        else:
            pending = " ".join(c.name for c in self.init if not c.initialized)
            init_condition = condition(
                "Initialized",
                False,
                self.initialized[1],
                "ContainersNotInitialized",
                f"containers with incomplete status: [{pending}]",
            )
        sandbox = (
            condition(
                "PodReadyToStartContainers", False, max(c.current.at for c in self.containers)
            )
            if terminal
            else condition("PodReadyToStartContainers", True, self.created)
        )
        status: Object = {
            "phase": self._phase(initialized),
            "conditions": [
                sandbox,
                init_condition,
                *ready_conditions,
                condition("PodScheduled", True, self.created),
            ],
            "hostIP": _NODE_IP,
            "hostIPs": [{"ip": _NODE_IP}],
            "podIP": _pod_ip(uid),
            "podIPs": [{"ip": _pod_ip(uid)}],
            "startTime": created_at,
        }
        if self.init:
            status["initContainerStatuses"] = [c.status(pod) for c in self.init]
        status["containerStatuses"] = [c.status(pod) for c in self.main]
        status["qosClass"] = _qos_class(pod)
        return status

    def _phase(self, initialized: bool) -> str:
        """The kubelet's getPhase for a Pod whose restartPolicy is Always."""
        if self.ended:
            exits = [c.current.terminated for c in self.main]
            succeeded = all(t is not None and t.exit_code == 0 for t in exits)
            return "Succeeded" if succeeded else "Failed"
        if not initialized:
            return "Pending"
        if any(c.current.phase in _WAITING and not c.current.has_run for c in self.main):
            return "Pending"
        return "Running"


def _waiting(life: _PodLife, spec: Object) -> Iterator[Step]:
    """A container that does not start (yet): its image pending, or init containers stuck."""
    return _ending(life, spec, iter([creating(life.created)]))


def _ending(life: _PodLife, spec: Object, steps: Iterator[Step]) -> Iterator[Step]:
    """``steps``, cut short if the Pod is being deleted."""
    if life.killed_at is None:
        return steps
    return stopped(steps, life.killed_at, life.deadline, STOP_SECONDS + _pre_stop(spec))


def _completion(decision: _Decision, start: float) -> float | None:
    """When an init container exits 0, or None when it never will."""
    if decision.invalid is not None or isinstance(decision.resolution, Missing):
        return None
    if decision.failure is not None and decision.failure.reason == CRASH_LOOP_BACK_OFF:
        return None
    return start + INIT_RUNS_FOR


def _pre_stop(container: Object) -> float:
    """Seconds a ``preStop`` hook keeps a container up: its ``sleep`` (action or command)."""
    hook = ((container.get("lifecycle") or {}).get("preStop")) or {}
    sleep = hook.get("sleep") or {}
    if isinstance(sleep.get("seconds"), int):
        return float(sleep["seconds"])
    command = " ".join(str(part) for part in ((hook.get("exec") or {}).get("command") or []))
    match = _SLEEP_COMMAND.search(command)
    return float(match.group(1)) if match else 0.0


def _terminated(termination: Termination, uid: str, name: str) -> Object:
    fields: Object = {"exitCode": termination.exit_code, "reason": termination.reason}
    if termination.message:
        fields["message"] = termination.message
    fields["startedAt"] = (
        timestamp(termination.started_at) if termination.started_at is not None else None
    )
    fields["finishedAt"] = (
        timestamp(termination.finished_at) if termination.finished_at is not None else None
    )
    if termination.started_at is not None:
        fields["containerID"] = _container_id(uid, name, termination.run)
    return fields


def _images(pod: Object) -> tuple[str, ...]:
    spec = pod.get("spec") or {}
    return tuple(
        str(c.get("image", ""))
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    )


def _container_id(uid: str, name: str, run: int) -> str:
    """A new ID for each run of a container, as the runtime gives each one."""
    return "containerd://" + hashlib.sha256(f"{uid}/{name}/{run}".encode()).hexdigest()


def _pod_key(pod: Object) -> str:
    """The kubelet's ``format.Pod``: ``name_namespace(uid)``."""
    meta = pod["metadata"]
    return f"{meta['name']}_{meta.get('namespace', '')}({meta['uid']})"


def _pod_ip(uid: str) -> str:
    n = int(hashlib.sha256(uid.encode()).hexdigest(), 16)
    return f"10.244.{(n >> 8) % 256}.{n % 254 + 1}"


def _qos_class(pod: Object) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    return "Burstable" if any(c.get("resources") for c in containers) else "BestEffort"
