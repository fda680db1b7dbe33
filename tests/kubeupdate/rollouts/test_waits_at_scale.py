"""A thousand waited changes in one namespace: Kubernetes sees three watches, not two thousand.

Through the gRPC service against the devcluster, in simulated time (stopped
until the test moves it), so every wait is pending at once before any
rollout can end. The devcluster's journal counts what reached "Kubernetes".
The waits share 200 rollouts (five callers each): the property is the same
with a thousand, which the benchmark runs, and the test stays short.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import grpc.aio
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from devcluster import DevCluster
from kubeupdate.kube.client import KubeClient
from kubeupdate.kube.credentials import Credentials
from kubeupdate.operations import operations
from kubeupdate.protocol.grpc.server import ServiceServer
from kubeupdate.rollouts.settings import RolloutSettings
from kubeupdate.rollouts.tracking import RolloutTracking

if TYPE_CHECKING:
    Stub = pb_grpc.DeploymentImageServiceAsyncStub

T = TypeVar("T")

NS = "scale"
WAITS = 1000
DEPLOYMENTS = 200
# Watches that outlast the test, and stop as soon as the last wait has answered.
SETTINGS = RolloutSettings(stuck_grace=0.05, watch_seconds=300, watch_linger=0)
COLLECTIONS = (
    f"/apis/apps/v1/namespaces/{NS}/deployments",
    f"/apis/apps/v1/namespaces/{NS}/replicasets",
    f"/api/v1/namespaces/{NS}/pods",
)


NEW_IMAGE = (
    b'[{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.26"}]'
)


def deployment(index: int) -> dict[str, Any]:
    name = f"app-{index}"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
            },
        },
    }


@asynccontextmanager
async def service(cluster: DevCluster) -> AsyncIterator[tuple[Stub, RolloutTracking]]:
    async with KubeClient(Credentials.from_kubeconfig(cluster.kubeconfig_path)) as client:
        domain = operations(client, client, SETTINGS)
        server = ServiceServer(domain, port=0)
        port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield pb_grpc.DeploymentImageServiceStub(channel), domain.tracking
        finally:
            await server.stop(None)
            await domain.close()


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded, generously: a thousand calls on a shared machine) for ``condition``."""
    for _ in range(6000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def driven(cluster: DevCluster, call: Awaitable[T]) -> T:
    """Await ``call`` while simulated time moves a second at a time."""
    task = asyncio.ensure_future(call)
    while not task.done():
        await asyncio.to_thread(cluster.advance, 1.0)
        await asyncio.wait({task}, timeout=0.01)
    return task.result()


def requests(cluster: DevCluster, path: str, *, watch: bool) -> int:
    return sum(
        1
        for e in cluster.journal
        if e.method == "GET" and e.path == path and (e.query.get("watch") == "true") == watch
    )


async def test_a_thousand_waits_in_one_namespace_share_three_watches_and_all_complete(
    devcluster: DevCluster,
) -> None:
    devcluster.create_namespace(NS)
    for index in range(DEPLOYMENTS):
        devcluster.create(deployment(index))
    devcluster.advance(60)  # every first rollout done
    for index in range(DEPLOYMENTS):  # the second starts (and waits for the clock)
        devcluster.patch(
            "deployments", NS, f"app-{index}", NEW_IMAGE, "application/json-patch+json"
        )
    devcluster.journal.clear()
    async with service(devcluster) as (stub, tracking):
        calls = [
            asyncio.ensure_future(
                stub.SetContainerImage(
                    pb.SetContainerImageRequest(
                        namespace=NS,
                        deployment=f"app-{index % DEPLOYMENTS}",
                        container="app",
                        image="nginx:1.26",
                        wait=True,
                    ),
                    timeout=600,
                )
            )
            for index in range(WAITS)
        ]
        # The image is set already: each call waits for the rollout under way.
        # Every wait reads the namespace's Deployments, ReplicaSets and Pods; time stands
        # still, so none can end yet.
        await eventually(lambda: tracking.informers().readers == 3 * WAITS, "every wait reads")
        assert not any(call.done() for call in calls)
        assert tracking.open_watches == 3
        await eventually(lambda: devcluster.open_watches == 3, "the watches reached the server")

        answers = await driven(devcluster, asyncio.gather(*calls))

        assert [a.rollout.state for a in answers] == [pb.Rollout.State.STATE_COMPLETE] * WAITS
        assert {a.rollout.revision for a in answers} == {2}
        await eventually(lambda: devcluster.open_watches == 0, "the watches ended")
    # One list and one watch per collection, whatever the number of waits.
    # (The journal records a watch when it ends.)
    await eventually(
        lambda: all(requests(devcluster, path, watch=True) >= 1 for path in COLLECTIONS),
        "the ended watches are in the journal",
    )
    assert [requests(devcluster, path, watch=False) for path in COLLECTIONS] == [1, 1, 1]
    assert [requests(devcluster, path, watch=True) for path in COLLECTIONS] == [1, 1, 1]
