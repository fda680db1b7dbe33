"""GetGuardedRollout through the gateway, the service and the devcluster: a record's verdict."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Any

from devcluster import DevCluster
from kubeupdate.guarded import records
from kubeupdate.guarded.records import Intent, Phase, RecordState, Verdict
from kubeupdate.rollouts.judgement import RolloutReport, RolloutState
from tests.stack import Response, Stack

NOW = 1_796_000_000.0
INTENT = Intent(
    deployment="web",
    container="app",
    image="nginx:9.9-broken",
    previous_image="nginx:1.25",
    rollback_on_failure=True,
    deadline=NOW + 300,
    request_id="r-1",
    caller="ci",
)
ROLLED_BACK = RolloutReport(
    RolloutState.ROLLED_BACK,
    "ImagePullBackOff",
    "rolled back",
    replicas=2,
    failed_image="nginx:9.9-broken",
    restored_image="nginx:1.25",
)


def store(cluster: DevCluster, name: str, *, holder: str = "replica-a") -> None:
    web = cluster.get("deployments", "default", "web")
    assert web is not None
    cluster.create(records.new_record(name, web, INTENT, holder=holder, duration=15, now=NOW))


def close(cluster: DevCluster, name: str) -> None:
    record = records.parse(cluster.get("leases", "default", name) or {})
    verdict = Verdict(applied=True, rollout=ROLLED_BACK, message="rolled back", closed_by="b")
    lease = records.closed(record, verdict, holder="replica-b", retention=600, now=NOW + 5)
    cluster.patch(
        "leases", "default", name, json.dumps(lease).encode(), "application/merge-patch+json"
    )


def guarded(stack: Stack, name: str, query: str = "") -> Response:
    return stack.get(f"/rollout/default/web/guarded/{name}{query}")


def test_a_closed_rollout_answers_its_verdict(stack: Stack) -> None:
    name = records.new_name()
    store(stack.cluster, name)
    close(stack.cluster, name)

    answer = guarded(stack, name)

    assert answer.status == 200, answer.body
    body: dict[str, Any] = answer.json
    assert body["Id"] == name
    assert body["Closed"] is True
    assert body["Holder"] == ""
    change = body["Change"]
    assert (change["Container"], change["PreviousImage"], change["Changed"]) == (
        "app",
        "nginx:1.25",
        True,
    )
    assert change["Image"] == "nginx:1.25"  # what runs now, after the rollback
    assert change["Rollout"]["State"] == "STATE_ROLLED_BACK"
    assert change["Rollout"]["FailedImage"] == "nginx:9.9-broken"
    assert change["Rollout"]["RestoredImage"] == "nginx:1.25"


def test_an_open_rollout_says_who_follows_it(stack: Stack) -> None:
    name = records.new_name()
    store(stack.cluster, name)

    body = guarded(stack, name).json

    assert (body["Closed"], body["Holder"]) == (False, "replica-a")
    assert body["Change"]["Changed"] is False  # only "intended": the patch may not have landed
    assert "Rollout" not in body["Change"]


def test_unknown_ids_and_other_deployments_are_not_found(stack: Stack) -> None:
    name = records.new_name()
    store(stack.cluster, name)

    unknown = guarded(stack, records.new_name())
    elsewhere = stack.get(f"/rollout/default/api/guarded/{name}")

    for answer in (unknown, elsewhere):
        assert answer.status == 404
        assert answer.json["Reason"] == "GUARDED_ROLLOUT_NOT_FOUND"


def test_an_id_that_cannot_be_one_is_refused(stack: Stack) -> None:
    answer = guarded(stack, "kube-system-lease")
    assert answer.status == 400
    assert answer.json["Reason"] == "NAME_INVALID"


def test_a_timeout_without_wait_is_refused(stack: Stack) -> None:
    answer = guarded(stack, records.new_name(), "?timeout=5s")
    assert answer.status == 400
    assert answer.json["Reason"] == "OPTIONS_INVALID"


def test_a_wait_answers_once_the_record_is_closed(stack: Stack) -> None:
    name = records.new_name()
    store(stack.cluster, name)
    watches = stack.cluster.open_watches
    answers: list[Response] = []
    waiter = threading.Thread(
        target=lambda: answers.append(guarded(stack, name, "?wait=true&timeout=60s"))
    )
    waiter.start()
    while stack.cluster.open_watches == watches and waiter.is_alive():
        waiter.join(0.02)  # the wait's Lease watch is open: it will hear the closing
    close(stack.cluster, name)
    waiter.join(30)

    [answer] = answers
    assert answer.json["Closed"] is True
    assert answer.json["Change"]["Rollout"]["State"] == "STATE_ROLLED_BACK"


def test_a_wait_that_times_out_answers_open(stack: Stack) -> None:
    name = records.new_name()
    store(stack.cluster, name)

    answer = guarded(stack, name, "?wait=true&timeout=0.2s")

    assert answer.status == 200
    assert (answer.json["Closed"], answer.json["Holder"]) == (False, "replica-a")


def test_a_record_round_trips_through_its_lease() -> None:
    web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "uid": "u"}}
    lease = records.new_record("kubeupdate-00", web, INTENT, holder="a", duration=3, now=NOW)
    record = records.parse(replace_metadata(lease, namespace="default", resourceVersion="7"))
    assert record.intent == INTENT
    assert record.state == RecordState(Phase.INTENDED)
    assert (record.holder, record.duration, record.resource_version) == ("a", 3, "7")
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "u"
    verdict = Verdict(applied=True, rollout=ROLLED_BACK, message="m", closed_by="b")
    done = records.parse(records.closed(record, verdict, holder="b", retention=60, now=NOW))
    assert done.closed
    assert done.state.verdict == replace(verdict)
    assert done.duration == 60


def replace_metadata(lease: dict[str, Any], **metadata: str) -> dict[str, Any]:
    lease["metadata"].update(metadata)
    return lease
