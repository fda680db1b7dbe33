"""The devcluster's simulated rollout controller, driven directly in stopped simulated time.

Each test owns a simulated cluster (:mod:`tests.devcluster.simulation`): a
Store, a SimulatedClock at speed 0 and a RolloutController. The tests read the
status fields the controllers write, never a client's verdict.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable

import pytest
from devcluster.clock import SimulatedClock
from devcluster.controllers import (
    CHANGE_CAUSE_ANNOTATION,
    CRASH_LOOP_BACK_OFF,
    IMAGE_PULL_BACK_OFF,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    FailureRules,
    RolloutController,
    template_hash,
)
from devcluster.controllers.objects import parse_time
from devcluster.store import Store

from tests.devcluster.simulation import (
    NS,
    START,
    Cluster,
    Object,
    Progress,
    condition,
    history,
    make_deployment,
    progress,
    progressing_reasons,
    ready,
    revision,
    rolled_out,
    set_image,
    simulated_cluster,
    waiting_reason,
)


@pytest.fixture
def cluster() -> Cluster:
    return simulated_cluster()


# --- a first rollout -----------------------------------------------------------------------


def test_first_rollout_completes_with_the_controllers_status(cluster: Cluster) -> None:
    cluster.create(make_deployment())
    # The write's own reconcile has not observed the generation yet.
    assert "status" not in cluster.deployment()
    assert cluster.store.list("replicasets") == []

    elapsed = cluster.run_until_done()
    assert elapsed == pytest.approx(1.25)  # observe_delay 0.1 s, Pods Ready 1 s later, 0.25 s ticks

    deployment = cluster.deployment()
    (rs,) = cluster.replica_sets()
    hash_ = rs["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL]
    assert hash_ == template_hash(deployment["spec"]["template"])
    assert rs["metadata"]["name"] == f"web-{hash_}"
    status = deployment["status"]
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 1,
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "terminatingReplicas": 0,  # a pointer in Go: written even when 0
    }
    available = condition(deployment, "Available")
    assert (available["status"], available["reason"], available["message"]) == (
        "True",
        "MinimumReplicasAvailable",
        "Deployment has minimum availability.",
    )
    progressing = condition(deployment, "Progressing")
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "True",
        "NewReplicaSetAvailable",
        f'ReplicaSet "web-{hash_}" has successfully progressed.',
    )
    assert set(progressing) == {
        "type",
        "status",
        "lastUpdateTime",
        "lastTransitionTime",
        "reason",
        "message",
    }
    assert progressing_reasons(cluster.events) == [
        "NewReplicaSetCreated",
        "ReplicaSetUpdated",
        "NewReplicaSetAvailable",
    ]
    assert deployment["metadata"]["annotations"][REVISION_ANNOTATION] == "1"
    assert deployment["metadata"]["generation"] == 1  # controller writes never bump it
    assert rolled_out(deployment)


def test_replica_set_and_pods_are_shaped_like_the_real_ones(cluster: Cluster) -> None:
    cluster.create(make_deployment())
    cluster.run_until_done()
    deployment = cluster.deployment()
    (rs,) = cluster.replica_sets()
    hash_ = rs["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL]

    assert rs["apiVersion"] == "apps/v1"
    assert rs["kind"] == "ReplicaSet"
    assert rs["metadata"]["labels"] == {"app": "web", POD_TEMPLATE_HASH_LABEL: hash_}
    assert rs["spec"]["selector"] == {"matchLabels": {"app": "web", POD_TEMPLATE_HASH_LABEL: hash_}}
    assert rs["spec"]["template"]["metadata"]["labels"] == rs["metadata"]["labels"]
    assert rs["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "web",
            "uid": deployment["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert rs["metadata"]["annotations"] == {
        CHANGE_CAUSE_ANNOTATION: "image nginx:1.25",
        REVISION_ANNOTATION: "1",
        "deployment.kubernetes.io/desired-replicas": "3",
        "deployment.kubernetes.io/max-replicas": "4",
    }
    assert rs["status"] == {
        "replicas": 3,
        "fullyLabeledReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "observedGeneration": 1,
        "terminatingReplicas": 0,
    }

    pods = cluster.pods(rs)
    assert len(pods) == 3
    assert len({p["metadata"]["name"] for p in pods}) == 3
    for pod in pods:
        assert re.fullmatch(
            rf"web-{hash_}-[bcdfghjklmnpqrstvwxz2456789]{{5}}", pod["metadata"]["name"]
        )
        assert pod["metadata"]["labels"] == rs["metadata"]["labels"]
        owner = pod["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "ReplicaSet",
            rs["metadata"]["name"],
            rs["metadata"]["uid"],
            True,
        )
        assert pod["spec"]["containers"] == [{"name": "app", "image": "nginx:1.25"}]
        assert pod["status"]["phase"] == "Running"
        assert ready(pod)
        (container,) = pod["status"]["containerStatuses"]
        assert container["ready"] is True
        assert "running" in container["state"]


def test_pods_become_ready_after_the_configured_delay(cluster: Cluster) -> None:
    controller = RolloutController(cluster.store, cluster.clock, ready_after=5.0, observe_delay=0)
    cluster.controller = controller
    cluster.create(make_deployment(replicas=1))
    (pod,) = cluster.pods()
    assert pod["status"]["phase"] == "Pending"
    assert waiting_reason(pod) == "ContainerCreating"
    assert controller.next_wakeup() == pytest.approx(START + 5.0)
    cluster.tick(4.9)
    assert not ready(cluster.pods()[0])
    cluster.tick(0.1)
    assert ready(cluster.pods()[0])
    assert rolled_out(cluster.deployment())


def test_min_ready_seconds_delay_availability(cluster: Cluster) -> None:
    cluster.create(make_deployment(replicas=2, minReadySeconds=5))
    cluster.tick(0.1)
    cluster.run(1.5)
    deployment = cluster.deployment()
    assert deployment["status"]["readyReplicas"] == 2
    assert "availableReplicas" not in deployment["status"]  # zero is omitted, as in Go
    assert condition(deployment, "Available")["reason"] == "MinimumReplicasUnavailable"
    assert progress(deployment) == Progress(updated=2, old=0, available=0)
    elapsed, _ = follow_wakeups(cluster, lambda: rolled_out(cluster.deployment()))
    assert 3 < elapsed <= 5  # Ready at 1.1 s, available 5 s later (whole-second condition times)
    assert cluster.replica_sets()[0]["spec"]["minReadySeconds"] == 5


# --- updates, revisions, undo ----------------------------------------------------------------


def test_observed_generation_lags_the_write(cluster: Cluster) -> None:
    cluster.create(make_deployment())
    cluster.run_until_done()
    cluster.change("web", set_image("nginx:1.26"))
    deployment = cluster.deployment()
    assert deployment["metadata"]["generation"] == 2
    assert deployment["status"]["observedGeneration"] == 1
    cluster.tick(0.05)
    assert cluster.deployment()["status"]["observedGeneration"] == 1
    cluster.tick(0.05)
    assert cluster.deployment()["status"]["observedGeneration"] == 2


def test_rolling_update_moves_one_surge_at_a_time(cluster: Cluster) -> None:
    cluster.create(make_deployment())
    cluster.run_until_done()
    cluster.events.clear()
    cluster.change("web", set_image("nginx:1.26"))

    steps: list[Progress] = []
    begin = cluster.clock.now()
    while not rolled_out(cluster.deployment()):
        cluster.tick()
        pods = cluster.active_pods()  # Terminating Pods are replaced at once, not counted
        # 3 replicas, 25 %/25 %: maxSurge rounds up to 1, maxUnavailable down to 0.
        assert len(pods) <= 4
        assert sum(ready(p) for p in pods) >= 3
        step = progress(cluster.deployment())
        if not steps or steps[-1] != step:
            steps.append(step)
        assert cluster.clock.now() - begin < 10
    # observe_delay, then three steps of ready_after (1 s) each.
    assert cluster.clock.now() - begin == pytest.approx(3.25)
    # One new Pod up, one old Pod down, never fewer than 3 available.
    assert steps == [
        Progress(updated=1, old=3, available=3),
        Progress(updated=2, old=2, available=3),
        Progress(updated=3, old=1, available=3),
        Progress(updated=3, old=0, available=3),
    ]

    old, new = cluster.replica_sets()
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 3)
    assert cluster.active_pods(old) == []
    cluster.tick(1.0)  # the last old Pod stops 1 s after SIGTERM
    assert cluster.pods(old) == []
    assert progressing_reasons(cluster.events) == [
        "NewReplicaSetAvailable",
        "NewReplicaSetCreated",
        "ReplicaSetUpdated",
        "NewReplicaSetAvailable",
    ]
    progressing = condition(cluster.deployment(), "Progressing")
    assert (
        progressing["message"]
        == f'ReplicaSet "{new["metadata"]["name"]}" has successfully progressed.'
    )
    # A rollout that keeps going keeps the True transition of the first one.
    assert progressing["lastTransitionTime"] == "2023-11-14T22:13:20Z"


def test_updated_replicas_climb_and_old_replicas_drain(cluster: Cluster) -> None:
    cluster.create(make_deployment(replicas=4))
    cluster.run_until_done()
    cluster.events.clear()
    cluster.change("web", set_image("nginx:1.26"))
    cluster.run_until_done()
    statuses = [
        e.object["status"]
        for e in cluster.events
        if e.resource == "deployments" and e.object["status"]["observedGeneration"] == 2
    ]
    updated = [s.get("updatedReplicas", 0) for s in statuses]
    old = [s.get("replicas", 0) - s.get("updatedReplicas", 0) for s in statuses]
    assert updated == sorted(updated)
    assert old == sorted(old, reverse=True)
    assert (updated[-1], old[-1]) == (4, 0)
    assert min(s.get("availableReplicas", 0) for s in statuses) >= 3  # 25 % of 4 unavailable


def test_percentages_round_like_the_controller(cluster: Cluster) -> None:
    cluster.create(make_deployment(replicas=10))
    cluster.run_until_done()
    cluster.change("web", set_image("nginx:1.26"))
    cluster.tick(0.1)
    old, new = cluster.replica_sets()
    # maxSurge 25 % of 10 = 2.5 → 3 and maxUnavailable 2.5 → 2, so up to 13 Pods and at
    # least 8 available: the new ReplicaSet starts at 3, the old one drops to the 8 still
    # needed, which frees room for 2 more new Pods at once.
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (8, 5)
    assert condition(cluster.deployment(), "Available")["status"] == "True"
    while not rolled_out(cluster.deployment()):
        cluster.tick()
        assert len(cluster.active_pods()) <= 13
        assert sum(ready(p) for p in cluster.active_pods()) >= 8


def test_absolute_surge_and_unavailable(cluster: Cluster) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    cluster.create(make_deployment(replicas=3, strategy=strategy))
    cluster.run_until_done()
    cluster.change("web", set_image("nginx:1.26"))
    cluster.tick(0.1)
    old, new = cluster.replica_sets()
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (2, 1)
    cluster.run_until_done()


def test_revisions_increment_and_copy_the_change_cause(cluster: Cluster) -> None:
    cluster.create(make_deployment())
    cluster.run_until_done()
    for image in ("nginx:1.26", "nginx:1.27"):
        cluster.change("web", set_image(image))
        cluster.run_until_done()
    assert history(cluster) == [
        (1, "image nginx:1.25"),
        (2, "image nginx:1.26"),
        (3, "image nginx:1.27"),
    ]
    assert cluster.deployment()["metadata"]["annotations"][REVISION_ANNOTATION] == "3"
    assert len(cluster.active_pods()) == 3
    cluster.tick(1.0)  # the old Pods have stopped
    assert len(cluster.pods()) == 3


def test_undo_reactivates_the_old_replica_set_with_a_new_revision(cluster: Cluster) -> None:
    cluster.create(make_deployment())
    cluster.run_until_done()
    first = cluster.replica_sets()[0]
    cluster.change("web", set_image("nginx:1.26"))
    cluster.run_until_done()

    def undo(deployment: Object) -> None:
        # kubectl rollout undo: the previous ReplicaSet's template without its hash label,
        # and its annotations (change-cause) back on the Deployment.
        template = copy.deepcopy(first["spec"]["template"])
        del template["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL]
        deployment["spec"]["template"] = template
        deployment["metadata"]["annotations"][CHANGE_CAUSE_ANNOTATION] = first["metadata"][
            "annotations"
        ][CHANGE_CAUSE_ANNOTATION]

    cluster.change("web", undo)
    elapsed = cluster.run_until_done()
    assert elapsed == pytest.approx(3.25)

    second, reactivated = cluster.replica_sets()
    assert len(cluster.store.list("replicasets")) == 2
    assert reactivated["metadata"]["uid"] == first["metadata"]["uid"]
    assert reactivated["metadata"]["annotations"][REVISION_ANNOTATION] == "3"
    assert reactivated["metadata"]["annotations"][REVISION_HISTORY_ANNOTATION] == "1"
    assert (reactivated["spec"]["replicas"], second["spec"]["replicas"]) == (3, 0)
    assert history(cluster) == [(2, "image nginx:1.26"), (3, "image nginx:1.25")]
    deployment = cluster.deployment()
    assert deployment["metadata"]["annotations"][REVISION_ANNOTATION] == "3"
    assert condition(deployment, "Progressing")["message"] == (
        f'ReplicaSet "{first["metadata"]["name"]}" has successfully progressed.'
    )


def test_history_beyond_the_limit_is_deleted_with_its_pods(cluster: Cluster) -> None:
    cluster.create(make_deployment(revisionHistoryLimit=2))
    cluster.run_until_done()
    for minor in range(26, 31):
        cluster.change("web", set_image(f"nginx:1.{minor}"))
        cluster.run_until_done()
        cluster.tick()
    cluster.tick(1.0)  # the last old Pods have stopped
    assert [revision(rs) for rs in cluster.replica_sets()] == [4, 5, 6]
    assert {p["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL] for p in cluster.pods()} == {
        cluster.replica_sets()[-1]["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL]
    }


# --- failures ---------------------------------------------------------------------------------


def test_failed_pull_ends_in_progress_deadline_exceeded(cluster: Cluster) -> None:
    cluster.create(make_deployment())
    cluster.run_until_done()
    cluster.change("web", set_image("nginx:1.26-bad"))
    cluster.tick(0.1)
    changed_at = cluster.clock.now()
    _, new = cluster.replica_sets()
    (pod,) = cluster.pods(new)
    assert waiting_reason(pod) == "ContainerCreating"
    cluster.tick(1.0)
    (pod,) = cluster.pods(new)
    assert waiting_reason(pod) == "ErrImagePull"
    cluster.tick(1.0)
    (pod,) = cluster.pods(new)
    assert waiting_reason(pod) == IMAGE_PULL_BACK_OFF
    assert pod["status"]["phase"] == "Pending"
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["message"].startswith('Back-off pulling image "nginx:1.26-bad": ErrImagePull: ')
    assert progress(cluster.deployment()) == Progress(updated=1, old=3, available=3)

    # The default deadline is 600 s of no progress; nothing times out before it.
    cluster.run(598 - (cluster.clock.now() - changed_at), step=10.0)
    progressing = condition(cluster.deployment(), "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "ReplicaSetUpdated")
    cluster.run(4, step=1.0)
    progressing = condition(cluster.deployment(), "Progressing")
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "False",
        "ProgressDeadlineExceeded",
        f'ReplicaSet "{new["metadata"]["name"]}" has timed out progressing.',
    )
    # The old Pods keep serving.
    old, new = cluster.replica_sets()
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (3, 1)
    assert condition(cluster.deployment(), "Available")["status"] == "True"
    assert cluster.deployment()["status"]["unavailableReplicas"] == 1


def test_crash_loop_restarts_climb_and_time_out(cluster: Cluster) -> None:
    cluster.create(make_deployment(replicas=1, progressDeadlineSeconds=60))
    cluster.run_until_done()
    cluster.change("web", set_image("example/app:crash-2"))
    cluster.run(100, step=1.0)
    _, new = cluster.replica_sets()
    (pod,) = cluster.pods(new)
    assert pod["status"]["phase"] == "Running"
    seen = [
        e.object["status"]
        for e in cluster.events
        if e.resource == "pods"
        and e.object["metadata"]["name"] == pod["metadata"]["name"]
        and e.object.get("status", {}).get("containerStatuses")
    ]
    states = [status["containerStatuses"][0]["state"] for status in seen]
    starts = sorted({parse_time(s["running"]["startedAt"]) for s in states if "running" in s})
    # Restarted at once after the first exit, then after 10 s, 20 s, 40 s of back-off
    # (each run lasts 1 s and the kubelet notices an exit 1 s later).
    assert [b - a for a, b in itertools.pairwise(starts)] == [2, 11, 21, 41]
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 4
    assert not any(ready({"status": status}) for status in seen)
    assert condition(cluster.deployment(), "Progressing")["reason"] == "ProgressDeadlineExceeded"


def test_a_fixed_image_recovers_from_a_timed_out_rollout(cluster: Cluster) -> None:
    cluster.create(make_deployment(progressDeadlineSeconds=30))
    cluster.run_until_done()
    cluster.change("web", set_image("nginx:1.26-bad"))
    cluster.run(40, step=1.0)
    assert condition(cluster.deployment(), "Progressing")["reason"] == "ProgressDeadlineExceeded"
    cluster.change("web", set_image("nginx:1.26"))
    cluster.run_until_done()
    assert len(cluster.active_pods()) == 3
    assert {p["spec"]["containers"][0]["image"] for p in cluster.active_pods()} == {"nginx:1.26"}


def test_failure_rules() -> None:
    rules = FailureRules()
    assert rules.failure_for("nginx:1.25") is None
    assert rules.failure_for("nginx:1.25-bad") == IMAGE_PULL_BACK_OFF
    assert rules.failure_for("ghcr.io/acme/app:crash") == CRASH_LOOP_BACK_OFF
    rules.add("registry.example/broken", IMAGE_PULL_BACK_OFF)
    assert rules.failure_for("registry.example/broken/app:1") == IMAGE_PULL_BACK_OFF
    rules.add("*:1.25-bad", CRASH_LOOP_BACK_OFF)  # the newest matching rule wins
    assert rules.failure_for("nginx:1.25-bad") == CRASH_LOOP_BACK_OFF
    rules.remove("*:1.25-bad")
    assert rules.failure_for("nginx:1.25-bad") == IMAGE_PULL_BACK_OFF
    with pytest.raises(ValueError, match="reason must be one of"):
        rules.add("x", "OOMKilled")
    assert FailureRules([]).failure_for("nginx:1.25-bad") is None


def test_custom_rules_reach_the_pods(cluster: Cluster) -> None:
    rules = FailureRules([("nginx:1.25", CRASH_LOOP_BACK_OFF)])
    cluster.controller = RolloutController(cluster.store, cluster.clock, rules, observe_delay=0)
    cluster.create(make_deployment(replicas=2))
    cluster.run(20)  # started at 1 s, exited at 2 s and 4 s, back-off from 5 s to 14 s...
    assert [waiting_reason(p) for p in cluster.pods()] == [CRASH_LOOP_BACK_OFF] * 2
    rules.clear()  # new rules apply to the running Pods at once
    cluster.tick()
    assert all(ready(p) for p in cluster.pods())


# --- pause, scale, Recreate, deletion --------------------------------------------------------


def test_paused_deployment_does_not_roll_until_resumed(cluster: Cluster) -> None:
    cluster.create(make_deployment())
    cluster.run_until_done()
    cluster.change("web", lambda d: d["spec"].update(paused=True))
    cluster.change("web", set_image("nginx:1.26"))
    cluster.run(700, step=10.0)
    deployment = cluster.deployment()
    assert deployment["status"]["observedGeneration"] == deployment["metadata"]["generation"]
    assert len(cluster.replica_sets()) == 1
    progressing = condition(deployment, "Progressing")
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "Unknown",
        "DeploymentPaused",
        "Deployment is paused",
    )
    assert progress(deployment) == Progress(updated=0, old=3, available=3)
    # Scaling still works while paused.
    cluster.change("web", lambda d: d["spec"].update(replicas=4))
    cluster.run(2)
    assert len(cluster.pods()) == 4
    assert cluster.deployment()["status"]["availableReplicas"] == 4

    cluster.events.clear()
    cluster.change("web", lambda d: d["spec"].update(paused=False))
    cluster.run_until_done()
    assert progressing_reasons(cluster.events)[:3] == [
        "DeploymentPaused",
        "DeploymentResumed",
        "NewReplicaSetCreated",
    ]
    assert progressing_reasons(cluster.events)[-1] == "NewReplicaSetAvailable"
    assert history(cluster)[-1] == (2, "image nginx:1.26")


def test_scale_up_and_down(cluster: Cluster) -> None:
    cluster.create(make_deployment(replicas=2))
    cluster.run_until_done()
    cluster.change("web", lambda d: d["spec"].update(replicas=5))
    cluster.tick(0.1)
    assert len(cluster.pods()) == 5
    assert progress(cluster.deployment()) == Progress(updated=5, old=0, available=2)
    cluster.run_until_done()
    (rs,) = cluster.replica_sets()
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "5"
    assert rs["metadata"]["generation"] == 2
    cluster.change("web", lambda d: d["spec"].update(replicas=1))
    cluster.tick(0.1)
    assert len(cluster.active_pods()) == 1
    assert cluster.deployment()["status"]["terminatingReplicas"] == 4
    assert rolled_out(cluster.deployment())
    cluster.change("web", lambda d: d["spec"].update(replicas=0))
    cluster.tick(0.1)
    assert cluster.active_pods() == []
    assert rolled_out(cluster.deployment())
    cluster.tick(1.0)  # Terminating Pods stop 1 s after SIGTERM
    assert cluster.pods() == []
    assert cluster.deployment()["status"] == {
        "observedGeneration": 4,
        "conditions": cluster.deployment()["status"]["conditions"],
        "terminatingReplicas": 0,
    }


def test_scaling_mid_rollout_is_proportional(cluster: Cluster) -> None:
    cluster.create(make_deployment(replicas=10))
    cluster.run_until_done()
    cluster.change("web", set_image("nginx:1.26-bad"))
    cluster.run(3)
    old, new = cluster.replica_sets()
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (8, 5)  # stuck: 13 = 10 + 3
    cluster.change("web", lambda d: d["spec"].update(replicas=20))
    cluster.tick(0.1)
    old, new = cluster.replica_sets()
    # 25 allowed (20 + surge 5): each ReplicaSet grows by 25/13, rounded; no new rollout step.
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (15, 10)
    for rs in (old, new):
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "20"
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "25"
    cluster.change("web", lambda d: d["spec"].update(replicas=4))
    cluster.tick(0.1)
    old, new = cluster.replica_sets()
    # 5 allowed (4 + surge 1) of 25: the largest takes the rounding leftover.
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (3, 2)
    cluster.run(2)
    assert len(cluster.pods()) == 5


def test_paused_mid_rollout_scales_proportionally(cluster: Cluster) -> None:
    cluster.create(make_deployment(replicas=4))
    cluster.run_until_done()
    cluster.change("web", set_image("nginx:1.26"))
    cluster.tick(0.1)
    cluster.change("web", lambda d: d["spec"].update(paused=True))
    cluster.tick(0.1)
    old, new = cluster.replica_sets()
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (3, 2)
    cluster.change("web", lambda d: d["spec"].update(replicas=8))
    cluster.run(3)
    old, new = cluster.replica_sets()
    # max-replicas 5 before, 10 after: both double, and the paused rollout moves no further.
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (6, 4)
    assert cluster.deployment()["status"]["availableReplicas"] == 10
    cluster.change("web", lambda d: d["spec"].update(paused=False))
    cluster.run_until_done()
    old, new = cluster.replica_sets()
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 8)


def test_recreate_removes_old_pods_before_new_ones(cluster: Cluster) -> None:
    cluster.create(make_deployment(strategy={"type": "Recreate"}))
    cluster.run_until_done()
    old_hash = cluster.replica_sets()[0]["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL]
    cluster.events.clear()
    cluster.change("web", set_image("nginx:1.26"))
    cluster.run_until_done()
    live: set[str] = set()
    hashes_alive_together: set[frozenset[str]] = set()
    for event in cluster.events:
        if event.resource != "pods":
            continue
        name = event.object["metadata"]["name"]
        if event.type == "DELETED":
            live.discard(name)
        else:
            live.add(name)
        hashes_alive_together.add(frozenset(n.split("-")[1] for n in live))
    assert all(len(hashes) <= 1 for hashes in hashes_alive_together)
    old, new = cluster.replica_sets()
    assert old["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL] == old_hash
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 3)
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "3"


def test_deleting_a_deployment_collects_its_replica_sets_and_pods(cluster: Cluster) -> None:
    cluster.create(make_deployment())
    cluster.create(make_deployment("api", replicas=1))
    cluster.run_until_done()
    cluster.change("web", set_image("nginx:1.26"))
    cluster.run_until_done()
    cluster.store.delete("deployments", NS, "web")
    cluster.reconcile()
    assert [rs["metadata"]["name"].split("-")[0] for rs in cluster.store.list("replicasets")] == [
        "api"
    ]
    # As the garbage collector's background deletion: the Pods terminate, then go.
    assert [p["metadata"]["name"].split("-")[0] for p in cluster.active_pods()] == ["api"]
    cluster.tick(1.0)
    assert [p["metadata"]["name"].split("-")[0] for p in cluster.pods()] == ["api"]


def test_reconcile_is_idempotent(cluster: Cluster) -> None:
    cluster.create(make_deployment())
    cluster.run_until_done()
    version = cluster.store.resource_version
    cluster.controller.reconcile()
    cluster.controller.reconcile()
    assert cluster.store.resource_version == version
    assert cluster.controller.next_wakeup() is None


def follow_wakeups(cluster: Cluster, done: Callable[[], bool]) -> tuple[float, int]:
    """Reconciles only when next_wakeup says so, as a server on a timer would."""
    begin, wakeups = cluster.clock.now(), 0
    while not done():
        wakeup = cluster.controller.next_wakeup()
        assert wakeup is not None
        cluster.tick(wakeup - cluster.clock.now())
        wakeups += 1
        assert wakeups < 20
    return cluster.clock.now() - begin, wakeups


def test_next_wakeup_drives_a_rollout_without_polling(cluster: Cluster) -> None:
    cluster.create(make_deployment())
    elapsed, wakeups = follow_wakeups(cluster, lambda: rolled_out(cluster.deployment()))
    assert elapsed == pytest.approx(1.1)
    assert wakeups == 2
    cluster.change("web", set_image("nginx:1.26"))
    # observe_delay, then three steps of ready_after: 0.1 + 3 × 1 s.
    elapsed, wakeups = follow_wakeups(cluster, lambda: rolled_out(cluster.deployment()))
    assert elapsed == pytest.approx(3.1)
    assert wakeups == 4


def test_next_wakeup_reaches_the_progress_deadline(cluster: Cluster) -> None:
    cluster.create(make_deployment(progressDeadlineSeconds=30))
    cluster.run_until_done()
    cluster.change("web", set_image("nginx:1.26-bad"))

    def timed_out() -> bool:
        reason: str = condition(cluster.deployment(), "Progressing")["reason"]
        return reason == "ProgressDeadlineExceeded"

    elapsed, wakeups = follow_wakeups(cluster, timed_out)
    assert 29 < elapsed < 31.2  # condition times have whole seconds
    # Lag, new Pod, pulls failing and retried at 10 s and 20 s, an old Pod stopping: no polling.
    assert wakeups <= 9


def test_no_progress_deadline_means_no_progressing_condition(cluster: Cluster) -> None:
    cluster.create(make_deployment(progressDeadlineSeconds=2**31 - 1))
    cluster.run_until_done()
    types = [c["type"] for c in cluster.deployment()["status"]["conditions"]]
    assert types == ["Available"]


def test_template_hash_is_stable_and_short() -> None:
    template = make_deployment()["spec"]["template"]
    assert template_hash(template) == template_hash(copy.deepcopy(template))
    assert re.fullmatch(r"[bcdfghjklmnpqrstvwxz2456789]{1,10}", template_hash(template))
    assert template_hash(template) != template_hash(
        make_deployment(image="nginx:1.26")["spec"]["template"]
    )
    assert template_hash(template) != template_hash(template, collision_count=1)


# --- cost: what a write or a tick looks at -----------------------------------------------------


class CountingStore(Store):
    """A Store that counts the objects read from it: what the controller's work costs."""

    def __init__(self, now: Callable[[], float]) -> None:
        super().__init__(now)
        self.reads = 0

    def get(self, resource: str, namespace: str, name: str) -> Object | None:
        self.reads += 1
        return super().get(resource, namespace, name)

    def list(self, resource: str, namespace: str | None = None) -> list[Object]:
        items = super().list(resource, namespace)
        self.reads += len(items)
        return items


