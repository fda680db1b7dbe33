"""Guarded rollouts across real replicas: ``kubeupdate serve --only grpc`` processes.

A waited change with RollbackOnFailure records its intent in a Lease before
its patch; when its replica dies (SIGKILL, or a crash at a named point), a
replica still running takes the record over once the Lease's duration (2 s
here) passes, judges the rollout, rolls it back compare-and-swap, and closes
the record with the verdict, which GetGuardedRollout answers. The devcluster's
clock stands still unless the test moves it; Lease expiry is real time (each
replica counts it on its own clock, as client-go does), so each test lasts a
few seconds.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from bench.processes import ServeProcess, serve_command
from devcluster import DevCluster
from kubeupdate.guarded import crashes, records
from kubeupdate.guarded.records import GuardedRecord, Intent, Phase, RecordState
from kubeupdate.rollouts.judgement import RolloutState
from tests.stack import seed_samples

WEB = "/apis/apps/v1/namespaces/default/deployments/web"
BAD = "nginx:1.26-bad"
GOOD = "nginx:1.25"
LEASE_SECONDS = 2


@pytest.fixture
def seeded(devcluster: DevCluster) -> DevCluster:
    seed_samples(devcluster)
    devcluster.advance(60)  # the samples are rolled out
    devcluster.journal.clear()
    return devcluster


def replica(cluster: DevCluster, *extra: str) -> ServeProcess:
    return ServeProcess(
        serve_command(
            "--only=grpc",
            "--no-auth",
            "--rate-limit=0",
            "--grpc-port=0",
            f"--kubeconfig={cluster.kubeconfig_path}",
            f"--guard-lease-duration={LEASE_SECONDS}",
            "--stuck-grace=5",
            *extra,
        ),
        expect=frozenset({"grpc"}),
    )


@dataclass
class Call:
    """A gRPC call made from a background thread."""

    answer: Any = None
    error: grpc.RpcError | None = None
    thread: threading.Thread | None = None

    def join(self) -> None:
        assert self.thread is not None
        self.thread.join(60)


def stub(process: ServeProcess) -> pb_grpc.DeploymentImageServiceStub:
    channel = grpc.insecure_channel(f"127.0.0.1:{process.grpc_port}")
    return pb_grpc.DeploymentImageServiceStub(channel)


def set_bad_image(process: ServeProcess, deployment: str = "web") -> Call:
    call = Call()
    request = pb.SetContainerImageRequest(
        namespace="default",
        deployment=deployment,
        container="app",
        image=BAD,
        wait=True,
        rollback_on_failure=True,
        timeout=duration_pb2.Duration(seconds=600),
        reason="release 7",
    )

    def send() -> None:
        try:
            call.answer = stub(process).SetContainerImage(request, timeout=60)
        except grpc.RpcError as exc:
            call.error = exc

    call.thread = threading.Thread(target=send, daemon=True)
    call.thread.start()
    return call


def until(condition: Callable[[], bool], what: str, *, cluster: DevCluster | None = None) -> None:
    """Poll (bounded); with ``cluster``, simulated time moves 5 s per look."""
    for _ in range(600):  # at most ~30 s of real time
        if condition():
            return
        if cluster is not None:
            cluster.advance(5)
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def guarded(cluster: DevCluster) -> list[GuardedRecord]:
    return [records.parse(lease) for lease in cluster.list("leases", "default")]


def the_record(cluster: DevCluster) -> GuardedRecord:
    [record] = guarded(cluster)
    return record


def image_of(cluster: DevCluster, deployment: str = "web") -> str:
    obj = cluster.get("deployments", "default", deployment)
    assert obj is not None
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def patches(cluster: DevCluster, deployment: str = "web") -> list[list[dict[str, Any]]]:
    path = f"/apis/apps/v1/namespaces/default/deployments/{deployment}"
    return [
        json.loads(e.body)
        for e in cluster.journal
        if e.method == "PATCH" and e.path == path and e.status == 200
    ]


def rollbacks(cluster: DevCluster, deployment: str = "web") -> int:
    """PATCHes that set the good image back (each tests the bad one first)."""
    return sum(
        1
        for ops in patches(cluster, deployment)
        if {"op": "test", "path": "/spec/template/spec/containers/0/image", "value": BAD} in ops
    )


def closed(cluster: DevCluster) -> bool:
    found = guarded(cluster)
    return bool(found) and all(record.closed for record in found)


def follow(process: ServeProcess, rollout_id: str) -> pb.GetGuardedRolloutResponse:
    request = pb.GetGuardedRolloutRequest(
        namespace="default", deployment="web", id=rollout_id, wait=True
    )
    answer: pb.GetGuardedRolloutResponse = stub(process).GetGuardedRollout(request, timeout=30)
    return answer


@pytest.fixture
def survivor(seeded: DevCluster) -> Iterator[ServeProcess]:
    with replica(seeded) as running:
        yield running


def test_a_replica_killed_mid_rollout_is_finished_by_another(
    seeded: DevCluster, survivor: ServeProcess
) -> None:
    with replica(seeded) as doomed:
        call = set_bad_image(doomed)
        until(lambda: any(r.state.phase is Phase.APPLIED for r in guarded(seeded)), "applied")
        doomed.process.kill()  # SIGKILL: no hand-over, the Lease just stops being renewed
        doomed.kill()
    call.join()
    assert call.error is not None
    assert call.error.code() == grpc.StatusCode.UNAVAILABLE
    assert image_of(seeded) == BAD

    until(lambda: closed(seeded), "the survivor closed the record", cluster=seeded)

    record = the_record(seeded)
    answer = follow(survivor, record.name)
    assert answer.closed
    assert answer.change.rollout.state == pb.Rollout.STATE_ROLLED_BACK
    assert (answer.change.rollout.failed_image, answer.change.rollout.restored_image) == (
        BAD,
        GOOD,
    )
    assert answer.change.image == GOOD
    assert image_of(seeded) == GOOD
    assert rollbacks(seeded) == 1
    assert record.transitions == 1  # taken over once
    cause = patches(seeded)[-1][-1]["value"]
    assert "on behalf of" in cause


@pytest.mark.parametrize("point", crashes.POINTS)
def test_a_crash_at_each_point_is_finished_safely(
    seeded: DevCluster, survivor: ServeProcess, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(crashes.ENVIRONMENT, point)
    with replica(seeded) as doomed:
        call = set_bad_image(doomed)
        until(lambda: doomed.process.poll() is not None, f"the crash at {point}", cluster=seeded)
        assert doomed.process.returncode == crashes.EXIT_STATUS
    call.join()

    until(lambda: closed(seeded), "the survivor closed the record", cluster=seeded)

    record = the_record(seeded)
    verdict = record.state.verdict
    assert verdict is not None
    assert image_of(seeded) == GOOD
    if point == "intent-recorded":
        # The patch was never sent: nothing to roll back, nothing was.
        assert not verdict.applied
        assert patches(seeded) == []
    else:
        assert verdict.applied
        assert verdict.rollout is not None
        assert verdict.rollout.state is RolloutState.ROLLED_BACK
        assert rollbacks(seeded) == 1  # never twice, even after a rollback already sent


def test_dead_holders_rollouts_are_each_rolled_back_exactly_once(seeded: DevCluster) -> None:
    names = [f"web-{i}" for i in range(10)]
    web = seeded.get("deployments", "default", "web")
    assert web is not None
    for name in names:
        copy = json.loads(json.dumps(web))
        copy["metadata"] = {"name": name, "namespace": "default"}
        copy["spec"]["selector"]["matchLabels"] = {"app": name}
        copy["spec"]["template"]["metadata"]["labels"] = {"app": name}
        copy.pop("status", None)
        seeded.create(copy)
    seeded.advance(60)
    for name in names:
        seeded.patch(
            "deployments",
            "default",
            name,
            json.dumps(
                [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": BAD}]
            ).encode(),
            "application/json-patch+json",
        )
        seeded.create(dead_record(seeded, name))
    seeded.journal.clear()

    with replica(seeded), replica(seeded):
        until(lambda: closed(seeded), "every record closed", cluster=seeded)

    assert len(guarded(seeded)) == 10
    for name in names:
        assert image_of(seeded, name) == GOOD
        assert rollbacks(seeded, name) == 1, name


def test_a_newer_change_while_the_guardian_waits_is_never_undone(
    seeded: DevCluster, survivor: ServeProcess
) -> None:
    seeded.patch(
        "deployments",
        "default",
        "web",
        json.dumps(
            [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": BAD}]
        ).encode(),
        "application/json-patch+json",
    )
    seeded.create(dead_record(seeded, "web"))
    until(lambda: the_record(seeded).transitions == 1, "the survivor took the record over")
    newer = "nginx:1.27"
    seeded.patch(
        "deployments",
        "default",
        "web",
        json.dumps(
            [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": newer}]
        ).encode(),
        "application/json-patch+json",
    )
    seeded.journal.clear()

    until(lambda: closed(seeded), "the survivor closed the record", cluster=seeded)

    assert image_of(seeded) == newer
    assert patches(seeded) == []
    verdict = the_record(seeded).state.verdict
    assert verdict is not None
    assert verdict.rollout is not None
    assert verdict.rollout.state is not RolloutState.ROLLED_BACK


def dead_record(cluster: DevCluster, deployment: str) -> dict[str, Any]:
    """The record a replica that died after its patch left behind (phase applied)."""
    workload = cluster.get("deployments", "default", deployment)
    assert workload is not None
    intent = Intent(
        deployment=deployment,
        container="app",
        image=BAD,
        previous_image=GOOD,
        rollback_on_failure=True,
        deadline=cluster.clock.now() + 3600,
        request_id="r-dead",
        caller="ci",
    )
    lease = records.new_record(
        records.new_name(),
        workload,
        intent,
        holder="dead-replica",
        duration=1,
        now=cluster.clock.now(),
    )
    state = RecordState(Phase.APPLIED, int(workload["metadata"]["generation"]))
    record = records.parse({**lease, "metadata": {**lease["metadata"], "resourceVersion": "1"}})
    written = records.with_state(record, state, now=cluster.clock.now())
    written["metadata"].pop("resourceVersion", None)
    return written


def test_sigterm_hands_the_rollout_over_through_the_gateway(
    seeded: DevCluster, survivor: ServeProcess
) -> None:
    leaving = ServeProcess(
        serve_command(
            "--no-auth",
            "--rate-limit=0",
            "--grpc-port=0",
            "--http-port=0",
            f"--kubeconfig={seeded.kubeconfig_path}",
            f"--guard-lease-duration={LEASE_SECONDS}",
            "--stuck-grace=5",
            "--grace=20",
        )
    )
    with leaving:
        assert leaving.http_port is not None
        answer: dict[str, Any] = {}

        def post() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", leaving.http_port, timeout=60)
            body = {"Image": BAD, "Wait": True, "RollbackOnFailure": True}
            connection.request(
                "POST",
                "/deployment/default/web/app",
                json.dumps(body),
                {"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            answer.update(status=response.status, headers=dict(response.getheaders()))
            answer["body"] = json.loads(response.read())

        thread = threading.Thread(target=post, daemon=True)
        thread.start()
        until(lambda: any(r.state.phase is Phase.APPLIED for r in guarded(seeded)), "applied")
        started = time.monotonic()
        code = leaving.terminate()
        stopped_after = time.monotonic() - started
        thread.join(30)

    assert code == 0, "\n".join(leaving.lines)
    assert stopped_after < 20  # within the grace: it did not wait for the rollout
    assert answer["status"] == 503
    assert "Retry-After" not in answer["headers"]
    body = answer["body"]
    assert body["Reason"] == "ROLLOUT_HANDED_OVER"
    rollout_id = the_record(seeded).name
    follow_path = f"/rollout/default/web/guarded/{rollout_id}?wait=true"
    assert body["Metadata"]["rollout_id"] == rollout_id
    assert body["Metadata"]["follow"] == follow_path
    assert body["Metadata"]["image"] == BAD
    assert body["Metadata"]["previous_image"] == GOOD
    assert follow_path in body["Detail"]
    # Released: the survivor takes over at once, not after a Lease duration.
    handed = the_record(seeded)
    assert handed.holder == "" or handed.transitions == 1

    until(lambda: closed(seeded), "the survivor closed the record", cluster=seeded)
    final = follow(survivor, rollout_id)
    assert final.change.rollout.state == pb.Rollout.STATE_ROLLED_BACK
    assert image_of(seeded) == GOOD
    assert rollbacks(seeded) == 1
