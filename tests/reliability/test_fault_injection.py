"""Kubernetes failing in every way the devcluster can fake, seen through the whole stack.

REST → gateway → gRPC service → devcluster, each on a loopback port. Faults are
armed with the devcluster's switches; the journal (what reached "Kubernetes")
is the evidence, so no assertion depends on how long anything took.
"""

from __future__ import annotations

import time

import grpc
import pytest
from devcluster.journal import Entry
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from devcluster import DevCluster, faults
from kubeupdate.containers import DEFAULT_ATTEMPTS
from tests.stack import Stack

WEB = "/apis/apps/v1/namespaces/default/deployments/web"
ROUTE = "/deployment/default/web/app"


def requests_to(cluster: DevCluster, method: str, path: str = WEB) -> list[Entry]:
    return [e for e in cluster.journal if e.method == method and e.path == path]


def wait_for_entry(cluster: DevCluster, method: str, status: int | None) -> Entry:
    """The journal entry of a request the devcluster abandoned; it is written when
    the handler ends, which follows the client's disconnect by a moment."""
    for _ in range(200):  # bounded: at most ~10 s
        for entry in requests_to(cluster, method):
            if entry.status == status:
                return entry
        time.sleep(0.05)
    raise AssertionError(f"no {method} {WEB} with status {status} in the journal")


# -- 409 Conflict --------------------------------------------------------------------


def test_conflict_on_first_patch_is_retried_and_succeeds(short_stack: Stack) -> None:
    cluster = short_stack.cluster
    cluster.faults.add("PATCH", WEB, faults.conflict(), count=1)

    answer = short_stack.post_json(ROUTE, {"Image": "nginx:1.26"})

    assert answer.status == 200, answer.body
    assert answer.json["Image"] == "nginx:1.26"
    assert answer.json["Changed"] is True
    assert [e.status for e in requests_to(cluster, "PATCH")] == [409, 200]
    assert short_stack.image_of("default", "web", "app") == "nginx:1.26"


def test_conflict_every_time_gives_up_after_bounded_attempts_over_rest(
    short_stack: Stack,
) -> None:
    cluster = short_stack.cluster
    cluster.faults.add("PATCH", WEB, faults.conflict(), count=None)

    answer = short_stack.post_json(ROUTE, {"Image": "nginx:1.26"})

    assert answer.status == 409, answer.body
    assert answer.json["Status"] == "failed"
    assert answer.json["Code"] == "ABORTED"
    assert "nothing was changed" in answer.json["Detail"]
    assert [e.status for e in requests_to(cluster, "PATCH")] == [409] * DEFAULT_ATTEMPTS
    assert short_stack.image_of("default", "web", "app") == "nginx:1.25"


def test_conflict_every_time_is_aborted_over_grpc(
    short_stack: Stack, stub: pb_grpc.DeploymentImageServiceStub
) -> None:
    short_stack.cluster.faults.add("PATCH", WEB, faults.conflict(), count=None)
    request = pb.SetContainerImageRequest(
        namespace="default", deployment="web", container="app", image="nginx:1.26"
    )

    with pytest.raises(grpc.RpcError) as caught:
        stub.SetContainerImage(request, timeout=10)

    assert caught.value.code() == grpc.StatusCode.ABORTED
    assert len(requests_to(short_stack.cluster, "PATCH")) == DEFAULT_ATTEMPTS


# -- 429 Too Many Requests -----------------------------------------------------------


def test_429_with_retry_after_is_honoured_then_succeeds(short_stack: Stack) -> None:
    cluster = short_stack.cluster
    # 1 s fits in the gateway's 1.5 s deadline.
    cluster.faults.add("GET", WEB, faults.too_many_requests(retry_after=1), count=1)

    answer = short_stack.get(ROUTE)

    assert answer.status == 200, answer.body
    assert answer.json["Image"] == "nginx:1.25"
    assert [e.status for e in requests_to(cluster, "GET")] == [429, 200]


