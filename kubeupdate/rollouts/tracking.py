"""Following a rollout as watches deliver it: the reports, as they change, until it ends.

A rollout is followed from the shared informers (:mod:`kubeupdate.kube.informers`),
never by polling and never with watches of its own: every follow in a
namespace reads the same three caches, so the Kubernetes API sees one list and
one watch per resource and namespace however many rollouts are followed.

- the workload itself, by name;
- the objects that hold its revisions (a Deployment's ReplicaSets), by owner:
  once the controller has made the current revision, its Pods are known;
- the Pods of that revision, by owner.

Every change is judged by :func:`~kubeupdate.rollouts.judgement.judge`, the
same pure rule a status call applies, at the cluster's time
(:class:`~kubeupdate.kube.clock.ClusterClock`). The follow also looks again
when the judgement says time alone could change its verdict (a Pod in trouble
reaching the grace), and when the cluster's clock is found to have jumped:
while a grace runs, the API server's time is read again (``GET /version``) at
least every ``clock_sync`` seconds, so a clock stepped on either side (or the
devcluster's simulated one, moved by a test) is noticed.

The revisions and Pods only make a failure known sooner: they are
best-effort. When they cannot be listed or watched (no permission, a proxy
that answers oddly), the follow goes on with the workload's own rule
(kubectl's, for a Deployment), says so in every report's ``warnings`` and
logs it once. Only the workload's own watch is essential. An API server out
of reach only delays the follow (the informers try again until it is back).

A shared cache may not have seen the write that started the rollout yet:
``generation`` (the workload's ``metadata.generation`` after the write) holds
the judgement back until it has.

:meth:`RolloutTracking.follow` yields a report per change until a terminal
state, ``until`` (TIMED_OUT, not an error) or the caller's deadline
(:class:`~kubeupdate.errors.DeadlineExceeded` with the last status; the
follow stops ``deadline_margin`` before it so the answer still reaches the
caller). A follow is a coroutine: no thread, no connection of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import replace
from types import TracebackType

from kubeupdate import errors
from kubeupdate.kube import errors as kube_errors
from kubeupdate.kube.api import PODS, JsonObject, Resource
from kubeupdate.kube.informers import Informers, Name, Owner, Reader
from kubeupdate.kube.translation import translate_error
from kubeupdate.rollouts.judgement import RolloutReport, RolloutState, judge, pods_unavailable
from kubeupdate.rollouts.settings import RolloutSettings
from kubeupdate.workloads.access import WorkloadAccess
from kubeupdate.workloads.kinds import RevisionPods

log = logging.getLogger(__name__)


class RolloutTracking:
    """Follows rollouts of one kind of workload from shared informers (made on first use)."""

    def __init__(self, access: WorkloadAccess, settings: RolloutSettings) -> None:
        self.access = access
        self.settings = settings
        self._informers: Informers | None = None
        #: Rollouts being followed right now (waits and streams), for metrics.
        self.following = 0

    def informers(self) -> Informers:
        """The shared informers; UNAVAILABLE when the access cannot watch."""
        if self._informers is None:
            self._informers = Informers(
                self.access.watch_api(),
                linger=self.settings.watch_linger,
                watch_seconds=self.settings.watch_seconds,
            )
        return self._informers

    @property
    def open_watches(self) -> int:
        """Watches (Kubernetes connections) open right now, for tests and metrics."""
        return 0 if self._informers is None else self._informers.open_watches

    def answer_by(self, deadline: float | None, start: float) -> float | None:
        """When a follow that starts at ``start`` must give up to answer before ``deadline``.

        A follow whose ``until`` comes no later ends TIMED_OUT instead of raising
        :class:`~kubeupdate.errors.DeadlineExceeded`.
        """
        if deadline is None:
            return None
        margin = min(self.settings.deadline_margin, max(0.0, deadline - start) * 0.2)
        return deadline - margin

    async def close(self) -> None:
        """Stop the shared watches (at shutdown, once no follow runs)."""
        if self._informers is not None:
            await self._informers.close()

    async def follow(
        self,
        namespace: str,
        name: str,
        *,
        until: float | None,
        deadline: float | None,
        start: float | None = None,
        generation: int = 0,
    ) -> AsyncGenerator[RolloutReport, None]:
        """Reports as the rollout changes, until it ends; see the module's docstring.

        ``until`` and ``deadline`` are ``time.monotonic()`` values; ``start`` is
        when the caller's clock for ``until`` started (for the TIMED_OUT message).
        ``generation`` is the oldest ``metadata.generation`` of the workload
        the judgement may use (the caller's own write, or read).
        """
        start = time.monotonic() if start is None else start
        stop_at = self.answer_by(deadline, start)
        kind = self.access.kind
        clock = self.access.watch_api().clock
        recheck: float | None = None  # monotonic: when time alone may change the verdict
        last: RolloutReport | None = None
        async with _Tracker(self, namespace, name, generation) as tracker:
            while True:
                wake = [t for t in (until, stop_at, recheck) if t is not None]
                if recheck is not None:  # a grace runs: the cluster's clock must be current
                    wake.append(time.monotonic() + self.settings.clock_sync)
                await tracker.changed(min(wake) if wake else None)
                if recheck is not None:
                    await self._sync_clock(deadline)
                tracker.update()
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
                judgement = judge(
                    kind,
                    tracker.workload(),
                    tracker.pods(),
                    now=clock.now(),
                    grace=self.settings.stuck_grace,
                    warnings=tracker.warnings,
                )
                report, recheck_at = judgement.report, judgement.recheck_at
                recheck = None if recheck_at is None else clock.local(recheck_at)
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

    async def _sync_clock(self, deadline: float | None) -> None:
        """Read the cluster's time again if no answer told it lately (best-effort)."""
        api = self.access.watch_api()
        if api.clock.age() < self.settings.clock_sync:
            return
        try:
            await api.read_clock(deadline=deadline)
        except kube_errors.KubeError as exc:
            log.info("could not read the Kubernetes API's clock: %s", exc)

    def _deadline_error(
        self, namespace: str, name: str, last: RolloutReport | None
    ) -> errors.DeadlineExceeded:
        status = last.message if last is not None else "no status received yet"
        return errors.DeadlineExceeded(
            f"the caller's deadline passed before the rollout of {self.access.kind.name} "
            f"{namespace}/{name} finished; last status: {status}"
        )


class _Tracker:
    """What one follow reads from the shared informers: the workload, its revisions, their Pods."""

    def __init__(
        self, tracking: RolloutTracking, namespace: str, name: str, generation: int
    ) -> None:
        self._tracking = tracking
        self._kind = tracking.access.kind
        self._informers = tracking.informers()
        self._namespace = namespace
        self._name = name
        self._generation = generation
        self._event = asyncio.Event()
        self._readers = contextlib.ExitStack()
        self._uid = ""  # of the workload, once seen
        self._current: RevisionPods | None = None
        self._clock = tracking.access.watch_api().clock
        self._unlisten: Callable[[], None] = lambda: None
        #: Why the revisions and Pods are not looked at (once they could not be).
        self.warnings: tuple[str, ...] = ()

    def _read(self, resource: Resource) -> Reader:
        return self._readers.enter_context(
            self._informers.read(resource, self._namespace, wake=self._event.set)
        )

    async def __aenter__(self) -> _Tracker:
        self._workloads = self._read(self._kind.resource)
        self._workloads.follow(Name(self._namespace, self._name))
        self._revisions = self._read(self._kind.revision_resource)
        self._pods = self._read(PODS)
        self._event.set()  # the caches may be warm already: look at once
        # Pod timestamps are the cluster's: when its clock turns out to have jumped, judge again.
        self._unlisten = self._clock.listen(self._event.set)
        self._tracking.following += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._unlisten()
        self._tracking.following -= 1
        self._readers.close()

    @property
    def ready(self) -> bool:
        """The workload is known as of the caller's write, and the Pods too once their
        revision is (unless they cannot be read)."""
        if not self._workloads.synced:
            return False
        obj = self._workloads.get(self._name)
        if obj is None:
            return bool(self._uid)  # deleted after it was seen; else not seen yet
        if _generation(obj) < self._generation:
            return False  # the cache has not seen the caller's write yet
        return self._current is None or self._pods.synced

    def workload(self) -> JsonObject:
        obj = self._workloads.get(self._name)
        if obj is None:
            raise errors.NotFound(
                f'{self._kind.name} "{self._name}" was deleted from namespace "{self._namespace}"',
                reason=self._kind.not_found,
                metadata={"namespace": self._namespace, self._kind.name: self._name},
            )
        return obj

    def pods(self) -> list[JsonObject]:
        current = self._current
        if current is None:
            return []
        return [pod for pod in self._pods.owned_by(current.owner_uid) if current.holds(pod)]

    async def changed(self, until: float | None) -> None:
        """Return when something changed, or at ``until`` (monotonic)."""
        timeout = None if until is None else max(0.0, until - time.monotonic())
        # asyncio.timeout, not wait_for: no task per wake, which a thousand waits feel.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()
        self._event.clear()
        exc = self._workloads.error
        if isinstance(exc, kube_errors.KubeError):
            raise translate_error(exc, "list or watch", self._namespace) from exc
        if exc is not None:
            raise exc
        if self.warnings:
            return
        # The Pods matter once their revision is known.
        for reader in (self._revisions, self._pods) if self._current else (self._revisions,):
            if reader.error is not None:
                self._give_up_pods(reader.error, reader.key.resource.plural)
                return

    def _give_up_pods(self, exc: BaseException, plural: str) -> None:
        """Go on without the revisions and Pods (they only make a failure known sooner)."""
        cause = failure_cause(exc, "list or watch", self._namespace)
        warning = pods_unavailable(self._kind.name, self._namespace, self._name, cause)
        log.warning("%s (%s)", warning, plural)
        self.warnings = (warning,)
        if self._current is not None:
            self._pods.unfollow(Owner(self._current.owner_uid))
        self._current = None

    def update(self) -> None:
        """Follow the workload's revisions, then the Pods of the current one."""
        obj = self._workloads.get(self._name)
        if obj is None or self.warnings:
            return
        uid = str((obj.get("metadata") or {}).get("uid", ""))
        if uid != self._uid:  # first seen, or deleted and created again
            if self._uid:
                self._revisions.unfollow(Owner(self._uid))
            self._uid = uid
            self._revisions.follow(Owner(uid))
        if not self._revisions.synced:
            return
        current = self._kind.revision_pods(obj, self._revisions.owned_by(uid))
        if current == self._current:
            return
        # Pods of a revision that is no longer (or not yet known to be) the current
        # one say nothing about this rollout: a rollback must not fail on the Pods
        # of the revision it replaced. None: not made yet, look again at the next change.
        if self._current is not None:
            self._pods.unfollow(Owner(self._current.owner_uid))
        self._current = current
        if current is not None:
            self._pods.follow(Owner(current.owner_uid))


def failure_cause(exc: BaseException, verb: str, namespace: str) -> str:
    """What went wrong, in the words a domain error would use (``verb`` for a 403)."""
    if isinstance(exc, errors.KubeupdateError):
        return exc.message
    if isinstance(exc, kube_errors.KubeError):
        with contextlib.suppress(kube_errors.KubeError):  # one translation does not know
            return translate_error(exc, verb, namespace).message
    return str(exc) or type(exc).__name__


def _generation(obj: JsonObject) -> int:
    generation = (obj.get("metadata") or {}).get("generation", 0)
    return generation if isinstance(generation, int) else 0
