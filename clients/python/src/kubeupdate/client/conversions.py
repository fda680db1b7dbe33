"""Protobuf messages → the client's result dataclasses (the only place that reads them)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC

from kubeupdate.client.results import (
    Container,
    GuardedRollout,
    ImageChange,
    Revision,
    Rollout,
    RolloutState,
)
from kubeupdate.v1 import deployment_image_service_pb2 as pb


def rollout_from_pb(namespace: str, deployment: str, message: pb.Rollout) -> Rollout:
    try:
        state = RolloutState(message.state)
    except ValueError:
        # A state added to the contract after this client was built.
        state = RolloutState.UNSPECIFIED
    return Rollout(
        namespace=namespace,
        deployment=deployment,
        state=state,
        reason=message.reason,
        message=message.message,
        replicas=message.replicas,
        updated_replicas=message.updated_replicas,
        ready_replicas=message.ready_replicas,
        available_replicas=message.available_replicas,
        revision=message.revision,
        duration=message.duration.ToTimedelta() if message.HasField("duration") else None,
        failed_image=message.failed_image,
        restored_image=message.restored_image,
    )


def container_from_pb(message: pb.ContainerImage) -> Container:
    return Container(message.name, message.image, message.init_container)


def image_change_from_pb(
    message: pb.SetContainerImageResponse | pb.UndoContainerImageResponse,
) -> ImageChange:
    rollout = (
        rollout_from_pb(message.namespace, message.deployment, message.rollout)
        if message.HasField("rollout")
        else None
    )
    return ImageChange(
        namespace=message.namespace,
        deployment=message.deployment,
        container=message.container,
        image=message.image,
        previous_image=message.previous_image,
        changed=message.changed,
        generation=message.generation,
        dry_run=isinstance(message, pb.SetContainerImageResponse) and message.dry_run,
        rollout=rollout,
        revision=message.revision if isinstance(message, pb.UndoContainerImageResponse) else 0,
    )


def guarded_rollout_from_pb(message: pb.GetGuardedRolloutResponse) -> GuardedRollout:
    change = replace(image_change_from_pb(message.change), rollout_id=message.id)
    return GuardedRollout(message.id, message.closed, message.holder, change)


def revision_from_pb(message: pb.Revision) -> Revision:
    return Revision(
        revision=message.revision,
        replica_set=message.replica_set,
        change_cause=message.change_cause,
        containers=tuple(container_from_pb(c) for c in message.containers),
        create_time=(
            message.create_time.ToDatetime(tzinfo=UTC) if message.HasField("create_time") else None
        ),
        replicas=message.replicas,
    )
