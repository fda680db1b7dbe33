"""A rollout's state now (from plain reads), and as a stream of changes (from watches)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from kubeupdate.kube.api import PODS
from kubeupdate.rollouts.judgement import RolloutReport, assess
from kubeupdate.rollouts.tracking import RolloutTracking, owned_by
from kubeupdate.targets import Target


class RolloutStatus:
    """GetRolloutStatus and WatchRollout, for one kind of workload."""

    def __init__(self, tracking: RolloutTracking) -> None:
        self._tracking = tracking
        self._access = tracking.access

    async def now(self, target: Target, *, deadline: float | None = None) -> RolloutReport:
        """The rollout state now, from plain reads (no fail-fast: a snapshot has no grace)."""
        namespace, name = target.namespace, target.name
        kind = self._access.kind
        obj = await self._access.read(namespace, name, deadline=deadline)
        current = await kind.current_pods(self._access, namespace, obj, deadline=deadline)
        if current is None or not current.selector:
            return assess(kind.progress(obj))
        pods = await self._access.list(
            PODS, namespace, label_selector=current.selector, deadline=deadline
        )
        return assess(kind.progress(obj, owned_by(pods, current.owner)))

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
