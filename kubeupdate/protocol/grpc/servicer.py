"""The gRPC face of the domain: protobuf in, domain call, protobuf out.

Nothing else happens here. The target of each call is checked once
(:func:`~kubeupdate.protocol.grpc.targets.target_of`: the security
interceptor has usually done it already). Errors are raised as domain errors
and turned into statuses by
:class:`~kubeupdate.protocol.grpc.interceptors.ErrorStatusInterceptor`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import grpc.aio
from google.protobuf import duration_pb2, timestamp_pb2
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from kubeupdate import approvals, caller, errors, image_checks
from kubeupdate.containers import ImageChange
from kubeupdate.image_checks import CheckedImage
from kubeupdate.operations import Operations
from kubeupdate.patches import RecordedChange
from kubeupdate.protocol.grpc.targets import target_of
from kubeupdate.rollouts.judgement import RolloutReport, RolloutState
from kubeupdate.undos import UndoOutcome
from kubeupdate.updates import SetImageOutcome, check_wait

if TYPE_CHECKING:
    from kubeupdate.metrics import ServiceMetrics

Context = grpc.aio.ServicerContext[Any, Any]

_STATES = {
    RolloutState.PROGRESSING: pb.Rollout.STATE_PROGRESSING,
    RolloutState.COMPLETE: pb.Rollout.STATE_COMPLETE,
    RolloutState.FAILED: pb.Rollout.STATE_FAILED,
    RolloutState.TIMED_OUT: pb.Rollout.STATE_TIMED_OUT,
    RolloutState.ROLLED_BACK: pb.Rollout.STATE_ROLLED_BACK,
    RolloutState.PAUSED: pb.Rollout.STATE_PAUSED,
}
# google.protobuf.Duration's own bounds (about 10,000 years).
_MAX_DURATION_SECONDS = 315_576_000_000


class DeploymentImageServicer(pb_grpc.DeploymentImageServiceServicer):
    """Implements ``kubeupdate.v1.DeploymentImageService`` with the domain's use cases."""

    def __init__(self, operations: Operations, *, metrics: ServiceMetrics | None = None) -> None:
        """``metrics`` counts what each SetContainerImage call did."""
        self._images = operations.images
        self._updates = operations.updates
        self._undos = operations.undos
        self._status = operations.status
        self._history = operations.history
        self._verdicts = operations.verdicts
        self._settings = operations.updates.settings
        self._metrics = metrics

    async def GetContainerImage(
        self, request: pb.GetContainerImageRequest, context: Context
    ) -> pb.GetContainerImageResponse:
        image = await self._images.get_container_image(
            target_of(request), deadline=_deadline(context)
        )
        return pb.GetContainerImageResponse(
            namespace=request.namespace,
            deployment=request.deployment,
            container=request.container,
            image=image,
        )

    async def SetContainerImage(
        self, request: pb.SetContainerImageRequest, context: Context
    ) -> pb.SetContainerImageResponse:
        try:
            outcome = await self._set_container_image(request, context)
        except BaseException:
            if self._metrics is not None:
                self._metrics.update_failed()
            raise
        if self._metrics is not None:
            self._metrics.update(outcome)
        response = pb.SetContainerImageResponse(
            **_change_fields(outcome.change, outcome.image), dry_run=outcome.dry_run
        )
        if outcome.rollout is not None:
            response.rollout.CopyFrom(_rollout(outcome.rollout))
        if outcome.checked is not None:
            _registry_check(response, outcome.checked)
        return response

    async def _set_container_image(
        self, request: pb.SetContainerImageRequest, context: Context
    ) -> SetImageOutcome:
        return await self._updates.set_container_image(
            target_of(request),
            identity=_identity(context),
            wait=request.wait,
            timeout=_seconds(request.timeout) if request.HasField("timeout") else None,
            rollback_on_failure=request.rollback_on_failure,
            dry_run=request.dry_run,
            reason=request.reason,
            deadline=_deadline(context),
            check=image_checks.requested(),
        )

    async def UndoContainerImage(
        self, request: pb.UndoContainerImageRequest, context: Context
    ) -> pb.UndoContainerImageResponse:
        outcome = await self._undo_container_image(request, context)
        response = pb.UndoContainerImageResponse(
            **_change_fields(outcome.change, outcome.image), revision=outcome.revision
        )
        if outcome.rollout is not None:
            response.rollout.CopyFrom(_rollout(outcome.rollout))
        return response

    async def _undo_container_image(
        self, request: pb.UndoContainerImageRequest, context: Context
    ) -> UndoOutcome:
        return await self._undos.undo_container_image(
            target_of(request),
            identity=_identity(context),
            to_revision=request.to_revision,
            wait=request.wait,
            timeout=_seconds(request.timeout) if request.HasField("timeout") else None,
            rollback_on_failure=request.rollback_on_failure,
            reason=request.reason,
            approve=approvals.current(),
            deadline=_deadline(context),
        )

    async def ListContainerImages(
        self, request: pb.ListContainerImagesRequest, context: Context
    ) -> pb.ListContainerImagesResponse:
        containers = await self._images.list_container_images(
            target_of(request), deadline=_deadline(context)
        )
        return pb.ListContainerImagesResponse(
            namespace=request.namespace,
            deployment=request.deployment,
            containers=[
                pb.ContainerImage(name=c.name, image=c.image, init_container=c.init_container)
                for c in containers
            ],
        )

    async def GetRolloutStatus(
        self, request: pb.GetRolloutStatusRequest, context: Context
    ) -> pb.GetRolloutStatusResponse:
        report = await self._status.now(target_of(request), deadline=_deadline(context))
        return pb.GetRolloutStatusResponse(
            namespace=request.namespace, deployment=request.deployment, rollout=_rollout(report)
        )

    async def WatchRollout(
        self, request: pb.WatchRolloutRequest, context: Context
    ) -> AsyncIterator[pb.WatchRolloutResponse]:
        reports = self._status.watch(target_of(request), deadline=_deadline(context))
        async for report in reports:
            yield pb.WatchRolloutResponse(
                namespace=request.namespace, deployment=request.deployment, rollout=_rollout(report)
            )

    async def ListRevisions(
        self, request: pb.ListRevisionsRequest, context: Context
    ) -> pb.ListRevisionsResponse:
        revisions = await self._history.revisions(target_of(request), deadline=_deadline(context))
        response = pb.ListRevisionsResponse(
            namespace=request.namespace, deployment=request.deployment
        )
        for revision in revisions:
            entry = response.revisions.add(
                revision=revision.revision,
                replica_set=revision.name,
                change_cause=revision.change_cause,
                containers=[
                    pb.ContainerImage(name=c.name, image=c.image, init_container=c.init_container)
                    for c in revision.containers
                ],
                replicas=revision.replicas,
            )
            created = _timestamp(revision.created)
            if created is not None:
                entry.create_time.CopyFrom(created)
            if revision.change is not None:
                entry.change.CopyFrom(_recorded_change(revision.change))
        return response

    async def GetGuardedRollout(
        self, request: pb.GetGuardedRolloutRequest, context: Context
    ) -> pb.GetGuardedRolloutResponse:
        target = target_of(request)
        timeout = _seconds(request.timeout) if request.HasField("timeout") else None
        wait_for = check_wait(wait=request.wait, timeout=timeout, settings=self._settings)
        if self._verdicts is None:
            raise errors.Unavailable("this service runs without access to guarded rollouts")
        found = await self._verdicts.get(
            target.namespace,
            target.name,
            request.id,
            until=None if wait_for is None else time.monotonic() + wait_for,
            deadline=_deadline(context),
        )
        change = found.change
        response = pb.GetGuardedRolloutResponse(
            id=found.rollout_id,
            closed=found.closed,
            holder=found.holder,
            change=pb.SetContainerImageResponse(**_change_fields(change, change.image)),
        )
        if found.rollout is not None:
            response.change.rollout.CopyFrom(_rollout(found.rollout))
        return response


