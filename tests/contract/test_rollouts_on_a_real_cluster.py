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
DEPLOYMENT = "/apis/apps/v1/namespaces/default/deployments/web"
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


# -- 4. a failed JSON-patch test is a generic 422: only a re-read tells a conflict ----------


def test_a_policy_refusal_is_shown_as_such_and_not_retried(live: Stack) -> None:
    # Its words happen to say "test" and "failed": they must not be taken for a conflict.
    refusal = faults.policy_denied(
        "signed-images", "image test failed: nginx:1.26 is not signed", binding="prod"
    )
    live.cluster.faults.add("PATCH", DEPLOYMENT, refusal, count=None)

    answer = live.post_json(ROUTE, {"Image": "nginx:1.26"})

    assert answer.status == 400, answer.body
    body = answer.json
    assert (body["Code"], body["Reason"]) == ("FAILED_PRECONDITION", "ADMISSION_POLICY_DENIED")
    assert body["Detail"] == (
        "the ValidatingAdmissionPolicy 'signed-images' (binding 'prod') refused to set the "
        'image of container "app" in deployment default/web: image test failed: nginx:1.26 '
        "is not signed"
    )
    assert len([e for e in live.cluster.journal if e.method == "PATCH"]) == 1
    assert live.image_of(NS, "web", "app") == "nginx:1.25"


# -- 5. not every 403 is RBAC -------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"), [(403, "Forbidden"), (0, "")], ids=["gatekeeper", "kyverno"]
)
def test_an_admission_webhook_refusal_is_not_a_missing_permission(
    live: Stack, code: int, reason: str
) -> None:
    refusal = faults.webhook_denied(
        "validation.gatekeeper.sh",
        "[pinned-images] container <app> must use a digest",
        code=code,
        reason=reason,
    )
    live.cluster.faults.add("PATCH", DEPLOYMENT, refusal, count=None)

    answer = live.post_json(ROUTE, {"Image": "nginx:1.26"})

    assert answer.status == 400, answer.body
    body = answer.json
    assert (body["Code"], body["Reason"]) == ("FAILED_PRECONDITION", "ADMISSION_WEBHOOK_DENIED")
    assert body["Detail"] == (
        'the admission webhook "validation.gatekeeper.sh" refused to set the image of '
        'container "app" in deployment default/web: [pinned-images] container <app> must '
        "use a digest"
    )
    assert len([e for e in live.cluster.journal if e.method == "PATCH"]) == 1


def test_an_rbac_refusal_names_the_missing_permission(live: Stack) -> None:
    live.cluster.faults.add("PATCH", DEPLOYMENT, faults.forbidden(), count=None)

    answer = live.post_json(ROUTE, {"Image": "nginx:1.26"})

    assert answer.status == 403, answer.body
    body = answer.json
    assert (body["Code"], body["Reason"]) == ("PERMISSION_DENIED", "KUBERNETES_PERMISSION_MISSING")
    assert body["Detail"].startswith(
        'kubeupdate\'s service account may not patch deployments.apps in namespace "default"'
    )


# -- 6. paused Deployments --------------------------------------------------------------------


def pause(cluster: DevCluster) -> None:
    patch = json.dumps({"spec": {"paused": True}}).encode()
    cluster.patch("deployments", NS, "web", patch, "application/merge-patch+json")


def test_a_waited_change_of_a_paused_deployment_is_refused_before_any_write(live: Stack) -> None:
    pause(live.cluster)
    live.cluster.journal.clear()

    answer = live.post_json(
        ROUTE, {"Image": "nginx:1.26", "Wait": True, "Timeout": "5s", "RollbackOnFailure": True}
    )

    assert answer.status == 400, answer.body
    body = answer.json
    assert (body["Code"], body["Reason"]) == ("FAILED_PRECONDITION", "DEPLOYMENT_PAUSED")
    assert body["Detail"] == (
        "deployment default/web is paused: a new image would not roll out until it is resumed "
        "(kubectl rollout resume deployment/web -n default), so nothing was changed; resume "
        "it, or set the image without Wait"
    )
    assert live.cluster.journal.writes() == []
    assert live.image_of(NS, "web", "app") == "nginx:1.25"


def test_a_waited_undo_of_a_paused_deployment_is_refused_before_any_write(live: Stack) -> None:
    assert live.post_json(ROUTE, {"Image": "nginx:1.26"}).status == 200
    live.cluster.advance(5)
    pause(live.cluster)
    live.cluster.journal.clear()

    answer = live.post_json(f"{ROUTE}/undo", {"Wait": True, "Timeout": "5s"})

    assert answer.status == 400, answer.body
    assert (answer.json["Code"], answer.json["Reason"]) == (
        "FAILED_PRECONDITION",
        "DEPLOYMENT_PAUSED",
    )
    assert live.cluster.journal.writes() == []
    assert live.image_of(NS, "web", "app") == "nginx:1.26"


