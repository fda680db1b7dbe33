"""A workload's revisions, as ``kubectl rollout history`` lists them."""

from __future__ import annotations

from kubeupdate.targets import Target
from kubeupdate.workloads.access import WorkloadAccess
from kubeupdate.workloads.kinds import Revision


class RolloutHistory:
    """ListRevisions, for one kind of workload."""

    def __init__(self, access: WorkloadAccess) -> None:
        self._access = access

    async def revisions(self, target: Target, *, deadline: float | None = None) -> list[Revision]:
        """Every revision kept, newest first."""
        obj = await self._access.read(target.namespace, target.name, deadline=deadline)
        return await self._access.kind.revisions(
            self._access, target.namespace, obj, deadline=deadline
        )
