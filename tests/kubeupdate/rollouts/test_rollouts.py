"""Waits, rollout streams, rollbacks, dry runs and history: gRPC against the devcluster.

The devcluster's clock stands still unless a test moves it: :func:`driven`
advances simulated time from a worker thread while a call is pending, so a
rollout of several simulated minutes takes a fraction of a real second. The
journal of the devcluster shows what reached "Kubernetes".
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import grpc.aio
import pytest
from devcluster.journal import Entry
from google.protobuf import duration_pb2
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from devcluster import DevCluster, faults
from kubeupdate.kube.client import KubeClient
from kubeupdate.kube.credentials import Credentials
from kubeupdate.operations import operations
from kubeupdate.protocol.grpc.server import ServiceServer
from kubeupdate.rollouts.settings import RolloutSettings
from kubeupdate.rollouts.tracking import RolloutTracking

if TYPE_CHECKING:
    Stub = pb_grpc.DeploymentImageServiceAsyncStub

T = TypeVar("T")

NS = "default"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
REPLICA_SETS = f"/apis/apps/v1/namespaces/{NS}/replicasets"
PODS = f"/api/v1/namespaces/{NS}/pods"
State = pb.Rollout.State
# Short real-time delays so the tests stay fast; watches restart every second.
FAST = RolloutSettings(stuck_grace=0.05, watch_seconds=1, watch_linger=0)
KUBECTL = Path(sys.executable).parent / "kubectl"


@asynccontextmanager
async def service(
    cluster: DevCluster, settings: RolloutSettings = FAST
) -> AsyncIterator[tuple[Stub, RolloutTracking]]:
    async with KubeClient(Credentials.from_kubeconfig(cluster.kubeconfig_path)) as client:
        domain = operations(client, client, settings)
        server = ServiceServer(domain, port=0)
        port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield pb_grpc.DeploymentImageServiceStub(channel), domain.tracking
        finally:
            await server.stop(None)
            await domain.close()


def web(
    image: str = "nginx:1.25", replicas: int = 2, progress_deadline: int = 600
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": progress_deadline,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def rolled_out(cluster: DevCluster, **kwargs: Any) -> None:
    """Create ``web`` and run its first rollout to completion."""
    cluster.create(web(**kwargs))
    cluster.advance(120)


def set_image(image: str, **options: Any) -> pb.SetContainerImageRequest:
    return pb.SetContainerImageRequest(
        namespace=NS, deployment="web", container="app", image=image, **options
    )


def seconds(value: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(value * 1e9))
    return duration


def image_of(cluster: DevCluster) -> str:
    obj = cluster.get("deployments", NS, "web")
    assert obj is not None
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


async def driven(cluster: DevCluster, call: Awaitable[T], step: float = 1.0) -> T:
    """Await ``call`` while simulated time moves ``step`` seconds at a time."""
    task = asyncio.ensure_future(call)
    while not task.done():
        await asyncio.to_thread(cluster.advance, step)
        await asyncio.wait({task}, timeout=0.01)
    return task.result()


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded, generously) for something another task or thread makes true."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def requests(cluster: DevCluster, path: str, *, watch: bool | None = None) -> list[Entry]:
    return [
        e
        for e in cluster.journal
        if e.method == "GET"
        and e.path == path
        and (watch is None or (e.query.get("watch") == "true") == watch)
    ]


# -- outcomes of a wait -----------------------------------------------------------


async def test_waited_change_completes(devcluster: DevCluster) -> None:
    rolled_out(devcluster)
    async with service(devcluster) as (stub, _):
        answer = await driven(
            devcluster, stub.SetContainerImage(set_image("nginx:1.26", wait=True))
        )

    assert (answer.changed, answer.previous_image, answer.image) == (
        True,
        "nginx:1.25",
        "nginx:1.26",
    )
    rollout = answer.rollout
    assert rollout.state == State.STATE_COMPLETE
    assert rollout.reason == "NewReplicaSetAvailable"
    assert rollout.message == 'deployment "web" successfully rolled out'
    assert (rollout.replicas, rollout.updated_replicas, rollout.available_replicas) == (2, 2, 2)
    assert rollout.revision == 2
    assert rollout.duration.ToNanoseconds() > 0
    # Driven by the namespace's shared watches (one list each, then a watch), never by polling.
    for path in (DEPLOYMENTS, REPLICA_SETS, PODS):
        [listed] = requests(devcluster, path, watch=False)
        assert "labelSelector" not in listed.query
        assert "fieldSelector" not in listed.query
    # The journal records a watch when it ends, which the service caused as it answered.
    await eventually(lambda: bool(requests(devcluster, DEPLOYMENTS, watch=True)), "watched")
    gets = [e for e in devcluster.journal if e.method == "GET" and e.path == f"{DEPLOYMENTS}/web"]
    assert len(gets) == 1  # the read before the patch


async def test_progress_deadline_fails_the_wait(devcluster: DevCluster) -> None:
    rolled_out(devcluster, progress_deadline=30)
    # A long grace: only the Deployment's own progress deadline can end this wait.
    slow = RolloutSettings(stuck_grace=3600, watch_seconds=1)
    async with service(devcluster, slow) as (stub, _):
        answer = await driven(
            devcluster, stub.SetContainerImage(set_image("nginx:1.26-bad", wait=True))
        )

    assert answer.rollout.state == State.STATE_FAILED
    assert answer.rollout.reason == "ProgressDeadlineExceeded"
    assert answer.rollout.message == 'deployment "web" exceeded its progress deadline'
    assert image_of(devcluster) == "nginx:1.26-bad"  # no rollback was asked for


@pytest.mark.parametrize(
    ("image", "reasons"),
    [
        ("nginx:1.26-bad", {"ErrImagePull", "ImagePullBackOff"}),
        ("nginx:1.26-crash", {"CrashLoopBackOff"}),
    ],
)
async def test_stuck_pods_fail_the_wait_fast(
    devcluster: DevCluster, image: str, reasons: set[str]
) -> None:
    rolled_out(devcluster)  # progress deadline: 600 simulated seconds
    async with service(devcluster) as (stub, _):
        answer = await driven(devcluster, stub.SetContainerImage(set_image(image, wait=True)))

    assert answer.rollout.state == State.STATE_FAILED
    assert answer.rollout.reason in reasons
    assert answer.rollout.message.startswith("pod web-")
    assert f"container app: {answer.rollout.reason}" in answer.rollout.message
    obj = devcluster.get("deployments", NS, "web")
    assert obj is not None
    conditions = {c["type"]: c["reason"] for c in obj["status"]["conditions"]}
    assert conditions["Progressing"] != "ProgressDeadlineExceeded"  # failed before that


async def test_timeout_ends_the_wait_with_timed_out(devcluster: DevCluster) -> None:
    rolled_out(devcluster)
    async with service(devcluster) as (stub, _):
        # Simulated time stands still: the rollout cannot progress.
        answer = await stub.SetContainerImage(
            set_image("nginx:1.26", wait=True, timeout=seconds(0.3)), timeout=30
        )

    assert answer.rollout.state == State.STATE_TIMED_OUT
    assert answer.rollout.reason == "Timeout"
    assert answer.rollout.message.startswith("the rollout did not finish within 0.3s: ")
    assert image_of(devcluster) == "nginx:1.26"


async def test_caller_deadline_ends_the_wait_with_the_last_status(devcluster: DevCluster) -> None:
    rolled_out(devcluster)
    async with service(devcluster) as (stub, _):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.SetContainerImage(set_image("nginx:1.26", wait=True), timeout=1.0)

    assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    details = failure.value.details() or ""
    assert details.startswith(
        "the caller's deadline passed before the rollout of deployment default/web finished; "
        "last status: Waiting for deployment"
    )


# -- rollback ----------------------------------------------------------------------


async def test_failed_rollout_is_rolled_back(devcluster: DevCluster) -> None:
    rolled_out(devcluster)
    async with service(devcluster) as (stub, _):
        request = set_image("nginx:1.26-bad", wait=True, rollback_on_failure=True, reason="r1")
        answer = await driven(devcluster, stub.SetContainerImage(request))

    rollout = answer.rollout
    assert rollout.state == State.STATE_ROLLED_BACK
    assert rollout.reason in {"ErrImagePull", "ImagePullBackOff"}
    assert (rollout.failed_image, rollout.restored_image) == ("nginx:1.26-bad", "nginx:1.25")
    assert answer.image == "nginx:1.25"  # what the container has now
    assert answer.previous_image == "nginx:1.25"
    assert "rolled back: container app runs nginx:1.25 again" in rollout.message
    assert image_of(devcluster) == "nginx:1.25"
    # The rollback's own rollout was followed to its end before the call answered.
    assert rollout.rollback.state == State.STATE_COMPLETE
    assert rollout.rollback.reason == "NewReplicaSetAvailable"
    assert rollout.rollback.revision == 3  # the first revision's ReplicaSet, renumbered
    status = devcluster.get("deployments", NS, "web")
    assert status is not None
    assert status["status"]["updatedReplicas"] == status["status"]["availableReplicas"] == 2
    assert status["status"]["replicas"] == 2  # the failed Pods are gone
    rollback = [e for e in devcluster.journal if e.method == "PATCH"][-1]
    operations = json.loads(rollback.body)
    # A compare-and-swap: only if the container still runs the image this call set.
    assert {
        "op": "test",
        "path": "/spec/template/spec/containers/0/image",
        "value": "nginx:1.26-bad",
    } in operations
    record = json.loads(operations[-1]["value"])
    assert (record["rollback"], record["previous_image"], record["image"]) == (
        True,
        "nginx:1.26-bad",
        "nginx:1.25",
    )


async def test_a_rollback_that_does_not_finish_within_the_timeout_says_so(
    devcluster: DevCluster,
) -> None:
    rolled_out(devcluster)
    async with service(devcluster) as (stub, _):
        # Time stands still: neither the rollout nor its rollback can finish.
        request = set_image(
            "nginx:1.26-bad", wait=True, rollback_on_failure=True, timeout=seconds(0.5)
        )
        answer = await stub.SetContainerImage(request, timeout=30)

    rollout = answer.rollout
    assert rollout.state == State.STATE_ROLLED_BACK
    assert (answer.image, rollout.restored_image) == ("nginx:1.25", "nginx:1.25")
    assert rollout.rollback.state == State.STATE_TIMED_OUT
    assert rollout.rollback.reason == "Timeout"
    assert rollout.message.endswith(
        "rolled back: the template names nginx:1.25 again instead of nginx:1.26-bad, but the "
        f"rollback's rollout is timed_out: {rollout.rollback.message}"
    )
    assert image_of(devcluster) == "nginx:1.25"


async def test_the_rollback_is_followed_no_later_than_the_callers_deadline(
    devcluster: DevCluster,
) -> None:
    rolled_out(devcluster)
    # Up to 1 s of margin before the deadline (at most 20% of what remains), so the
    # answer has time to travel however loaded the machine is.
    settings = replace(FAST, deadline_margin=1.0)
    async with service(devcluster, settings) as (stub, _):
        request = set_image(
            "nginx:1.26-bad", wait=True, rollback_on_failure=True, timeout=seconds(3)
        )
        # Time stands still: the wait times out after 3 s, and the deadline leaves the
        # rollback's follow less than its 3 s: it ends TIMED_OUT in time to answer
        # (followed to the deadline, it would end with DEADLINE_EXCEEDED).
        answer = await stub.SetContainerImage(request, timeout=5.5)

    assert answer.rollout.state == State.STATE_ROLLED_BACK
    assert answer.rollout.rollback.state == State.STATE_TIMED_OUT
    assert answer.image == "nginx:1.25"


async def test_rollback_skipped_when_a_newer_change_arrived(devcluster: DevCluster) -> None:
    rolled_out(devcluster)
    async with service(devcluster) as (stub, _):
        request = set_image(
            "nginx:1.26-bad", wait=True, rollback_on_failure=True, timeout=seconds(0.5)
        )
        call = asyncio.ensure_future(stub.SetContainerImage(request, timeout=30))
        await eventually(lambda: image_of(devcluster) == "nginx:1.26-bad", "our change landed")
        # Someone else deploys a newer image while we wait (time stands still: we time out).
        newer = [
            {
                "op": "replace",
                "path": "/spec/template/spec/containers/0/image",
                "value": "nginx:1.27",
            }
        ]
        devcluster.patch(
            "deployments", NS, "web", json.dumps(newer).encode(), "application/json-patch+json"
        )
        answer = await call

    assert answer.rollout.state == State.STATE_TIMED_OUT
    assert answer.rollout.message.endswith(
        "not rolled back: container app now runs nginx:1.27, set by a newer change"
    )
    assert answer.image == "nginx:1.27"  # what the container has now
    assert not answer.rollout.HasField("rollback")
    assert image_of(devcluster) == "nginx:1.27"
    # Theirs did not go through HTTP; ours is the only PATCH: no rollback was even tried.
    assert len([e for e in devcluster.journal if e.method == "PATCH"]) == 1


# -- dry run, change record, history ---------------------------------------------


async def test_dry_run_stores_nothing(devcluster: DevCluster) -> None:
    rolled_out(devcluster)
    before = devcluster.get("deployments", NS, "web")
    async with service(devcluster) as (stub, _):
        answer = await stub.SetContainerImage(set_image("nginx:1.26", dry_run=True), timeout=10)

    assert (answer.dry_run, answer.changed) == (True, True)
    assert (answer.previous_image, answer.image) == ("nginx:1.25", "nginx:1.26")
    assert not answer.HasField("rollout")
    [patch] = [e for e in devcluster.journal if e.method == "PATCH"]
    assert patch.query == {"dryRun": "All"}
    assert devcluster.get("deployments", NS, "web") == before


async def kubectl_history(cluster: DevCluster) -> dict[int, str]:
    """``kubectl rollout history deployment/web``: revision -> CHANGE-CAUSE column."""
    result = await asyncio.to_thread(
        subprocess.run,
        [
            str(KUBECTL),
            "--kubeconfig",
            str(cluster.kubeconfig_path),
            "rollout",
            "history",
            "deployment/web",
            "-n",
            NS,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rows = [line.split(None, 1) for line in result.stdout.splitlines()[2:] if line.strip()]
    return {int(number): cause.strip() for number, cause in rows}


def someone_else_patches(cluster: DevCluster, *operations: dict[str, Any]) -> None:
    """A change made without kubeupdate (``kubectl set image``, ``kubectl edit``)."""
    body = json.dumps(list(operations)).encode()
    cluster.patch("deployments", NS, "web", body, "application/json-patch+json")
    cluster.advance(120)


async def test_history_attributes_to_kubeupdate_only_the_revisions_it_made(
    devcluster: DevCluster,
) -> None:
    rolled_out(devcluster)
    container = "/spec/template/spec/containers/0"
    async with service(devcluster) as (stub, _):
        request = set_image("nginx:1.26", wait=True, reason="release 42")
        answer = await driven(
            devcluster, stub.SetContainerImage(request, metadata=[("x-request-id", "req-42")])
        )
        assert answer.rollout.state == State.STATE_COMPLETE
        # Others change the template afterwards: the same image with a new variable,
        # then another image. The Deployment still carries kubeupdate's record.
        env = [{"name": "MODE", "value": "fast"}]
        someone_else_patches(devcluster, {"op": "add", "path": f"{container}/env", "value": env})
        someone_else_patches(
            devcluster, {"op": "replace", "path": f"{container}/image", "value": "nginx:1.27"}
        )
        history = await stub.ListRevisions(pb.ListRevisionsRequest(namespace=NS, deployment="web"))

    assert [r.revision for r in history.revisions] == [4, 3, 2, 1]  # newest first
    by_others, same_image, ours, first = history.revisions
    assert ours.HasField("change")
    change = ours.change
    assert (change.container, change.image, change.previous_image) == (
        "app",
        "nginx:1.26",
        "nginx:1.25",
    )
    assert change.by.startswith("ipv4:127.0.0.1:")
    assert (change.reason, change.request_id, change.rollback) == ("release 42", "req-42", False)
    assert ours.change_cause == (
        f"kubeupdate: container app nginx:1.25 → nginx:1.26 by {change.by} (release 42)"
    )
    assert [(c.name, c.image) for c in ours.containers] == [("app", "nginx:1.26")]
    for theirs in (by_others, same_image, first):
        assert not theirs.HasField("change"), theirs.revision
        assert theirs.change_cause == ""
    assert (by_others.replicas, ours.replicas, first.replicas) == (2, 0, 0)
    assert ours.replica_set.startswith("web-")
    assert ours.create_time.seconds > 0
    # kubectl shows no cause for a revision kubeupdate did not make (nor for its own:
    # kubeupdate does not write kubernetes.io/change-cause).
    assert await kubectl_history(devcluster) == {1: "<none>", 2: "<none>", 3: "<none>", 4: "<none>"}


async def test_a_change_cause_of_the_replaced_template_is_not_copied_to_kubeupdates_revision(
    devcluster: DevCluster,
) -> None:
    rolled_out(devcluster)
    cause = {"kubernetes.io/change-cause": "kubectl set image deployment/web app=nginx:1.25"}
    devcluster.patch(
        "deployments",
        NS,
        "web",
        json.dumps({"metadata": {"annotations": cause}}).encode(),
        "application/merge-patch+json",
    )
    devcluster.advance(1)
    async with service(devcluster) as (stub, _):
        request = set_image("nginx:1.26", wait=True, reason="release 43")
        await driven(devcluster, stub.SetContainerImage(request))
        history = await stub.ListRevisions(pb.ListRevisionsRequest(namespace=NS, deployment="web"))

    ours, first = history.revisions
    assert ours.change_cause.startswith("kubeupdate: container app nginx:1.25 → nginx:1.26 by ")
    assert first.change_cause == cause["kubernetes.io/change-cause"]
    kubectl = await kubectl_history(devcluster)
    assert kubectl == {1: cause["kubernetes.io/change-cause"], 2: "<none>"}


async def test_a_rollback_is_recorded_as_such(devcluster: DevCluster) -> None:
    rolled_out(devcluster)
    async with service(devcluster) as (stub, _):
        request = set_image("nginx:1.26-bad", wait=True, rollback_on_failure=True)
        answer = await driven(devcluster, stub.SetContainerImage(request))
        assert answer.rollout.state == State.STATE_ROLLED_BACK
        history = await stub.ListRevisions(pb.ListRevisionsRequest(namespace=NS, deployment="web"))

    # The rollback re-activates the first revision's ReplicaSet as revision 3: its
    # template is the one the rollback produced, so it is kubeupdate's now.
    restored, failed = history.revisions
    assert (restored.revision, failed.revision) == (3, 2)
    assert (restored.change.rollback, failed.change.rollback) == (True, False)
    assert (restored.change.previous_image, restored.change.image) == (
        "nginx:1.26-bad",
        "nginx:1.25",
    )
    assert restored.change.request_id == failed.change.request_id != ""


async def test_change_record_on_a_deployment_without_annotations(devcluster: DevCluster) -> None:
    devcluster.create(web())  # the controller has not run: no annotations yet
    obj = devcluster.get("deployments", NS, "web")
    assert obj is not None
    assert "annotations" not in obj["metadata"]
    async with service(devcluster) as (stub, _):
        await stub.SetContainerImage(set_image("nginx:1.26", reason="first"), timeout=10)

    obj = devcluster.get("deployments", NS, "web")
    assert obj is not None
    record = json.loads(obj["metadata"]["annotations"]["kubeupdate.dev/change"])
    assert (record["image"], record["reason"]) == ("nginx:1.26", "first")
    [patch] = [e for e in devcluster.journal if e.method == "PATCH"]
    operations = json.loads(patch.body)
    # Creating the whole map is pinned to the version read, so no one's annotations are lost.
    assert {
        "op": "test",
        "path": "/metadata/resourceVersion",
        "value": obj["metadata"]["resourceVersion"],
    } not in operations
    assert operations[-2]["path"] == "/metadata/resourceVersion"


# -- status and streams ---------------------------------------------------------------


async def test_get_rollout_status(devcluster: DevCluster) -> None:
    rolled_out(devcluster)
    graceful = RolloutSettings(stuck_grace=30, watch_seconds=1)
    async with service(devcluster, graceful) as (stub, _):
        request = pb.GetRolloutStatusRequest(namespace=NS, deployment="web")
        done = await stub.GetRolloutStatus(request, timeout=10)
        await stub.SetContainerImage(set_image("nginx:1.26-bad"), timeout=10)
        devcluster.advance(5)
        stuck = await stub.GetRolloutStatus(request, timeout=10)
        devcluster.advance(30)
        failed = await stub.GetRolloutStatus(request, timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetRolloutStatus(
                pb.GetRolloutStatusRequest(namespace=NS, deployment="nope"), timeout=10
            )

    assert done.rollout.state == State.STATE_COMPLETE
    # Within the grace (counted from the Pod's own timestamps), a warning only.
    assert stuck.rollout.state == State.STATE_PROGRESSING
    assert "(Warning: ImagePullBackOff - Back-off pulling image" in stuck.rollout.message
    # Past it, the snapshot judges as a wait does.
    assert failed.rollout.state == State.STATE_FAILED
    assert failed.rollout.reason == "ImagePullBackOff"
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    watches = [e for e in devcluster.journal if e.query.get("watch") == "true"]
    assert watches == []  # a snapshot is plain reads


async def test_watch_rollout_streams_each_change_until_complete(devcluster: DevCluster) -> None:
    rolled_out(devcluster, replicas=3)
    async with service(devcluster) as (stub, _):
        await stub.SetContainerImage(set_image("nginx:1.26"), timeout=10)
        call = stub.WatchRollout(pb.WatchRolloutRequest(namespace=NS, deployment="web"))
        first = await call.read()  # time stands still: this is the state right after the change
        assert isinstance(first, pb.WatchRolloutResponse)

        async def rest() -> list[pb.WatchRolloutResponse]:
            messages = []
            while isinstance(message := await call.read(), pb.WatchRolloutResponse):
                messages.append(message)
            return messages

        messages = [first, *await driven(devcluster, rest(), step=0.5)]

    rollouts = [m.rollout for m in messages]
    assert rollouts[0].state == State.STATE_PROGRESSING
    assert rollouts[0].message == "Waiting for deployment spec update to be observed..."
    assert rollouts[0].reason == "WaitingForObservation"
    assert rollouts[-1].state == State.STATE_COMPLETE
    assert rollouts[-1].message == 'deployment "web" successfully rolled out'
    assert all(r.state == State.STATE_PROGRESSING for r in rollouts[:-1])
    assert len(rollouts) >= 4  # the replicas move one by one
    updated = [r.updated_replicas for r in rollouts[1:]]  # the first still counts the old ones
    assert updated == sorted(updated)
    assert updated[-1] == 3
    assert all(a != b for a, b in itertools.pairwise(rollouts))  # changes only
    assert all(m.namespace == NS and m.deployment == "web" for m in messages)


async def test_watch_rollout_fails_fast_and_ends(devcluster: DevCluster) -> None:
    rolled_out(devcluster)
    async with service(devcluster) as (stub, _):
        await stub.SetContainerImage(set_image("nginx:1.26-crash"), timeout=10)

        async def collect() -> list[pb.WatchRolloutResponse]:
            call = stub.WatchRollout(pb.WatchRolloutRequest(namespace=NS, deployment="web"))
            return [message async for message in call]

        messages = await driven(devcluster, collect())

    assert messages[-1].rollout.state == State.STATE_FAILED
    assert messages[-1].rollout.reason == "CrashLoopBackOff"


async def test_client_disconnect_frees_the_watches(devcluster: DevCluster) -> None:
    rolled_out(devcluster)
    # Long watches: any watch request that ends during this test ended because we left.
    patient = RolloutSettings(stuck_grace=3600, watch_seconds=300, watch_linger=0)
    async with service(devcluster, patient) as (stub, rollouts):
        await stub.SetContainerImage(set_image("nginx:1.26-bad"), timeout=10)
        devcluster.advance(5)  # a new ReplicaSet whose Pods cannot start
        call = stub.WatchRollout(pb.WatchRolloutRequest(namespace=NS, deployment="web"))
        first = await call.read()
        assert isinstance(first, pb.WatchRolloutResponse)
        assert first.rollout.state == State.STATE_PROGRESSING
        assert rollouts.open_watches == 3  # the namespace's Deployments, ReplicaSets and Pods
        # The service counts a watch before its request reaches the devcluster.
        await eventually(lambda: devcluster.open_watches == 3, "the watches reached the server")
        # The journal records a request when it ends: the watches are still open.
        for path in (DEPLOYMENTS, REPLICA_SETS, PODS):
            assert requests(devcluster, path, watch=True) == []

        call.cancel()

        await eventually(lambda: rollouts.open_watches == 0, "the service closed its watches")
        await eventually(lambda: devcluster.open_watches == 0, "the devcluster closed them too")
        await eventually(
            lambda: all(
                len(requests(devcluster, path, watch=True)) == 1
                for path in (DEPLOYMENTS, REPLICA_SETS, PODS)
            ),
            "the devcluster saw the watches end",
        )


# -- watches that break ------------------------------------------------------------


async def test_wait_survives_a_dropped_watch(devcluster: DevCluster) -> None:
    rolled_out(devcluster)
    async with service(devcluster) as (stub, _):
        call = asyncio.ensure_future(
            stub.SetContainerImage(set_image("nginx:1.26", wait=True), timeout=30)
        )
        await eventually(lambda: bool(requests(devcluster, DEPLOYMENTS, watch=False)), "listed")
        # The next request on the path is a watch (the first, or the one after it ends).
        devcluster.faults.add("GET", DEPLOYMENTS, faults.drop_connection(), count=1)
        await eventually(
            lambda: any(e.status is None for e in requests(devcluster, DEPLOYMENTS)),
            "a watch was dropped",
        )
        answer = await driven(devcluster, call)

    assert answer.rollout.state == State.STATE_COMPLETE
    assert len(requests(devcluster, DEPLOYMENTS, watch=False)) == 1  # resumed, not listed again

    def after_the_drop() -> list[Entry]:
        entries = requests(devcluster, DEPLOYMENTS)
        dropped = next(i for i, e in enumerate(entries) if e.status is None)
        return entries[dropped:]

    # The journal records the resumed watch when it ends (as the service stops).
    await eventually(lambda: len(after_the_drop()) > 1, "the resumed watch ended")
    dropped, resumed = after_the_drop()[:2]
    assert resumed.query["watch"] == "true"
    assert int(resumed.query["resourceVersion"]) >= int(dropped.query["resourceVersion"])


async def test_a_wait_never_judges_from_a_shared_cache_older_than_its_write(
    devcluster: DevCluster,
) -> None:
    rolled_out(devcluster)
    warm = RolloutSettings(stuck_grace=0.05, watch_seconds=1, watch_linger=3600)
    async with service(devcluster, warm) as (stub, rollouts):
        # A first wait leaves the namespace's shared caches warm (the rollout is complete).
        first = await stub.SetContainerImage(set_image("nginx:1.25", wait=True), timeout=10)
        assert first.rollout.revision == 1
        # The Deployments' watch, restarting, is held up: the cache falls behind.
        devcluster.faults.add("GET", DEPLOYMENTS, faults.delay(3000), count=1)
        await eventually(lambda: devcluster.open_watches == 2, "the Deployments' watch stalled")

        answer = await driven(
            devcluster, stub.SetContainerImage(set_image("nginx:1.26", wait=True), timeout=30)
        )

    # Not revision 1's completion, which the stale cache still showed.
    assert answer.rollout.state == State.STATE_COMPLETE
    assert answer.rollout.revision == 2
    assert rollouts.open_watches == 0


async def test_wait_lists_again_after_410_expired() -> None:
    # No bookmarks: they would move the watch past the compaction before it restarts.
    with DevCluster(bookmark_interval=3600) as cluster:
        rolled_out(cluster)
        async with service(cluster) as (stub, _):
            call = asyncio.ensure_future(
                stub.SetContainerImage(set_image("nginx:1.26", wait=True), timeout=30)
            )
            await eventually(lambda: bool(requests(cluster, DEPLOYMENTS, watch=False)), "listed")
            cluster.create_namespace("elsewhere")  # history moves on without the Deployment
            cluster.compact()
            # The watch ends after watch_seconds; resuming from its version gets 410.
            await eventually(
                lambda: len(requests(cluster, DEPLOYMENTS, watch=False)) == 2, "listed again"
            )
            answer = await driven(cluster, call)

    assert answer.rollout.state == State.STATE_COMPLETE
    first_watch = requests(cluster, DEPLOYMENTS, watch=True)[0]
    assert first_watch.status == 200  # 410 arrives as an ERROR event in the stream


# -- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"wait": True, "dry_run": True}, "Wait cannot be combined with DryRun"),
        ({"rollback_on_failure": True}, "RollbackOnFailure needs Wait"),
        ({"timeout": seconds(10)}, "Timeout needs Wait"),
        ({"wait": True, "timeout": seconds(-1)}, "Timeout must be positive"),
        (
            {"wait": True, "timeout": duration_pb2.Duration(seconds=1, nanos=-5)},
            "Timeout is not a valid duration",
        ),
        ({"reason": "x" * 257}, "Reason is 257 characters long; at most 256"),
        ({"reason": "ok\nrm -rf"}, "Reason must be printable text"),
        ({"reason": "spoof\u202egnp.exe"}, "Reason must be printable text"),
    ],
)
async def test_bad_options_are_refused_before_any_write(
    devcluster: DevCluster, options: dict[str, Any], message: str
) -> None:
    rolled_out(devcluster)
    async with service(devcluster) as (stub, _):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.SetContainerImage(set_image("nginx:1.26", **options), timeout=10)

    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (failure.value.details() or "")
    assert devcluster.journal.writes() == []


async def test_many_waits_share_the_event_loop_and_the_watches(devcluster: DevCluster) -> None:
    rolled_out(devcluster)
    baseline = threading.active_count()
    async with service(devcluster) as (stub, rollouts):
        await stub.SetContainerImage(set_image("nginx:1.26"), timeout=10)
        request = set_image("nginx:1.26", wait=True)  # already set: each waits for the rollout
        calls = [asyncio.ensure_future(stub.SetContainerImage(request)) for _ in range(60)]
        # Three readers each: the namespace's Deployments, ReplicaSets and Pods.
        await eventually(lambda: rollouts.informers().readers == 180, "60 waits are reading")
        assert rollouts.following == 60
        assert rollouts.open_watches == 3
        await eventually(lambda: devcluster.open_watches == 3, "the watches reached the server")
        # No thread per wait (the resolver's small executor aside).
        assert threading.active_count() < baseline + 20
        got = await driven(devcluster, asyncio.gather(*calls))

    assert {answer.rollout.state for answer in got} == {State.STATE_COMPLETE}
    assert rollouts.following == 0
    assert rollouts.open_watches == 0
    for path in (DEPLOYMENTS, REPLICA_SETS, PODS):
        assert len(requests(devcluster, path, watch=False)) == 1


async def test_a_wait_without_permission_to_watch_pods_is_judged_by_the_deployment(
    devcluster: DevCluster,
) -> None:
    rolled_out(devcluster)
    devcluster.faults.add("GET", PODS, faults.forbidden(), count=None)
    async with service(devcluster) as (stub, _):
        answer = await driven(
            devcluster, stub.SetContainerImage(set_image("nginx:1.26", wait=True))
        )

    assert answer.rollout.state == State.STATE_COMPLETE
    [warning] = answer.rollout.warnings
    assert warning.startswith(
        "the Pods of deployment default/web could not be read (kubeupdate's service account "
        'may not list or watch pods in namespace "default"'
    )