def crowded_cluster(others: int) -> tuple[Cluster, CountingStore]:
    """``web`` rolled out among ``others`` unrelated Deployments with two Pods each, all settled."""
    clock = SimulatedClock(speed=0, start=START)
    store = CountingStore(clock.now)
    cluster = Cluster(store, clock, RolloutController(store, clock, seed=7))
    for index in range(others):
        cluster.create(make_deployment(f"other-{index}", replicas=2))
    cluster.create(make_deployment())
    cluster.run_until_done()
    for index in range(others):
        assert rolled_out(cluster.deployment(f"other-{index}"))
    return cluster, store


def cost_of(cluster: Cluster, store: CountingStore, work: Callable[[], None]) -> tuple[int, int]:
    """(objects the controller visited, objects read from the store) while ``work`` ran."""
    visits, reads = cluster.controller.visits.total(), store.reads
    work()
    return cluster.controller.visits.total() - visits, store.reads - reads


def costs_among(others: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The cost of a write to ``web``, then of its whole rollout, among ``others`` Deployments."""
    cluster, store = crowded_cluster(others)

    def roll_out() -> None:
        cluster.change("web", set_image("nginx:1.26"))
        cluster.run_until_done()

    write = cost_of(cluster, store, lambda: cluster.change("web", set_image("nginx:1.27")))
    rollout = cost_of(cluster, store, roll_out)
    assert len(cluster.active_pods()) == 2 * others + 3
    return write, rollout


def test_a_rollout_costs_the_same_among_5_or_200_other_deployments() -> None:
    few, many = costs_among(5), costs_among(200)
    assert few == many
    (write_visits, _), (rollout_visits, _) = few
    assert write_visits == 1  # the written Deployment, nothing else
    assert rollout_visits > 0


def test_a_tick_with_nothing_due_visits_nothing() -> None:
    cluster, store = crowded_cluster(50)
    assert cluster.controller.next_wakeup() is None
    assert cost_of(cluster, store, lambda: cluster.tick(600)) == (0, 0)
    # Only what comes due is looked at: the Pods of a scale-up, not the 100 others.
    cluster.change("other-0", lambda d: d["spec"].update(replicas=3))
    visits, _ = cost_of(cluster, store, lambda: cluster.tick(0.5))
    assert 0 < visits <= 10


def test_a_controller_made_after_its_objects_takes_them_over(cluster: Cluster) -> None:
    cluster.create(make_deployment())
    cluster.run(0.5)  # Pods created, not Ready yet
    cluster.controller = RolloutController(cluster.store, cluster.clock, seed=7)
    assert cluster.controller.next_wakeup() is not None
    cluster.run_until_done()
    assert len(cluster.pods()) == 3
