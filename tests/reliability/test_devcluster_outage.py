"""Kubernetes going away and coming back on the same port, under a running kubeupdate.

The devcluster is stopped and started again in place (same port, same objects,
same token), which closes every connection the service holds: its keep-alive
pool and any watch of a pending rollout wait.
"""

from __future__ import annotations

import time

import grpc
import pytest
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from devcluster import DevCluster, faults
from tests.stack import Stack

ROUTE = "/deployment/default/web/app"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def restart(cluster: DevCluster) -> None:
    port = cluster.port
    cluster.stop()
    cluster.start()
    assert cluster.port == port


def test_outage_answers_503_then_recovers_without_restarting_kubeupdate(
    short_stack: Stack,
) -> None:
    cluster = short_stack.cluster
    assert short_stack.get(ROUTE).status == 200  # the service now holds a keep-alive connection
    port = cluster.port
    cluster.stop()
    try:
        down_get = short_stack.get(ROUTE)
        down_post = short_stack.post_json(ROUTE, {"Image": "nginx:1.26"})
    finally:
        cluster.start()
    assert cluster.port == port

    assert down_get.status == 503, down_get.body
    assert down_get.json["Code"] == "UNAVAILABLE"
    assert down_post.status == 503, down_post.body
    assert not [e for e in cluster.journal if e.method == "PATCH"]

    up_get = short_stack.get(ROUTE)
    up_post = short_stack.post_json(ROUTE, {"Image": "nginx:1.26"})

    assert up_get.status == 200, up_get.body
    assert up_post.status == 200, up_post.body
    assert short_stack.image_of("default", "web", "app") == "nginx:1.26"


@pytest.mark.parametrize("compact", [False, True], ids=["resume", "expired"])
def test_wait_survives_its_watch_being_dropped(
    short_stack: Stack, stub: pb_grpc.DeploymentImageServiceStub, compact: bool
) -> None:
    """With ``compact``, the resumed watch is also told 410 Expired and must list again."""
    cluster = short_stack.cluster  # the clock stands still: the rollout waits for advance()
    request = pb.SetContainerImageRequest(
        namespace="default", deployment="web", container="app", image="nginx:1.26", wait=True
    )
    request.timeout.FromSeconds(120)
    pending = stub.SetContainerImage.future(request, timeout=30)
    # The wait lists the Deployment before it watches it; the list is journaled at once.
    for _ in range(200):  # bounded: at most ~10 s
        if any(e.path == DEPLOYMENTS and "watch" not in e.query for e in cluster.journal):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the wait never listed the Deployment")
    assert not pending.done()

    port = cluster.port
    cluster.stop()  # drops the watch connection mid-wait
    if compact:
        # The resumed watch must find the history compacted: held back (the first request
        # on the path to the new server is that watch) until long after the compaction.
        cluster.faults.add("GET", DEPLOYMENTS, faults.delay(3000), count=1)
    cluster.start()
    assert cluster.port == port
    if compact:
        cluster.advance(1)  # events the resumed watch can no longer replay
        cluster.compact()
    cluster.advance(120)

    answer = pending.result(timeout=30)
    assert answer.changed is True
    assert answer.rollout.state == pb.Rollout.STATE_COMPLETE, answer.rollout
    lists = [e for e in cluster.journal if e.path == DEPLOYMENTS and "watch" not in e.query]
    if compact:
        assert len(lists) >= 2
    else:
        # Resumed from its resourceVersion, not listed again. (The journal records a watch
        # when the server ends it; one that a restarting devcluster drops may be missing.)
        assert len(lists) == 1


def test_call_while_down_fails_fast_over_grpc(
    short_stack: Stack, stub: pb_grpc.DeploymentImageServiceStub
) -> None:
    cluster = short_stack.cluster
    request = pb.GetContainerImageRequest(namespace="default", deployment="web", container="app")
    cluster.stop()
    try:
        try:
            stub.GetContainerImage(request, timeout=10)
        except grpc.RpcError as exc:
            code = exc.code()
        else:
            raise AssertionError("a read succeeded while Kubernetes was down")
    finally:
        cluster.start()
    assert code == grpc.StatusCode.UNAVAILABLE
    assert stub.GetContainerImage(request, timeout=10).image == "nginx:1.25"