def _change_fields(change: ImageChange, image: str) -> dict[str, Any]:
    """The fields every answer of a write shares; ``image`` is what the container runs now."""
    return {
        "namespace": change.namespace,
        "deployment": change.deployment,
        "container": change.container,
        "image": image,
        "previous_image": change.previous_image,
        "changed": change.changed,
        "generation": change.generation,
    }


def _rollout(report: RolloutReport) -> pb.Rollout:
    rollout = pb.Rollout(
        state=_STATES[report.state],
        reason=report.reason,
        message=report.message,
        replicas=report.replicas,
        updated_replicas=report.updated_replicas,
        ready_replicas=report.ready_replicas,
        available_replicas=report.available_replicas,
        revision=report.revision,
        warnings=report.warnings,
    )
    # Optional fields: set only after a rollback, so JSON shows them only then.
    if report.failed_image:
        rollout.failed_image = report.failed_image
    if report.restored_image:
        rollout.restored_image = report.restored_image
    if report.duration is not None:
        rollout.duration.FromNanoseconds(round(report.duration * 1e9))
    if report.rollback is not None:
        rollout.rollback.CopyFrom(_rollback(report.rollback))
    return rollout


def _recorded_change(change: RecordedChange) -> pb.RecordedChange:
    return pb.RecordedChange(
        container=change.container,
        image=change.image,
        previous_image=change.previous_image,
        by=change.identity,
        reason=change.reason,
        request_id=change.request_id,
        rollback=change.rollback,
    )


