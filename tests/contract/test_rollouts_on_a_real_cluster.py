"""Rollouts as a real cluster runs them, seen by a REST caller: REST -> gRPC -> devcluster.

The devcluster's kubelet fails as a real one does (crash loops between
back-offs, pulls alternating ErrImagePull and ImagePullBackOff); its API
server answers like kube-apiserver. The clock stands still unless a test moves
it: a waited call runs in a worker thread while the test advances simulated
time, so a rollout of minutes takes a fraction of a real second.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from kubeupdate.client.cli import ExitCode, main

from devcluster import DevCluster, faults
from kubeupdate.auth.config import AuthConfig
from kubeupdate.rollouts.settings import RolloutSettings
from tests.stack import Response, Stack, running_stack

NS = "default"
ROUTE = "/deployment/default/web/app"
PODS = "/api/v1/namespaces/default/pods"
# A guard against a hung call, not a measured time.
GUARD = 60.0
GRACE = 30.0


@pytest.fixture
def live(devcluster: DevCluster) -> Iterator[Stack]:
    """The stack over the demo's samples, rolled out; the service reads the cluster's clock
    often, since the test moves it."""
    rollouts = RolloutSettings(stuck_grace=GRACE, clock_sync=0.05)
    auth = AuthConfig(enabled=False, rate_limit=0)
    with running_stack(devcluster, auth, rollouts=rollouts) as stack:
        devcluster.advance(60)
        yield stack


def in_background(stack: Stack, document: dict[str, Any]) -> concurrent.futures.Future[Response]:
    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(stack.post_json, ROUTE, document)
    pool.shutdown(wait=False)
    return future


def driven(stack: Stack, future: concurrent.futures.Future[Response]) -> Response:
    """The answer of ``future``, simulated time moving a second at a time meanwhile."""
    while not future.done():
        stack.cluster.advance(1.0)
        concurrent.futures.wait([future], timeout=0.01)
    return future.result()


def waited(stack: Stack, **document: Any) -> Response:
    return driven(stack, in_background(stack, {"Wait": True, **document}))


def new_pods(cluster: DevCluster, image: str) -> list[dict[str, Any]]:
    return [
        pod
        for pod in cluster.list("pods", NS)
        if any(c["image"] == image for c in pod["spec"]["containers"])
    ]


def created(pod: dict[str, Any]) -> float:
    return datetime.fromisoformat(pod["metadata"]["creationTimestamp"]).timestamp()


def advance_to(cluster: DevCluster, moment: float) -> None:
    while cluster.clock.now() < moment:
        cluster.advance(min(1.0, moment - cluster.clock.now()))


def rollout_now(stack: Stack) -> dict[str, Any]:
    answer = stack.get("/rollout/default/web")
    assert answer.status == 200, answer.body
    rollout: dict[str, Any] = answer.json["Rollout"]
    return rollout


# -- 1. the Pods are best-effort -------------------------------------------------------


def test_a_wait_that_may_not_read_pods_is_judged_by_the_deployment_and_says_so(
    live: Stack,
) -> None:
    live.cluster.faults.add("GET", PODS, faults.forbidden(), count=None)

    answer = waited(live, Image="nginx:1.26")

    assert answer.status == 200, answer.body
    rollout = answer.json["Rollout"]
    assert rollout["State"] == "STATE_COMPLETE"
    [warning] = rollout["Warnings"]
    assert warning.startswith(
        "the Pods of deployment default/web could not be read (kubeupdate's service account "
        'may not list or watch pods in namespace "default"'
    )
    assert live.image_of(NS, "web", "app") == "nginx:1.26"


def test_without_pods_a_failed_release_is_still_rolled_back(live: Stack) -> None:
    live.cluster.faults.add("GET", PODS, faults.forbidden(), count=None)
    patch = json.dumps({"spec": {"progressDeadlineSeconds": 60}}).encode()
    live.cluster.patch("deployments", NS, "web", patch, "application/merge-patch+json")

    answer = waited(live, Image="nginx:1.26-bad", RollbackOnFailure=True)

    assert answer.status == 200, answer.body
    rollout = answer.json["Rollout"]
    assert (rollout["State"], rollout["Reason"]) == (
        "STATE_ROLLED_BACK",
        "ProgressDeadlineExceeded",
    )
    assert len(rollout["Warnings"]) == 1
    assert live.image_of(NS, "web", "app") == "nginx:1.25"


# -- 2. Pods judged as `kubectl get pods -w` shows them, on the cluster's clock ----------


@pytest.mark.parametrize(
    ("image", "reason"),
    [("nginx:1.26-crash", "CrashLoopBackOff"), ("nginx:1.26-bad", "ImagePullBackOff")],
    ids=["crash-loop", "failed-pull"],
)
def test_pods_that_cannot_start_fail_the_rollout_once_unready_for_the_grace(
    live: Stack, image: str, reason: str
) -> None:
    cluster = live.cluster
    pending = in_background(live, {"Image": image, "Wait": True})
    while not new_pods(cluster, image):
        cluster.advance(1.0)
        assert not pending.done(), pending.result().body
    since = min(created(pod) for pod in new_pods(cluster, image))

    # The kubelet cycles meanwhile (running, exited, back-off; or pull, back-off).
    advance_to(cluster, since + GRACE - 5)
    within = rollout_now(live)
    advance_to(cluster, since + GRACE + 1)
    past = rollout_now(live)
    answer = pending.result(GUARD)

    assert within["State"] == "STATE_PROGRESSING"
    assert (past["State"], past["Reason"]) == ("STATE_FAILED", reason)
    assert answer.status == 200, answer.body
    rollout = answer.json["Rollout"]
    assert (rollout["State"], rollout["Reason"]) == ("STATE_FAILED", reason)
    assert rollout["Message"].startswith("pod web-")
    assert f"container app: {reason}" in rollout["Message"]
    # Long before the Deployment's own progress deadline (600 s).
    obj = cluster.get("deployments", NS, "web")
    assert obj is not None
    progressing = {c["type"]: c["reason"] for c in obj["status"]["conditions"]}["Progressing"]
    assert progressing != "ProgressDeadlineExceeded"


# -- 3. one judgement for the status, the stream and the wait ------------------------------


def test_after_a_failed_wait_the_status_the_stream_and_the_cli_say_failed(live: Stack) -> None:
    answer = waited(live, Image="nginx:1.26-bad")
    assert answer.status == 200, answer.body
    failed = answer.json["Rollout"]
    assert (failed["State"], failed["Reason"]) == ("STATE_FAILED", "ImagePullBackOff")

    status = rollout_now(live)
    stream = live.get("/rollout/default/web/watch")
    out, err = io.StringIO(), io.StringIO()
    code = main(["--server", live.grpc_target, "status", "default/web"], stdout=out, stderr=err)

    assert (status["State"], status["Reason"]) == ("STATE_FAILED", "ImagePullBackOff")
    assert stream.status == 200
    [line] = stream.body.decode().splitlines()  # terminal at once: the stream ends
    assert json.loads(line)["Rollout"]["State"] == "STATE_FAILED"
    assert code == ExitCode.ROLLOUT_FAILED, err.getvalue()
    assert out.getvalue().startswith("default/web: FAILED")