def test_an_unwaited_change_of_a_paused_deployment_is_made_and_reported_paused(
    live: Stack,
) -> None:
    pause(live.cluster)

    answer = live.post_json(ROUTE, {"Image": "nginx:1.26"})
    live.cluster.advance(5)
    status = rollout_now(live)
    stream = live.get("/rollout/default/web/watch")

    assert answer.status == 200, answer.body
    assert answer.json["Changed"] is True
    assert (status["State"], status["Reason"]) == ("STATE_PAUSED", "DeploymentPaused")
    [line] = stream.body.decode().splitlines()
    assert json.loads(line)["Rollout"]["State"] == "STATE_PAUSED"


def test_a_deployment_paused_during_the_wait_ends_it_and_is_not_rolled_back(
    live: Stack,
) -> None:
    pending = in_background(
        live, {"Image": "nginx:1.26-bad", "Wait": True, "RollbackOnFailure": True}
    )
    while live.image_of(NS, "web", "app") != "nginx:1.26-bad":
        assert not pending.done(), pending.result().body
        concurrent.futures.wait([pending], timeout=0.01)
    pause(live.cluster)

    answer = driven(live, pending)

    assert answer.status == 200, answer.body
    assert answer.json["Rollout"]["State"] == "STATE_PAUSED"
    assert live.image_of(NS, "web", "app") == "nginx:1.26-bad"
    assert len([e for e in live.cluster.journal if e.method == "PATCH"]) == 1


# -- 7. a rollback is followed to its end; Image is what the container has now ---------------


def test_a_rolled_back_release_answers_once_the_restored_image_runs_again(live: Stack) -> None:
    answer = waited(live, Image="nginx:1.26-crash", RollbackOnFailure=True)

    assert answer.status == 200, answer.body
    body = answer.json
    rollout = body["Rollout"]
    assert (rollout["State"], rollout["Reason"]) == ("STATE_ROLLED_BACK", "CrashLoopBackOff")
    # Unambiguous: Image is what runs now; the failed one is named as such.
    assert (body["Image"], body["PreviousImage"]) == ("nginx:1.25", "nginx:1.25")
    assert (rollout["FailedImage"], rollout["RestoredImage"]) == ("nginx:1.26-crash", "nginx:1.25")
    rollback = rollout["Rollback"]
    assert (rollback["State"], rollback["Reason"]) == ("STATE_COMPLETE", "NewReplicaSetAvailable")
    assert rollback["UpdatedReplicas"] == rollback["AvailableReplicas"] == rollback["Replicas"]
    # When the answer came, the cluster agreed: the restored image had rolled out.
    assert rollout_now(live)["State"] == "STATE_COMPLETE"
    assert not new_pods(live.cluster, "nginx:1.26-crash") or all(
        "deletionTimestamp" in pod["metadata"] for pod in new_pods(live.cluster, "nginx:1.26-crash")
    )


# -- 8. /history attributes a revision to kubeupdate only when it made it -------------------


def test_history_does_not_attribute_a_later_kubectl_change_to_kubeupdate(live: Stack) -> None:
    headers = {"Content-Type": "application/json", "X-Request-Id": "release-7"}
    document = json.dumps({"Image": "nginx:1.26", "Reason": "release 7"}).encode()
    made = live.request("POST", ROUTE, document, headers)
    assert made.status == 200, made.body
    live.cluster.advance(60)
    # Someone runs `kubectl set image` afterwards: the Deployment's annotations,
    # kubeupdate's record among them, are copied to the new ReplicaSet.
    theirs = [
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.27"}
    ]
    live.cluster.patch(
        "deployments", NS, "web", json.dumps(theirs).encode(), "application/json-patch+json"
    )
    live.cluster.advance(60)

    answer = live.get("/history/default/web")

    assert answer.status == 200, answer.body
    newest, ours, *_ = answer.json["Revisions"]
    assert newest["Containers"][0]["Image"] == "nginx:1.27"
    assert "Change" not in newest
    assert newest.get("ChangeCause", "") == ""
    assert ours["Change"]["RequestId"] == "release-7"
    assert ours["Change"]["Image"] == "nginx:1.26"
    assert ours["ChangeCause"].endswith("(release 7)")
