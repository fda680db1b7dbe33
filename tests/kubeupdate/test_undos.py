"""UndoContainerImage: one container back to an earlier revision's image, against the devcluster."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import grpc
import grpc.aio
import pytest
from kubeupdate.client.errors import error_info
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from devcluster import DevCluster
from kubeupdate import errors
from kubeupdate.images import ImageReference
from kubeupdate.kube.client import KubeClient
from kubeupdate.kube.credentials import Credentials
from kubeupdate.operations import operations
from kubeupdate.targets import check_target
from tests.kubeupdate.rollouts.test_rollouts import FAST, NS, driven, rolled_out, service, set_image

if TYPE_CHECKING:
    Stub = pb_grpc.DeploymentImageServiceAsyncStub

State = pb.Rollout.State
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
NEWER = {"name": "app", "image": "nginx:1.28"}


def undo(
    to_revision: int = 0, *, wait: bool = False, rollback_on_failure: bool = False, reason: str = ""
) -> pb.UndoContainerImageRequest:
    return pb.UndoContainerImageRequest(
        namespace=NS,
        deployment="web",
        container="app",
        to_revision=to_revision,
        wait=wait,
        rollback_on_failure=rollback_on_failure,
        reason=reason,
    )


def image_of(cluster: DevCluster) -> str:
    obj = cluster.get("deployments", NS, "web")
    assert obj is not None
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


async def two_rollouts(cluster: DevCluster, stub: Stub) -> None:
    """Revision 1 runs nginx:1.25, revision 2 nginx:1.26, revision 3 nginx:1.27."""
    for image in ("nginx:1.26", "nginx:1.27"):
        await driven(cluster, stub.SetContainerImage(set_image(image, wait=True)))


async def test_undo_goes_back_to_the_previous_revision_and_waits(devcluster: DevCluster) -> None:
    rolled_out(devcluster)
    async with service(devcluster) as (stub, _):
        await two_rollouts(devcluster, stub)
        answer = await driven(devcluster, stub.UndoContainerImage(undo(wait=True, reason="r")))
        history = await stub.ListRevisions(pb.ListRevisionsRequest(namespace=NS, deployment="web"))

    assert (answer.image, answer.previous_image, answer.changed) == (
        "nginx:1.26",
        "nginx:1.27",
        True,
    )
    assert answer.revision == 2
    assert answer.rollout.state == State.STATE_COMPLETE
    assert image_of(devcluster) == "nginx:1.26"
    # The change cause says what happened and why.
    assert "undo to revision 2: r" in history.revisions[0].change_cause


async def test_undo_to_a_given_revision(devcluster: DevCluster) -> None:
    rolled_out(devcluster)
    async with service(devcluster) as (stub, _):
        await two_rollouts(devcluster, stub)
        answer = await stub.UndoContainerImage(undo(to_revision=1))
    assert (answer.image, answer.revision, answer.changed) == ("nginx:1.25", 1, True)
    assert image_of(devcluster) == "nginx:1.25"


@pytest.mark.parametrize(
    ("request_", "code", "reason", "words"),
    [
        (
            undo(to_revision=9),
            grpc.StatusCode.NOT_FOUND,
            "REVISION_NOT_FOUND",
            "the revisions kept are: 1, 2, 3",
        ),
        (undo(to_revision=-1), grpc.StatusCode.INVALID_ARGUMENT, "OPTIONS_INVALID", "ToRevision"),
        (
            undo(rollback_on_failure=True),
            grpc.StatusCode.INVALID_ARGUMENT,
            "OPTIONS_INVALID",
            "needs Wait",
        ),
        (
            pb.UndoContainerImageRequest(namespace=NS, deployment="web", container="nope"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "REVISION_NOT_RESTORABLE",
            'no container "nope"',
        ),
    ],
)
async def test_an_undo_that_cannot_be_done_writes_nothing(
    devcluster: DevCluster,
    request_: pb.UndoContainerImageRequest,
    code: grpc.StatusCode,
    reason: str,
    words: str,
) -> None:
    rolled_out(devcluster)
    async with service(devcluster) as (stub, _):
        await two_rollouts(devcluster, stub)
        devcluster.journal.clear()
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.UndoContainerImage(request_)
    assert failure.value.code() == code
    assert error_info(failure.value.trailing_metadata() or ())[0] == reason
    assert words in (failure.value.details() or "")
    assert devcluster.journal.writes() == []


async def test_without_an_earlier_revision_there_is_nothing_to_undo(
    devcluster: DevCluster,
) -> None:
    rolled_out(devcluster)
    async with service(devcluster) as (stub, _):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.UndoContainerImage(undo())
    assert failure.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(failure.value.trailing_metadata() or ())[0] == "NO_EARLIER_REVISION"
    assert "no revision before the current one" in (failure.value.details() or "")


async def test_a_failed_undo_is_rolled_back_to_the_image_before_it(
    devcluster: DevCluster,
) -> None:
    rolled_out(devcluster)
    async with service(devcluster) as (stub, _):
        await driven(devcluster, stub.SetContainerImage(set_image("nginx:1.26-bad")))
        await driven(devcluster, stub.SetContainerImage(set_image("nginx:1.27", wait=True)))
        answer = await driven(
            devcluster,
            stub.UndoContainerImage(undo(wait=True, rollback_on_failure=True)),
        )
    assert answer.rollout.state == State.STATE_ROLLED_BACK
    assert (answer.rollout.failed_image, answer.rollout.restored_image) == (
        "nginx:1.26-bad",
        "nginx:1.27",
    )
    assert image_of(devcluster) == "nginx:1.27"


async def test_a_change_made_while_the_undo_is_prepared_is_never_undone(
    devcluster: DevCluster,
) -> None:
    rolled_out(devcluster)
    async with service(devcluster) as (stub, _):
        await two_rollouts(devcluster, stub)
    approved: list[str] = []

    def someone_else_deploys(image: ImageReference) -> None:
        # Runs between the choice of the revision and the write.
        approved.append(str(image))
        change = {"spec": {"template": {"spec": {"containers": [NEWER]}}}}
        devcluster.patch(
            "deployments", NS, "web", json.dumps(change).encode(), STRATEGIC_MERGE_PATCH
        )

    async with KubeClient(Credentials.from_kubeconfig(devcluster.kubeconfig_path)) as client:
        domain = operations(client, client, FAST)
        try:
            with pytest.raises(errors.Aborted, match="changed while the undo was prepared") as e:
                await domain.undos.undo_container_image(
                    check_target(NS, "web", "app"),
                    identity="test",
                    approve=someone_else_deploys,
                )
            assert e.value.reason == errors.ErrorReason.CONTAINER_CHANGED
        finally:
            await domain.close()
    assert approved == ["nginx:1.26"]
    assert image_of(devcluster) == "nginx:1.28"
