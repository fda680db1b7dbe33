"""Everything the contract offers, as domain calls over one Kubernetes access.

:func:`operations` wires the use cases together for one kind of workload (the
Deployment today); the gRPC servicer calls them and knows nothing else. A test
or an embedder builds one over any :class:`~kubeupdate.kube.api.DeploymentApi`;
without a :class:`~kubeupdate.kube.api.WatchApi` (an API that cannot list or
watch), reads and unwaited changes work and rollout calls are UNAVAILABLE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubeupdate.containers import DEFAULT_ATTEMPTS, DEFAULT_BACKOFF, ContainerImages
from kubeupdate.guarded.leases import RecordLeases
from kubeupdate.guarded.rollouts import GuardedRollouts
from kubeupdate.guarded.terms import LeaseTerms
from kubeupdate.guarded.verdicts import GuardedVerdicts
from kubeupdate.kube.api import DeploymentApi, LeaseApi, WatchApi
from kubeupdate.rollouts.history import RolloutHistory
from kubeupdate.rollouts.settings import RolloutSettings
from kubeupdate.rollouts.status import RolloutStatus
from kubeupdate.rollouts.tracking import RolloutTracking
from kubeupdate.rollouts.waits import RolloutWaits
from kubeupdate.undos import ImageUndos
from kubeupdate.updates import ImageUpdates
from kubeupdate.workloads.access import WorkloadAccess
from kubeupdate.workloads.deployments import DEPLOYMENT
from kubeupdate.workloads.kinds import WorkloadKind

if TYPE_CHECKING:
    from kubeupdate.image_checks import ImageChecks


@dataclass(frozen=True)
class Operations:
    """The use cases, one per group of RPCs."""

    #: GetContainerImage, ListContainerImages.
    images: ContainerImages
    #: SetContainerImage (the plain write, or waited and maybe rolled back).
    updates: ImageUpdates
    #: UndoContainerImage (an earlier revision's image, as a set).
    undos: ImageUndos
    #: GetRolloutStatus, WatchRollout.
    status: RolloutStatus
    #: ListRevisions.
    history: RolloutHistory
    #: The shared watches every rollout call reads (``open_watches`` counts them).
    tracking: RolloutTracking
    #: GetGuardedRollout; None without access to Leases.
    verdicts: GuardedVerdicts | None = None
    #: Guarded rollouts (what the guardian finishes); None when waits are not guarded.
    guarded: GuardedRollouts | None = None

    async def close(self) -> None:
        """Stop the shared watches: once the server that calls these has stopped."""
        await self.tracking.close()


def operations(
    api: DeploymentApi,
    watch_api: WatchApi | None = None,
    settings: RolloutSettings | None = None,
    *,
    kind: WorkloadKind = DEPLOYMENT,
    attempts: int = DEFAULT_ATTEMPTS,
    backoff: float = DEFAULT_BACKOFF,
    lease_api: LeaseApi | None = None,
    checks: ImageChecks | None = None,
    guard: LeaseTerms | None = None,
    identity: str = "kubeupdate",
) -> Operations:
    """The use cases over ``api`` (``watch_api`` for rollouts, ``lease_api`` for guarded ones).

    ``checks`` asks registries about images before writes (see :mod:`kubeupdate.image_checks`).
    """
    settings = settings or RolloutSettings()
    access = WorkloadAccess(api, kind, watch_api)
    images = ContainerImages(access, attempts=attempts, backoff=backoff)
    tracking = RolloutTracking(access, settings)
    waits = RolloutWaits(tracking, images)
    history = RolloutHistory(access)
    verdicts = guarded = None
    if lease_api is not None and watch_api is not None:
        leases = RecordLeases(lease_api)
        verdicts = GuardedVerdicts(leases, tracking.informers())
        if guard is not None:
            guarded = GuardedRollouts(
                leases, images, waits, watch_api.clock, identity=identity, terms=guard
            )
    return Operations(
        images=images,
        updates=ImageUpdates(images, waits, settings, checks, guarded),
        undos=ImageUndos(images, history, waits, settings),
        status=RolloutStatus(tracking),
        history=history,
        tracking=tracking,
        verdicts=verdicts,
        guarded=guarded,
    )