def test_429_longer_than_the_deadline_gives_503_with_retry_after(short_stack: Stack) -> None:
    cluster = short_stack.cluster
    cluster.faults.add("GET", WEB, faults.too_many_requests(retry_after=60), count=None)

    answer = short_stack.get(ROUTE)

    assert answer.status == 503, answer.body
    assert answer.headers.get("retry-after") == "60"
    assert answer.json["Code"] == "UNAVAILABLE"
    # Waiting 60 s cannot fit the deadline: asked once, not hammered.
    assert [e.status for e in requests_to(cluster, "GET")] == [429]


def test_429_honoured_until_the_deadline_then_503_with_retry_after(short_stack: Stack) -> None:
    cluster = short_stack.cluster
    cluster.faults.add("GET", WEB, faults.too_many_requests(retry_after=1), count=None)

    answer = short_stack.get(ROUTE)

    assert answer.status == 503, answer.body
    assert answer.headers.get("retry-after") == "1"
    # Each wait of 1 s is taken only while it fits the gateway's 1.5 s deadline.
    statuses = [e.status for e in requests_to(cluster, "GET")]
    assert statuses in ([429], [429, 429])


def test_429_on_patch_is_retried_once_allowed_and_applied_once(short_stack: Stack) -> None:
    cluster = short_stack.cluster
    cluster.faults.add("PATCH", WEB, faults.too_many_requests(retry_after=1), count=1)

    answer = short_stack.post_json(ROUTE, {"Image": "nginx:1.26"})

    assert answer.status == 200, answer.body
    # A 429 means the server did nothing, so sending the PATCH again is safe.
    assert [e.status for e in requests_to(cluster, "PATCH")] == [429, 200]


# -- 500 / 503 -------------------------------------------------------------------------


@pytest.mark.parametrize("action", [faults.internal_error(), faults.unavailable()])
def test_server_error_on_read_is_retried(short_stack: Stack, action: faults.Action) -> None:
    cluster = short_stack.cluster
    cluster.faults.add("GET", WEB, action, count=1)

    answer = short_stack.get(ROUTE)

    assert answer.status == 200, answer.body
    assert [e.status for e in requests_to(cluster, "GET")] == [action.code, 200]


@pytest.mark.parametrize("action", [faults.internal_error(), faults.unavailable()])
def test_server_error_on_patch_is_not_retried(short_stack: Stack, action: faults.Action) -> None:
    cluster = short_stack.cluster
    cluster.faults.add("PATCH", WEB, action, count=1)

    answer = short_stack.post_json(ROUTE, {"Image": "nginx:1.26"})

    assert answer.status == 503, answer.body
    assert answer.json["Code"] == "UNAVAILABLE"
    # The outcome of a 5xx PATCH is unknown to a client: never sent twice.
    assert [e.status for e in requests_to(cluster, "PATCH")] == [action.code]
    assert short_stack.image_of("default", "web", "app") == "nginx:1.25"

    again = short_stack.post_json(ROUTE, {"Image": "nginx:1.26"})

    assert again.status == 200, again.body
    assert [e.status for e in requests_to(cluster, "PATCH")] == [action.code, 200]


# -- a hang ----------------------------------------------------------------------------


def test_hung_read_ends_in_504_within_the_gateway_deadline(short_stack: Stack) -> None:
    cluster = short_stack.cluster
    cluster.faults.add("GET", WEB, faults.delay(30_000), count=1)

    answer = short_stack.get(ROUTE)

    assert answer.status == 504, answer.body
    assert answer.json["Code"] == "DEADLINE_EXCEEDED"
    # The service hung up on the devcluster, whose handler was then cancelled:
    # nothing is left waiting on the Kubernetes side (status None = no answer sent).
    wait_for_entry(cluster, "GET", None)
    assert short_stack.get(ROUTE).status == 200