def _rollback(report: RolloutReport) -> pb.RollbackRollout:
    rollback = pb.RollbackRollout(
        state=_STATES[report.state],
        reason=report.reason,
        message=report.message,
        replicas=report.replicas,
        updated_replicas=report.updated_replicas,
        ready_replicas=report.ready_replicas,
        available_replicas=report.available_replicas,
        revision=report.revision,
    )
    if report.duration is not None:
        rollback.duration.FromNanoseconds(round(report.duration * 1e9))
    return rollback


def _registry_check(response: pb.SetContainerImageResponse, checked: CheckedImage) -> None:
    check = response.registry_check
    if checked.skipped:
        check.state = pb.RegistryCheck.STATE_SKIPPED
        check.detail = checked.skipped
        return
    check.state = pb.RegistryCheck.STATE_PASSED
    check.platforms.extend(checked.platforms)
    check.signer = checked.signer
    if checked.digest is not None:
        response.digest = checked.digest


def _seconds(duration: duration_pb2.Duration) -> float:
    """A Duration in seconds; one that breaks the Duration rules is INVALID_ARGUMENT."""
    nanos_ok = -999_999_999 <= duration.nanos <= 999_999_999
    signs_ok = duration.seconds * duration.nanos >= 0
    if not (nanos_ok and signs_ok and abs(duration.seconds) <= _MAX_DURATION_SECONDS):
        raise errors.InvalidArgument(
            'Timeout is not a valid duration (write it like "120s" or "1.5s")'
        )
    return duration.seconds + duration.nanos / 1e9


def _timestamp(rfc3339: str) -> timestamp_pb2.Timestamp | None:
    try:
        moment = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    except ValueError:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _identity(context: Context) -> str:
    """Who the change's record names: the authenticated caller, else the peer address."""
    current = caller.current()
    if current is not None:
        return current.name
    peer: str | None = context.peer()
    return peer or "anonymous"


def _deadline(context: Context) -> float | None:
    """The caller's deadline on the ``time.monotonic()`` clock, if it set one."""
    left: float | None = context.time_remaining()
    return None if left is None else time.monotonic() + left
