"""Rollouts: waiting for one to finish, following it, rolling it back, its history.

The state of a rollout is kubectl's rule (:func:`kubeupdate.rollout_status.rollout_status`)
applied to the Deployment as a **watch** delivers it, never polled:

- a :class:`~kubeupdate.kube.reflector.Reflector` lists and watches the one
  Deployment (``fieldSelector=metadata.name=<name>``), resuming after a dropped
  connection and listing again after 410 Expired;
- once the controller has observed the change, the new ReplicaSet is found
  (owned by the Deployment, same revision) and a second reflector watches its
  Pods (``labelSelector=pod-template-hash=<hash>``). A container of those Pods
  waiting in ImagePullBackOff, ErrImagePull, InvalidImageName or
  CrashLoopBackOff for longer than ``stuck_grace`` fails the rollout at once,
  instead of after the Deployment's progress deadline (10 minutes by default).

Ends of a wait, in the words of the contract: COMPLETE or FAILED when the
rollout says so; TIMED_OUT when the request's timeout passes (not an error);
:class:`~kubeupdate.errors.DeadlineExceeded` carrying the last status when the
caller's own deadline comes first. The wait stops a little before that
deadline (``deadline_margin``) so the answer still reaches the caller. A wait
is a coroutine and two watch connections: no thread.

Rollback is a compare-and-swap (:meth:`DeploymentImages.restore_container_image`):
it never undoes a change someone else made meanwhile.

This module does not know gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

from kubeupdate import errors
from kubeupdate.deployments import (
    ChangeRecord,
    ContainerImage,
    DeploymentImages,
    ImageChange,
    container_images,
    translate_error,
)
from kubeupdate.kube import errors as kube_errors
from kubeupdate.kube.api import DEPLOYMENTS, PODS, REPLICA_SETS, JsonObject, WatchApi
from kubeupdate.kube.reflector import DEFAULT_WATCH_SECONDS, Reflector
from kubeupdate.rollout_status import (
    CHANGE_CAUSE_ANNOTATION,
    POD_TEMPLATE_HASH_LABEL,
    PROGRESS_DEADLINE_EXCEEDED,
    REVISION_ANNOTATION,
    RolloutFailed,
    StuckPod,
    condition,
    rollout_status,
    stuck_pods,
)

log = logging.getLogger(__name__)

MAX_REASON_LENGTH = 256


class RolloutState(enum.Enum):
    """Where a rollout stands (the contract's ``Rollout.State``)."""

    PROGRESSING = "progressing"
    COMPLETE = "complete"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    ROLLED_BACK = "rolled_back"

    @property
    def terminal(self) -> bool:
        return self is not RolloutState.PROGRESSING


@dataclass(frozen=True)
class RolloutReport:
    """The state of a rollout at one moment."""

    state: RolloutState
    reason: str
    message: str
    replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    revision: int = 0
    #: Seconds the wait lasted (waited answers only).
    duration: float | None = None
    failed_image: str = ""
    restored_image: str = ""


@dataclass(frozen=True)
class RolloutSettings:
    """Server-side limits and delays of waits (``kubeupdate serve`` flags)."""

    #: The wait's timeout when the request sets none.
    default_timeout: float = 300.0
    #: Longer requested timeouts are cut to this.
    max_timeout: float = 1800.0
    #: How long a new Pod may wait in ImagePullBackOff & co. before the rollout fails.
    stuck_grace: float = 30.0
    #: timeoutSeconds of each watch request; the watch then starts again.
    watch_seconds: int = DEFAULT_WATCH_SECONDS
    #: A wait ends at most this long before the caller's deadline, to answer in time.
    deadline_margin: float = 0.25


@dataclass(frozen=True)
class Revision:
    """One revision of a Deployment: one of its ReplicaSets."""

    revision: int
    replica_set: str
    change_cause: str
    containers: list[ContainerImage]
    created: str  # RFC 3339, as Kubernetes writes creationTimestamp
    replicas: int


@dataclass(frozen=True)
class SetImageOutcome:
    """What :meth:`Rollouts.set_container_image` did."""

    change: ImageChange
    dry_run: bool
    rollout: RolloutReport | None


def check_options(
    *,
    wait: bool,
    timeout: float | None,
    rollback_on_failure: bool,
    dry_run: bool,
    reason: str,
    settings: RolloutSettings,
) -> float | None:
    """Check the options of a change; the wait's timeout in seconds (None: no wait)."""
    if wait and dry_run:
        raise errors.InvalidArgument(
            "Wait cannot be combined with DryRun: a dry run stores nothing, so no rollout starts"
        )
    if rollback_on_failure and not wait:
        raise errors.InvalidArgument(
            "RollbackOnFailure needs Wait: kubeupdate can only roll back a rollout it waited for"
        )
    if timeout is not None and not wait:
        raise errors.InvalidArgument("Timeout needs Wait: it bounds how long the call waits")
    if timeout is not None and timeout <= 0:
        raise errors.InvalidArgument(
            f"Timeout must be positive (got {timeout:g}s); leave it unset for the default "
            f"of {settings.default_timeout:g}s"
        )
    if len(reason) > MAX_REASON_LENGTH:
        raise errors.InvalidArgument(
            f"Reason is {len(reason)} characters long; at most {MAX_REASON_LENGTH} are allowed"
        )
    if not reason.isprintable():
        raise errors.InvalidArgument(
            "Reason must be printable text on one line: no control or formatting characters"
        )
    if not wait:
        return None
    if timeout is None:
        return min(settings.default_timeout, settings.max_timeout)
    return min(timeout, settings.max_timeout)


def assess(
    deployment: JsonObject, pods: list[JsonObject], stuck: StuckPod | None = None
) -> RolloutReport:
    """The report for a Deployment and the Pods of its new ReplicaSet.

    ``stuck`` is a Pod that has been stuck for longer than the grace: it
    fails a rollout that is not complete.
    """
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    annotations = (deployment.get("metadata") or {}).get("annotations") or {}
    progressing = condition(status, "Progressing") or {}

    def report(state: RolloutState, reason: str, message: str) -> RolloutReport:
        return RolloutReport(
            state=state,
            reason=reason,
            message=message.strip(),
            replicas=_int(spec.get("replicas", 1)),
            updated_replicas=_int(status.get("updatedReplicas")),
            ready_replicas=_int(status.get("readyReplicas")),
            available_replicas=_int(status.get("availableReplicas")),
            revision=_int(annotations.get(REVISION_ANNOTATION)),
        )

    try:
        message, done = rollout_status(deployment, pods=pods)
    except RolloutFailed as exc:
        return report(RolloutState.FAILED, PROGRESS_DEADLINE_EXCEEDED, str(exc))
    if done:
        return report(RolloutState.COMPLETE, str(progressing.get("reason", "")), message)
    if stuck is not None:
        detail = f": {stuck.message}" if stuck.message else ""
        return report(
            RolloutState.FAILED,
            stuck.reason,
            f"pod {stuck.pod}, container {stuck.container}: {stuck.reason}{detail}",
        )
    reason = str(progressing.get("reason", ""))
    if _int((deployment.get("metadata") or {}).get("generation")) > _int(
        status.get("observedGeneration")
    ):
        reason = "WaitingForObservation"  # the controller has not seen the change yet
    return report(RolloutState.PROGRESSING, reason, message)


class Rollouts:
    """Waits, streams, rollbacks and history, over a :class:`WatchApi`."""

    def __init__(
        self,
        images: DeploymentImages,
        api: WatchApi | None,
        settings: RolloutSettings | None = None,
    ) -> None:
        """Without ``api`` (a Kubernetes access that cannot watch), only unwaited changes work."""
        self._images = images
        self._api = api
        self.settings = settings or RolloutSettings()
        #: Watches (Kubernetes connections) open right now, for tests and metrics.
        self.open_watches = 0

    def watch_api(self) -> WatchApi:
        if self._api is None:
            raise errors.Unavailable("rollouts cannot be followed: this server cannot watch")
        return self._api

    async def set_container_image(
        self,
        namespace: str,
        deployment: str,
        container: str,
        image: str,
        *,
        identity: str,
        wait: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - the contract's Timeout option
        rollback_on_failure: bool = False,
        dry_run: bool = False,
        reason: str = "",
        deadline: float | None = None,
    ) -> SetImageOutcome:
        """Set the image, recording who and why; with ``wait``, follow the rollout."""
        start = time.monotonic()
        wait_for = check_options(
            wait=wait,
            timeout=timeout,
            rollback_on_failure=rollback_on_failure,
            dry_run=dry_run,
            reason=reason,
            settings=self.settings,
        )
        record = ChangeRecord(identity, reason)
        change = await self._images.set_container_image(
            namespace,
            deployment,
            container,
            image,
            deadline=deadline,
            dry_run=dry_run,
            record=record,
        )
        if wait_for is None:
            return SetImageOutcome(change, dry_run, None)
        report = await self.wait(
            namespace, deployment, until=start + wait_for, deadline=deadline, start=start
        )
        if rollback_on_failure and report.state in (RolloutState.FAILED, RolloutState.TIMED_OUT):
            report = await self._roll_back(change, report, identity, deadline)
        return SetImageOutcome(change, dry_run, replace(report, duration=time.monotonic() - start))

    async def _roll_back(
        self, change: ImageChange, report: RolloutReport, identity: str, deadline: float | None
    ) -> RolloutReport:
        if not change.changed:
            return replace(
                report,
                message=f"{report.message}; not rolled back: this call changed nothing "
                f"(the container already ran {change.image})",
            )
        restored, now = await self._images.restore_container_image(
            change.namespace,
            change.deployment,
            change.container,
            expected=change.image,
            image=change.previous_image,
            record=ChangeRecord(identity, f"rollout {report.state.value}: {report.reason}"),
            deadline=deadline,
        )
        if not restored:
            log.info(
                "not rolling back %s/%s: container %s now runs %s, set by someone else",
                change.namespace,
                change.deployment,
                change.container,
                now,
            )
            return replace(
                report,
                message=f"{report.message}; not rolled back: container {change.container} "
                f"now runs {now}, set by a newer change",
            )
        return replace(
            report,
            state=RolloutState.ROLLED_BACK,
            message=f"{report.message}; rolled back: container {change.container} runs "
            f"{change.previous_image} again instead of {change.image}",
            failed_image=change.image,
            restored_image=change.previous_image,
        )

    async def wait(
        self,
        namespace: str,
        deployment: str,
        *,
        until: float,
        deadline: float | None = None,
        start: float | None = None,
    ) -> RolloutReport:
        """Follow the rollout until it ends or ``until`` (monotonic) passes: the last report."""
        last: RolloutReport | None = None
        async with contextlib.aclosing(
            self._follow(namespace, deployment, until=until, deadline=deadline, start=start)
        ) as reports:
            async for report in reports:
                last = report
        assert last is not None
        return last

    async def status(
        self, namespace: str, deployment: str, *, deadline: float | None = None
    ) -> RolloutReport:
        """The rollout state now, from plain reads (no fail-fast: a snapshot has no grace)."""
        obj = await self._images.get_deployment(namespace, deployment, deadline=deadline)
        new = await self._new_replica_set(obj, namespace, deadline)
        pod_hash = (new or {}).get("metadata", {}).get("labels", {}).get(POD_TEMPLATE_HASH_LABEL)
        if new is None or not pod_hash:
            return assess(obj, [])
        try:
            listed = await self.watch_api().list_objects(
                PODS,
                namespace,
                label_selector=f"{POD_TEMPLATE_HASH_LABEL}={pod_hash}",
                deadline=deadline,
            )
        except kube_errors.KubeError as exc:
            raise translate_error(exc, "list", namespace) from exc
        return assess(obj, _owned_by(listed.get("items") or [], str(new["metadata"]["name"])))

    async def watch(
        self, namespace: str, deployment: str, *, deadline: float | None = None
    ) -> AsyncIterator[RolloutReport]:
        """The current report, then one per change, until a terminal state."""
        await self._images.get_deployment(namespace, deployment, deadline=deadline)
        async with contextlib.aclosing(
            self._follow(namespace, deployment, until=None, deadline=deadline)
        ) as reports:
            async for report in reports:
                yield report

    async def _follow(
        self,
        namespace: str,
        deployment: str,
        *,
        until: float | None,
        deadline: float | None,
        start: float | None = None,
    ) -> AsyncGenerator[RolloutReport, None]:
        start = time.monotonic() if start is None else start
        stop_at = _margin_end(deadline, self.settings, start)
        grace = self.settings.stuck_grace
        stuck_since: dict[tuple[str, str], float] = {}
        last: RolloutReport | None = None
        async with _Tracker(self, namespace, deployment, deadline) as tracker:
            while True:
                wake = [t for t in (until, stop_at) if t is not None]
                wake += [since + grace for since in stuck_since.values()]
                await tracker.changed(min(wake) if wake else None)
                await tracker.update()
                now = time.monotonic()
                if not tracker.ready:
                    if until is not None and now >= until:
                        yield RolloutReport(
                            RolloutState.TIMED_OUT,
                            "Timeout",
                            f"the rollout did not finish within {until - start:g}s: "
                            "no status was received from Kubernetes",
                        )
                        return
                    if stop_at is not None and now >= stop_at:
                        raise _deadline_error(namespace, deployment, last)
                    continue
                pods = tracker.pods()
                stuck = stuck_pods(pods)
                keys = {(s.pod, s.container) for s in stuck}
                for key in list(stuck_since):
                    if key not in keys:
                        del stuck_since[key]
                for key in keys:
                    stuck_since.setdefault(key, now)
                overdue = next(
                    (s for s in stuck if now - stuck_since[(s.pod, s.container)] >= grace), None
                )
                report = assess(tracker.deployment(), pods, overdue)
                if report != last:
                    last = report
                    yield report
                if report.state.terminal:
                    return
                if until is not None and now >= until:
                    yield replace(
                        report,
                        state=RolloutState.TIMED_OUT,
                        reason="Timeout",
                        message=f"the rollout did not finish within {until - start:g}s: "
                        f"{report.message}",
                    )
                    return
                if stop_at is not None and now >= stop_at:
                    raise _deadline_error(namespace, deployment, report)

    async def revisions(
        self, namespace: str, deployment: str, *, deadline: float | None = None
    ) -> list[Revision]:
        """The Deployment's revisions from its ReplicaSets, newest first."""
        obj = await self._images.get_deployment(namespace, deployment, deadline=deadline)
        replica_sets = await self._replica_sets(obj, namespace, deadline)
        found = [
            Revision(
                revision=_int(_annotations(rs).get(REVISION_ANNOTATION)),
                replica_set=str(rs["metadata"].get("name", "")),
                change_cause=str(_annotations(rs).get(CHANGE_CAUSE_ANNOTATION, "")),
                containers=container_images(rs),
                created=str(rs["metadata"].get("creationTimestamp", "")),
                replicas=_int((rs.get("status") or {}).get("replicas")),
            )
            for rs in replica_sets
        ]
        return sorted(found, key=lambda r: r.revision, reverse=True)

    async def _replica_sets(
        self, deployment: JsonObject, namespace: str, deadline: float | None
    ) -> list[JsonObject]:
        """The ReplicaSets the Deployment owns (by ownerReferences uid)."""
        uid = deployment["metadata"].get("uid")
        match = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(match.items())) or None
        try:
            listed = await self.watch_api().list_objects(
                REPLICA_SETS, namespace, label_selector=selector, deadline=deadline
            )
        except kube_errors.KubeError as exc:
            raise translate_error(exc, "list", namespace) from exc
        return [
            rs
            for rs in listed.get("items") or []
            if any(
                ref.get("uid") == uid and ref.get("controller")
                for ref in rs.get("metadata", {}).get("ownerReferences") or []
            )
        ]

    async def _new_replica_set(
        self, deployment: JsonObject, namespace: str, deadline: float | None
    ) -> JsonObject | None:
        """The ReplicaSet of the Deployment's current revision, once the controller made it."""
        meta = deployment.get("metadata") or {}
        status = deployment.get("status") or {}
        if _int(meta.get("generation")) > _int(status.get("observedGeneration")):
            return None  # the revision annotation is not the new one yet
        revision = _int((meta.get("annotations") or {}).get(REVISION_ANNOTATION))
        if revision == 0:
            return None
        replica_sets = await self._replica_sets(deployment, namespace, deadline)
        return next(
            (
                rs
                for rs in replica_sets
                if _int(_annotations(rs).get(REVISION_ANNOTATION)) == revision
            ),
            None,
        )