def test_hung_patch_ends_in_deadline_exceeded_and_changes_nothing(
    short_stack: Stack, stub: pb_grpc.DeploymentImageServiceStub
) -> None:
    cluster = short_stack.cluster
    cluster.faults.add("PATCH", WEB, faults.delay(30_000), count=1)
    request = pb.SetContainerImageRequest(
        namespace="default", deployment="web", container="app", image="nginx:1.26"
    )

    with pytest.raises(grpc.RpcError) as caught:
        stub.SetContainerImage(request, timeout=1.0)

    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for_entry(cluster, "PATCH", None)
    assert short_stack.image_of("default", "web", "app") == "nginx:1.25"
    # Only the abandoned PATCH: no retry went out after the deadline.
    assert len(requests_to(cluster, "PATCH")) == 1


# -- a dropped connection --------------------------------------------------------------


def test_dropped_patch_is_checked_and_repeating_the_post_is_safe(short_stack: Stack) -> None:
    cluster = short_stack.cluster
    cluster.faults.add("PATCH", WEB, faults.drop_connection(), count=1)

    answer = short_stack.post_json(ROUTE, {"Image": "nginx:1.26"})

    # The service re-read, saw the image unchanged, and sent the (pinned) patch again.
    assert answer.status == 200, answer.body
    assert answer.json["PreviousImage"] == "nginx:1.25"
    assert [e.status for e in requests_to(cluster, "PATCH")] == [None, 200]

    again = short_stack.post_json(ROUTE, {"Image": "nginx:1.26"})

    assert again.status == 200, again.body
    assert again.json["Changed"] is False
    assert len(requests_to(cluster, "PATCH")) == 2  # nothing sent for the repeat
    assert short_stack.image_of("default", "web", "app") == "nginx:1.26"


def test_patch_dropped_every_time_is_a_clear_error_and_changes_nothing(
    short_stack: Stack,
) -> None:
    cluster = short_stack.cluster
    cluster.faults.add("PATCH", WEB, faults.drop_connection(), count=None)

    answer = short_stack.post_json(ROUTE, {"Image": "nginx:1.26"})

    # The connection broke, not the Deployment: unavailable, not "kept changing".
    assert answer.status == 503, answer.body
    assert answer.json["Code"] == "UNAVAILABLE"
    assert [e.status for e in requests_to(cluster, "PATCH")] == [None] * DEFAULT_ATTEMPTS
    assert short_stack.image_of("default", "web", "app") == "nginx:1.25"

    cluster.faults.clear()
    again = short_stack.post_json(ROUTE, {"Image": "nginx:1.26"})

    assert again.status == 200, again.body
    assert short_stack.image_of("default", "web", "app") == "nginx:1.26"


# -- 403 Forbidden ---------------------------------------------------------------------


def test_forbidden_read_names_the_missing_permission(short_stack: Stack) -> None:
    short_stack.cluster.faults.add("GET", WEB, faults.forbidden(), count=1)

    answer = short_stack.get(ROUTE)

    assert answer.status == 403, answer.body
    assert answer.json["Code"] == "PERMISSION_DENIED"
    detail = answer.json["Detail"]
    assert 'may not get deployments.apps in namespace "default"' in detail
    assert faults.DEFAULT_USER in detail


def test_forbidden_patch_names_the_missing_permission(
    short_stack: Stack, stub: pb_grpc.DeploymentImageServiceStub
) -> None:
    short_stack.cluster.faults.add("PATCH", WEB, faults.forbidden(), count=1)
    request = pb.SetContainerImageRequest(
        namespace="default", deployment="web", container="app", image="nginx:1.26"
    )

    with pytest.raises(grpc.RpcError) as caught:
        stub.SetContainerImage(request, timeout=10)

    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert 'may not patch deployments.apps in namespace "default"' in str(caught.value.details())
    assert len(requests_to(short_stack.cluster, "PATCH")) == 1
