"""Following a rollout as watches deliver it: the reports, as they change, until it ends.

A rollout is followed with two reflectors (:class:`~kubeupdate.kube.reflector.Reflector`),
never by polling:

- one lists and watches the workload itself (``fieldSelector=metadata.name=<name>``),
  resuming after a dropped connection and listing again after 410 Expired;
- once the controller has made the current revision, a second one watches the
  Pods of that revision (for a Deployment, ``labelSelector=pod-template-hash=<hash>``).
  A container of those Pods waiting in ImagePullBackOff, ErrImagePull,
  InvalidImageName or CrashLoopBackOff for longer than ``stuck_grace`` fails
  the rollout at once.

:meth:`RolloutTracking.follow` yields a report per change until a terminal
state, ``until`` (TIMED_OUT, not an error) or the caller's deadline
(:class:`~kubeupdate.errors.DeadlineExceeded` with the last status; the
follow stops ``deadline_margin`` before it so the answer still reaches the
caller). A follow is a coroutine and two watch connections: no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from dataclasses import replace
from types import TracebackType

from kubeupdate import errors
from kubeupdate.kube import errors as kube_errors
from kubeupdate.kube.api import PODS, JsonObject
from kubeupdate.kube.reflector import Reflector
from kubeupdate.kube.translation import translate_error
from kubeupdate.rollouts.judgement import RolloutReport, RolloutState, assess
from kubeupdate.rollouts.settings import RolloutSettings
from kubeupdate.workloads.access import WorkloadAccess
from kubeupdate.workloads.pods import stuck_pods


class RolloutTracking:
    """Follows rollouts of one kind of workload; counts the watches it holds open."""

    def __init__(self, access: WorkloadAccess, settings: RolloutSettings) -> None:
        self.access = access
        self.settings = settings
        #: Watches (Kubernetes connections) open right now, for tests and metrics.
        self.open_watches = 0

    async def follow(
        self,
        namespace: str,
        name: str,
        *,
        until: float | None,
        deadline: float | None,
        start: float | None = None,
    ) -> AsyncGenerator[RolloutReport, None]:
        """Reports as the rollout changes, until it ends; see the module's docstring.

        ``until`` and ``deadline`` are ``time.monotonic()`` values; ``start`` is
        when the caller's clock for ``until`` started (for the TIMED_OUT message).
        """
        start = time.monotonic() if start is None else start
        stop_at = _margin_end(deadline, self.settings, start)
        grace = self.settings.stuck_grace
        kind = self.access.kind
        stuck_since: dict[tuple[str, str], float] = {}
        last: RolloutReport | None = None
        async with _Tracker(self, namespace, name, deadline) as tracker:
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
                        raise self._deadline_error(namespace, name, last)
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
                report = assess(kind.progress(tracker.workload(), pods), overdue)
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
                    raise self._deadline_error(namespace, name, report)

    def _deadline_error(
        self, namespace: str, name: str, last: RolloutReport | None
    ) -> errors.DeadlineExceeded:
        status = last.message if last is not None else "no status received yet"
        return errors.DeadlineExceeded(
            f"the caller's deadline passed before the rollout of {self.access.kind.name} "
            f"{namespace}/{name} finished; last status: {status}"
        )


class _Tracker:
    """The reflectors of one rollout: the workload, then the Pods of its current revision."""

    def __init__(
        self, tracking: RolloutTracking, namespace: str, name: str, deadline: float | None
    ) -> None:
        self._tracking = tracking
        self._access = tracking.access
        self._kind = tracking.access.kind
        self._api = tracking.access.watch_api()
        self._settings = tracking.settings
        self._namespace = namespace
        self._name = name
        self._deadline = deadline
        self._event = asyncio.Event()
        self._workloads = Reflector(
            self._api,
            self._kind.resource,
            namespace,
            field_selector=f"metadata.name={name}",
            on_change=self._event.set,
            watch_seconds=self._settings.watch_seconds,
        )
        self._pods: Reflector | None = None
        self._pods_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._resolved: tuple[str, int] | None = None  # (uid, revision) whose Pods we looked up
        self._owner = ""

    async def __aenter__(self) -> _Tracker:
        self._start(self._workloads)
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
            self._tracking.open_watches += 1
            try:
                await reflector.run()
            finally:
                self._tracking.open_watches -= 1
                self._event.set()

        task = asyncio.create_task(run(), name=f"watch {reflector.resource.plural}")
        self._tasks.append(task)
        return task

    @property
    def ready(self) -> bool:
        """The workload is known, and the Pods too once their revision is."""
        if not self._workloads.synced:
            return False
        return self._pods is None or self._pods.synced

    def workload(self) -> JsonObject:
        obj = self._workloads.objects.get(self._name)
        if obj is None:
            raise errors.NotFound(
                f'{self._kind.name} "{self._name}" was deleted from namespace "{self._namespace}"'
            )
        return obj

    def pods(self) -> list[JsonObject]:
        if self._pods is None:
            return []
        return owned_by(list(self._pods.objects.values()), self._owner)

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
        """Find the Pods of the current revision once the controller has made it."""
        obj = self._workloads.objects.get(self._name)
        if obj is None or not self._workloads.synced:
            return
        progress = self._kind.progress(obj)
        if not progress.observed or progress.revision == 0:
            return  # the revision is not the new one yet
        key = (str((obj.get("metadata") or {}).get("uid", "")), progress.revision)
        if key == self._resolved:
            return
        current = await self._kind.current_pods(
            self._access, self._namespace, obj, deadline=self._deadline
        )
        if current is None:
            return  # not created yet: look again at the next change
        self._resolved = key
        if self._owner == current.owner:
            return
        self._owner = current.owner
        if self._pods is not None:
            await self._stop_pods()
        if not current.selector:
            return
        self._pods = Reflector(
            self._api,
            PODS,
            self._namespace,
            label_selector=current.selector,
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


def owned_by(objects: list[JsonObject], owner: str) -> list[JsonObject]:
    """The objects whose ownerReferences name ``owner``."""
    return [
        obj
        for obj in objects
        if any(
            ref.get("name") == owner
            for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
        )
    ]


def _margin_end(deadline: float | None, settings: RolloutSettings, start: float) -> float | None:
    """When a follow must give up to answer before the caller's deadline."""
    if deadline is None:
        return None
    margin = min(settings.deadline_margin, max(0.0, deadline - start) * 0.2)
    return deadline - margin