class _Tracker:
    """The reflectors of one rollout: the Deployment, then the Pods of its new ReplicaSet."""

    def __init__(
        self, rollouts: Rollouts, namespace: str, name: str, deadline: float | None
    ) -> None:
        self._rollouts = rollouts
        self._api = rollouts.watch_api()
        self._settings = rollouts.settings
        self._namespace = namespace
        self._name = name
        self._deadline = deadline
        self._event = asyncio.Event()
        self._deployments = Reflector(
            self._api,
            DEPLOYMENTS,
            namespace,
            field_selector=f"metadata.name={name}",
            on_change=self._event.set,
            watch_seconds=self._settings.watch_seconds,
        )
        self._pods: Reflector | None = None
        self._pods_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._resolved: tuple[str, int] | None = None  # (uid, revision) whose RS we looked up
        self._replica_set = ""

    async def __aenter__(self) -> _Tracker:
        self._start(self._deployments)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        # Wait for the connections to be closed before the call ends.
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self, reflector: Reflector) -> asyncio.Task[None]:
        async def run() -> None:
            self._rollouts.open_watches += 1
            try:
                await reflector.run()
            finally:
                self._rollouts.open_watches -= 1
                self._event.set()

        task = asyncio.create_task(run(), name=f"watch {reflector.resource.plural}")
        self._tasks.append(task)
        return task

    @property
    def ready(self) -> bool:
        """The Deployment is known, and the Pods too once their ReplicaSet is."""
        if not self._deployments.synced:
            return False
        return self._pods is None or self._pods.synced

    def deployment(self) -> JsonObject:
        obj = self._deployments.objects.get(self._name)
        if obj is None:
            raise errors.NotFound(
                f'deployment "{self._name}" was deleted from namespace "{self._namespace}"'
            )
        return obj

    def pods(self) -> list[JsonObject]:
        if self._pods is None:
            return []
        return _owned_by(list(self._pods.objects.values()), self._replica_set)

    async def changed(self, until: float | None) -> None:
        """Return when something changed, or at ``until`` (monotonic)."""
        timeout = None if until is None else max(0.0, until - time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                if isinstance(exc, kube_errors.Expired):
                    raise errors.Unavailable(
                        "the Kubernetes API keeps expiring the watch on the rollout"
                    ) from exc
                if isinstance(exc, kube_errors.KubeError):
                    raise translate_error(exc, "list or watch", self._namespace) from exc
                raise exc  # type: ignore[misc]

    async def update(self) -> None:
        """Find the new ReplicaSet once the controller has observed the change."""
        obj = self._deployments.objects.get(self._name)
        if obj is None or not self._deployments.synced:
            return
        meta = obj.get("metadata") or {}
        status = obj.get("status") or {}
        if _int(meta.get("generation")) > _int(status.get("observedGeneration")):
            return  # the revision annotation is not the new one yet
        key = (
            str(meta.get("uid", "")),
            _int((meta.get("annotations") or {}).get(REVISION_ANNOTATION)),
        )
        if key == self._resolved or key[1] == 0:
            return
        new = await self._rollouts._new_replica_set(obj, self._namespace, self._deadline)
        if new is None:
            return  # not created yet: look again at the next change
        self._resolved = key
        labels = new["metadata"].get("labels") or {}
        pod_hash = labels.get(POD_TEMPLATE_HASH_LABEL)
        if self._replica_set == new["metadata"]["name"]:
            return
        self._replica_set = str(new["metadata"]["name"])
        if self._pods is not None:
            await self._stop_pods()
        if not pod_hash:
            return
        self._pods = Reflector(
            self._api,
            PODS,
            self._namespace,
            label_selector=f"{POD_TEMPLATE_HASH_LABEL}={pod_hash}",
            on_change=self._event.set,
            watch_seconds=self._settings.watch_seconds,
        )
        self._pods_task = self._start(self._pods)

    async def _stop_pods(self) -> None:
        task, self._pods_task, self._pods = self._pods_task, None, None
        if task is not None:
            self._tasks.remove(task)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _margin_end(deadline: float | None, settings: RolloutSettings, start: float) -> float | None:
    """When a wait must give up to answer before the caller's deadline."""
    if deadline is None:
        return None
    margin = min(settings.deadline_margin, max(0.0, deadline - start) * 0.2)
    return deadline - margin


def _deadline_error(
    namespace: str, deployment: str, last: RolloutReport | None
) -> errors.DeadlineExceeded:
    status = last.message if last is not None else "no status received yet"
    return errors.DeadlineExceeded(
        f"the caller's deadline passed before the rollout of deployment "
        f"{namespace}/{deployment} finished; last status: {status}"
    )


def _owned_by(objects: list[JsonObject], owner: str) -> list[JsonObject]:
    return [
        obj
        for obj in objects
        if any(
            ref.get("name") == owner
            for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
        )
    ]


def _annotations(obj: JsonObject) -> dict[str, Any]:
    annotations = (obj.get("metadata") or {}).get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


__all__ = [
    "Revision",
    "RolloutReport",
    "RolloutSettings",
    "RolloutState",
    "Rollouts",
    "SetImageOutcome",
    "assess",
    "check_options",
]
