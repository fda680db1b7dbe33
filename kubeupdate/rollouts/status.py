"""A rollout's state now (from plain reads), and as a stream of changes (from watches).

Both are judged by :func:`~kubeupdate.rollouts.judgement.judge`, as a waited
change is: the same objects give the same verdict, whoever asks. The Pods are
best-effort here too: when they cannot be read, the verdict is the
workload's own rule's, with a warning.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from kubeupdate import errors
from kubeupdate.kube import errors as kube_errors
from kubeupdate.kube.api import PODS, JsonObject
from kubeupdate.rollouts.judgement import RolloutReport, judge, pods_unavailable
from kubeupdate.rollouts.tracking import RolloutTracking, failure_cause
from kubeupdate.targets import Target

log = logging.getLogger(__name__)


class RolloutStatus:
    """GetRolloutStatus and WatchRollout, for one kind of workload."""

    def __init__(self, tracking: RolloutTracking) -> None:
        self._tracking = tracking
        self._access = tracking.access

    async def now(self, target: Target, *, deadline: float | None = None) -> RolloutReport:
        """The rollout state now, from plain reads, judged at the cluster's time."""
        namespace, name = target.namespace, target.name
        clock = self._access.watch_api().clock
        obj = await self._access.read(namespace, name, deadline=deadline)
        warnings: tuple[str, ...] = ()
        try:
            pods = await self._current_pods(namespace, obj, deadline)
        except (errors.KubeupdateError, kube_errors.KubeError) as exc:
            cause = failure_cause(exc, "list", namespace)
            warning = pods_unavailable(self._access.kind.name, namespace, name, cause)
            log.warning("%s", warning)
            pods, warnings = [], (warning,)
        judgement = judge(
            self._access.kind,
            obj,
            pods,
            now=clock.now(),
            grace=self._tracking.settings.stuck_grace,
            warnings=warnings,
        )
        return judgement.report

    async def watch(
        self, target: Target, *, deadline: float | None = None
    ) -> AsyncIterator[RolloutReport]:
        """The current report, then one per change, until a terminal state."""
        namespace, name = target.namespace, target.name
        obj = await self._access.read(namespace, name, deadline=deadline)
        generation = (obj.get("metadata") or {}).get("generation", 0)
        async with contextlib.aclosing(
            self._tracking.follow(
                namespace,
                name,
                until=None,
                deadline=deadline,
                # Never older than what was just read.
                generation=generation if isinstance(generation, int) else 0,
            )
        ) as reports:
            async for report in reports:
                yield report

    async def _current_pods(
        self, namespace: str, obj: JsonObject, deadline: float | None
    ) -> list[JsonObject]:
        current = await self._access.kind.current_pods(
            self._access, namespace, obj, deadline=deadline
        )
        if current is None or not current.selector:
            return []
        pods = await self._access.list(
            PODS, namespace, label_selector=current.selector, deadline=deadline
        )
        return [pod for pod in pods if current.holds(pod)]
