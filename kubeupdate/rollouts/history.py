"""A workload's revisions, as ``kubectl rollout history`` lists them."""

from __future__ import annotations

from kubeupdate import names
from kubeupdate.workloads.access import WorkloadAccess
from kubeupdate.workloads.kinds import Revision


class RolloutHistory:
    """ListRevisions, for one kind of workload."""

    def __init__(self, access: WorkloadAccess) -> None:
        self._access = access

    async def revisions(
        self, namespace: str, name: str, *, deadline: float | None = None
    ) -> list[Revision]:
        """Every revision kept, newest first."""
        names.check_namespace(namespace)
        names.check_deployment(name)
        obj = await self._access.read(namespace, name, deadline=deadline)
        return await self._access.kind.revisions(self._access, namespace, obj, deadline=deadline)
