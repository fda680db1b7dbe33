"""The kubelet in simulated time: Pod status as a real kubelet writes it, failures and all."""

from __future__ import annotations

import pytest
from devcluster.controllers import StaticCatalog
from devcluster.controllers.catalog import PENDING, Found, Resolution, found
from devcluster.controllers.events import TTL
from devcluster.controllers.references import ImageReference, parse_reference
from devcluster.store import timestamp

from tests.devcluster.simulation import (
    NS,
    START,
    Cluster,
    Object,
    condition,
    make_deployment,
    set_image,
    simulated_cluster,
)

#: With observe_delay 0 the Pod exists at START; its containers start a second later.
S = START + 1


@pytest.fixture
def cluster() -> Cluster:
    return simulated_cluster(observe_delay=0)


def only_pod(cluster: Cluster) -> Object:
    (pod,) = cluster.pods()
    return pod


def app(pod: Object) -> Object:
    """The first container's status."""
    status: Object = pod["status"]["containerStatuses"][0]
    return status


def at(cluster: Cluster, when: float) -> Object:
    """The only Pod, with the clock moved to ``when`` (whole simulated seconds after START)."""
    cluster.run(when - cluster.clock.now(), step=1.0)
    return only_pod(cluster)


def pod_key(pod: Object) -> str:
    meta = pod["metadata"]
    return f"{meta['name']}_{meta['namespace']}({meta['uid']})"


def events_of(cluster: Cluster, name: str | None = None) -> list[Object]:
    """Stored Events (about ``name``), oldest first."""
    events = cluster.store.list("events", NS)
    if name is not None:
        events = [e for e in events if e["involvedObject"]["name"] == name]
    return sorted(events, key=lambda e: e["metadata"]["name"].rsplit(".", 1)[1])


def reasons(events: list[Object]) -> list[tuple[str, str]]:
    return [(e["reason"], e["message"]) for e in events]


def sequence(cluster: Cluster, pod_name: str) -> list[tuple[str, int]]:
    """What ``kubectl get pods -w`` shows of one Pod: (status, restarts), repeats folded."""
    seen: list[tuple[str, int]] = []
    for event in cluster.events:
        obj = event.object
        if event.resource != "pods" or obj["metadata"]["name"] != pod_name:
            continue
        statuses = (obj.get("status") or {}).get("containerStatuses")
        if not statuses:
            continue
        state, restarts = statuses[0]["state"], statuses[0]["restartCount"]
        word = (
            state.get("waiting", {}).get("reason")
            or state.get("terminated", {}).get("reason")
            or ("Running" if "running" in state else "?")
        )
        if obj["metadata"].get("deletionTimestamp") and word == "Running":
            word = "Terminating"
        if not seen or seen[-1] != (word, restarts):
            seen.append((word, restarts))
    return seen


# --- CrashLoopBackOff -----------------------------------------------------------------


def test_a_crashing_container_cycles_running_error_and_crash_loop_back_off(
    cluster: Cluster,
) -> None:
    cluster.create(make_deployment(image="nginx:1.26-crash", replicas=1))
    pod = at(cluster, S + 80)
    assert sequence(cluster, pod["metadata"]["name"]) == [
        ("ContainerCreating", 0),
        ("Running", 0),
        ("Error", 0),
        ("Running", 1),
        ("Error", 1),
        ("CrashLoopBackOff", 1),
        ("Running", 2),
        ("Error", 2),
        ("CrashLoopBackOff", 2),
        ("Running", 3),
        ("Error", 3),
        ("CrashLoopBackOff", 3),
        ("Running", 4),
        ("Error", 4),
        ("CrashLoopBackOff", 4),
    ]


def test_crash_loop_back_off_is_shaped_as_the_kubelet_writes_it(cluster: Cluster) -> None:
    cluster.create(make_deployment(image="nginx:1.26-crash", replicas=1))
    pod = at(cluster, S + 4)  # second exit at S+3, noticed a second later
    status = app(pod)
    run1 = status["containerID"]
    assert status["state"] == {
        "waiting": {
            "reason": "CrashLoopBackOff",
            "message": f"back-off 10s restarting failed container=app pod={pod_key(pod)}",
        }
    }
    assert status["lastState"] == {
        "terminated": {
            "exitCode": 1,
            "reason": "Error",
            "startedAt": timestamp(S + 2),
            "finishedAt": timestamp(S + 3),
            "containerID": run1,
        }
    }
    assert (status["restartCount"], status["ready"], status["started"]) == (1, False, False)
    assert status["image"] == "docker.io/library/nginx:1.26-crash"
    assert status["imageID"].startswith("docker.io/library/nginx@sha256:")
    assert run1.startswith("containerd://")
    assert pod["status"]["phase"] == "Running"
    ready = condition(pod, "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "ContainersNotReady",
        "containers with unready status: [app]",
    )
    # Later back-offs read as Go prints durations.
    message = app(at(cluster, S + 80))["state"]["waiting"]["message"]
    assert message.startswith("back-off 1m20s restarting failed container=app pod=")


def test_a_crashed_container_shows_error_with_its_own_container_id(cluster: Cluster) -> None:
    cluster.create(make_deployment(image="nginx:1.26-crash", replicas=1))
    running = app(at(cluster, S + 2))
    assert running["state"] == {"running": {"startedAt": timestamp(S + 2)}}
    assert (running["restartCount"], running["ready"], running["started"]) == (1, False, True)
    exited = app(at(cluster, S + 3))
    assert exited["state"]["terminated"]["reason"] == "Error"
    assert exited["state"]["terminated"]["exitCode"] == 1
    assert exited["state"]["terminated"]["containerID"] == running["containerID"]
    assert exited["lastState"]["terminated"]["containerID"] != running["containerID"]


def test_the_crash_back_off_starts_over_after_ten_minutes_of_running(cluster: Cluster) -> None:
    cluster.controller.rules.add("slow-crash", "CrashLoopBackOff", runs_for=700)
    cluster.create(make_deployment(image="acme/slow-crash:1", replicas=1))
    pod = at(cluster, S + 2200)
    words = [word for word, _ in sequence(cluster, pod["metadata"]["name"])]
    assert "CrashLoopBackOff" not in words
    assert app(pod)["restartCount"] == 3


# --- image pulls ----------------------------------------------------------------------


def test_a_tag_that_does_not_exist_fails_to_pull(cluster: Cluster) -> None:
    cluster.create(make_deployment(image="nginx:does-not-exist", replicas=1))
    pod = at(cluster, S + 100)
    assert pod["status"]["phase"] == "Pending"
    assert sequence(cluster, pod["metadata"]["name"]) == [
        ("ContainerCreating", 0),
        ("ErrImagePull", 0),
        ("ImagePullBackOff", 0),
        ("ErrImagePull", 0),  # S+10
        ("ImagePullBackOff", 0),
        ("ErrImagePull", 0),  # S+30
        ("ImagePullBackOff", 0),
        ("ErrImagePull", 0),  # S+70
        ("ImagePullBackOff", 0),
    ]


def test_pull_failures_read_as_the_kubelet_writes_them(cluster: Cluster) -> None:
    cluster.create(make_deployment(image="nginx:does-not-exist", replicas=1))
    ref = "docker.io/library/nginx:does-not-exist"
    error = (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}":'
        f' failed to resolve reference "{ref}": {ref}: not found'
    )
    status = app(at(cluster, S))
    assert status["state"] == {"waiting": {"reason": "ErrImagePull", "message": error}}
    assert (status["image"], status["imageID"], status["ready"]) == (
        "nginx:does-not-exist",
        "",
        False,
    )
    assert "containerID" not in status
    status = app(at(cluster, S + 1))
    assert status["state"] == {
        "waiting": {
            "reason": "ImagePullBackOff",
            "message": f'Back-off pulling image "nginx:does-not-exist": ErrImagePull: {error}',
        }
    }


def test_a_rollout_of_a_missing_tag_ends_in_progress_deadline_exceeded(cluster: Cluster) -> None:
    cluster.create(make_deployment(replicas=2, progressDeadlineSeconds=60))
    cluster.run_until_done()
    cluster.change("web", set_image("nginx:does-not-exist"))
    cluster.run(70, step=1.0)
    progressing = condition(cluster.deployment(), "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert cluster.deployment()["status"]["availableReplicas"] == 2  # the old Pods serve on


def test_the_kubelet_refuses_an_image_it_cannot_parse(cluster: Cluster) -> None:
    cluster.create(make_deployment(image="Nginx:1.27", replicas=1))
    pod = at(cluster, S + 30)
    message = (
        'Failed to apply default image tag "Nginx:1.27": couldn\'t parse image name "Nginx:1.27":'
        " invalid reference format: repository name (library/Nginx) must be lowercase"
    )
    assert app(pod)["state"] == {"waiting": {"reason": "InvalidImageName", "message": message}}
    assert pod["status"]["phase"] == "Pending"
    assert reasons(events_of(cluster, pod["metadata"]["name"]))[-2:] == [
        ("InspectFailed", message),
        ("Failed", "Error: InvalidImageName"),
    ]


# --- readiness ------------------------------------------------------------------------


def test_a_container_that_never_gets_ready_runs_unready(cluster: Cluster) -> None:
    cluster.create(make_deployment(image="nginx:1.26-unready", replicas=1))
    pod = at(cluster, S + 35)
    status = app(pod)
    assert status["state"] == {"running": {"startedAt": timestamp(S)}}
    assert (status["ready"], status["started"], status["restartCount"]) == (False, True, 0)
    assert pod["status"]["phase"] == "Running"
    for type_ in ("Ready", "ContainersReady"):
        found_ = condition(pod, type_)
        assert (found_["status"], found_["reason"], found_["message"]) == (
            "False",
            "ContainersNotReady",
            "containers with unready status: [app]",
        )
    assert condition(pod, "Initialized")["status"] == "True"
    (unhealthy,) = [e for e in events_of(cluster) if e["reason"] == "Unhealthy"]
    assert unhealthy["type"] == "Warning"
    assert unhealthy["message"] == "Readiness probe failed: HTTP probe failed with statuscode: 503"
    assert unhealthy["count"] == 4  # probed at S, S+10, S+20, S+30
    assert unhealthy["involvedObject"]["fieldPath"] == "spec.containers{app}"


def test_an_unready_rollout_stalls_until_its_progress_deadline(cluster: Cluster) -> None:
    cluster.create(make_deployment(replicas=2, progressDeadlineSeconds=60))
    cluster.run_until_done()
    cluster.change("web", set_image("nginx:1.26-unready"))
    cluster.run(50, step=1.0)
    progressing = condition(cluster.deployment(), "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "ReplicaSetUpdated")
    assert cluster.deployment()["status"]["updatedReplicas"] == 1
    cluster.run(20, step=1.0)
    progressing = condition(cluster.deployment(), "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")


# --- init containers ------------------------------------------------------------------


def with_init(image: str) -> Object:
    deployment = make_deployment(replicas=1)
    spec = deployment["spec"]["template"]["spec"]
    spec["initContainers"] = [{"name": "migrate", "image": image}]
    return deployment


def test_init_containers_run_to_completion_before_the_containers(cluster: Cluster) -> None:
    cluster.create(with_init("busybox:1.36"))
    pod = at(cluster, START)
    # With init containers, every container not created yet waits as PodInitializing.
    assert pod["status"]["initContainerStatuses"][0]["state"] == {
        "waiting": {"reason": "PodInitializing"}
    }
    pod = at(cluster, S + 1)
    assert pod["status"]["phase"] == "Pending"
    assert app(pod)["state"] == {"waiting": {"reason": "PodInitializing"}}
    pod = at(cluster, S + 2)  # migrate ran S..S+1, app started at the next look
    (migrate,) = pod["status"]["initContainerStatuses"]
    assert migrate["state"]["terminated"]["reason"] == "Completed"
    assert migrate["state"]["terminated"]["exitCode"] == 0
    assert app(pod)["state"] == {"running": {"startedAt": timestamp(S + 2)}}
    assert condition(pod, "Initialized")["lastTransitionTime"] == timestamp(S + 1)
    assert condition(pod, "Ready")["status"] == "True"


def test_a_failing_init_container_holds_the_pod(cluster: Cluster) -> None:
    cluster.create(with_init("busybox:does-not-exist"))
    pod = at(cluster, S + 35)
    (migrate,) = pod["status"]["initContainerStatuses"]
    assert migrate["state"]["waiting"]["reason"] == "ImagePullBackOff"
    assert app(pod)["state"] == {"waiting": {"reason": "PodInitializing"}}
    initialized = condition(pod, "Initialized")
    assert (initialized["status"], initialized["reason"], initialized["message"]) == (
        "False",
        "ContainersNotInitialized",
        "containers with incomplete status: [migrate]",
    )
    assert pod["status"]["phase"] == "Pending"


# --- Terminating ----------------------------------------------------------------------


def test_a_pod_scaled_away_terminates_gracefully(cluster: Cluster) -> None:
    cluster.create(make_deployment(replicas=2))
    cluster.run(5)
    cluster.change("web", lambda d: d["spec"].update(replicas=1))
    (going,) = [p for p in cluster.pods() if p["metadata"].get("deletionTimestamp")]
    now = cluster.clock.now()
    meta = going["metadata"]
    assert (meta["deletionTimestamp"], meta["deletionGracePeriodSeconds"]) == (
        timestamp(now + 30),
        30,
    )
    (rs,) = cluster.replica_sets()
    assert (rs["status"]["replicas"], rs["status"]["terminatingReplicas"]) == (1, 1)
    assert cluster.deployment()["status"]["terminatingReplicas"] == 1
    cluster.tick(0.5)
    assert app(cluster.store.get("pods", NS, meta["name"]) or {})["state"].get("running")
    cluster.tick(0.5)  # 1 s after SIGTERM: stopped, then removed
    assert cluster.store.get("pods", NS, meta["name"]) is None
    final = [e.object for e in cluster.events if e.resource == "pods" and e.type == "MODIFIED"][-1]
    assert final["metadata"]["name"] == meta["name"]
    assert final["status"]["phase"] == "Succeeded"
    assert app(final)["state"]["terminated"]["reason"] == "Completed"
    assert condition(final, "Ready")["reason"] == "PodCompleted"
    assert [e.type for e in cluster.events if e.object["metadata"]["name"] == meta["name"]][
        -1
    ] == "DELETED"
    kill = [e for e in events_of(cluster, meta["name"]) if e["reason"] == "Killing"]
    assert reasons(kill) == [("Killing", "Stopping container app")]


def test_a_pod_that_ignores_sigterm_is_killed_at_the_end_of_its_grace_period(
    cluster: Cluster,
) -> None:
    deployment = make_deployment(replicas=1)
    spec = deployment["spec"]["template"]["spec"]
    spec["terminationGracePeriodSeconds"] = 20
    spec["containers"][0]["lifecycle"] = {"preStop": {"sleep": {"seconds": 60}}}
    cluster.create(deployment)
    cluster.run(5)
    cluster.change("web", lambda d: d["spec"].update(replicas=0))
    name = only_pod(cluster)["metadata"]["name"]
    cluster.run(19.5, step=1.0)
    assert cluster.store.get("pods", NS, name) is not None
    cluster.run(1, step=0.5)
    assert cluster.store.get("pods", NS, name) is None
    final = [e.object for e in cluster.events if e.resource == "pods" and e.type == "MODIFIED"][-1]
    assert app(final)["state"]["terminated"]["exitCode"] == 137
    assert final["status"]["phase"] == "Failed"


def test_a_pod_stuck_pulling_goes_at_once_when_deleted(cluster: Cluster) -> None:
    cluster.create(make_deployment(image="nginx:does-not-exist", replicas=1))
    cluster.run(5)
    cluster.change("web", lambda d: d["spec"].update(replicas=0))
    assert cluster.pods() == []
    final = [e.object for e in cluster.events if e.resource == "pods" and e.type == "MODIFIED"][-1]
    assert app(final)["state"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert final["status"]["phase"] == "Failed"


def test_a_rolling_update_replaces_terminating_pods_at_once(cluster: Cluster) -> None:
    cluster.create(make_deployment(replicas=1))
    cluster.run(5)
    cluster.change("web", set_image("nginx:1.26"))
    cluster.run(1.5, step=0.5)  # new Pod Ready at +1 s; the old one is told to stop
    old, new = cluster.replica_sets()
    assert old["status"]["terminatingReplicas"] == 1
    assert (new["status"]["replicas"], new["status"]["availableReplicas"]) == (1, 1)
    assert cluster.deployment()["status"]["terminatingReplicas"] == 1
    assert condition(cluster.deployment(), "Progressing")["reason"] == "NewReplicaSetAvailable"


# --- Events ---------------------------------------------------------------------------


def test_a_rollout_writes_the_events_a_cluster_shows(cluster: Cluster) -> None:
    cluster.create(make_deployment(replicas=1))
    cluster.run(3)
    (rs,) = cluster.replica_sets()
    pod = only_pod(cluster)
    name = pod["metadata"]["name"]
    assert reasons(events_of(cluster, "web")) == [
        ("ScalingReplicaSet", f"Scaled up replica set {rs['metadata']['name']} from 0 to 1")
    ]
    assert reasons(events_of(cluster, rs["metadata"]["name"])) == [
        ("SuccessfulCreate", f"Created pod: {name}")
    ]
    pod_events = events_of(cluster, name)
    assert [e["reason"] for e in pod_events] == [
        "Scheduled",
        "Pulling",
        "Pulled",
        "Created",
        "Started",
    ]
    scheduled, pulling, pulled, created, started = pod_events
    assert scheduled["message"] == f"Successfully assigned default/{name} to devcluster"
    assert (scheduled["source"], scheduled["firstTimestamp"], scheduled["eventTime"]) == (
        {},
        None,
        f"{timestamp(START)[:-1]}.000000Z",
    )
    assert (scheduled["reportingComponent"], scheduled["action"]) == (
        "default-scheduler",
        "Binding",
    )
    assert pulling["message"] == 'Pulling image "nginx:1.25"'
    assert pulled["message"].startswith(
        'Successfully pulled image "nginx:1.25" in 1s (1s including'
    )
    assert created["message"] == "Created container: app"
    assert started["message"] == "Started container app"
    assert started["source"] == {"component": "kubelet", "host": "devcluster"}
    assert started["involvedObject"] == {
        "kind": "Pod",
        "namespace": NS,
        "name": name,
        "uid": pod["metadata"]["uid"],
        "apiVersion": "v1",
        "resourceVersion": started["involvedObject"]["resourceVersion"],
        "fieldPath": "spec.containers{app}",
    }
    assert (started["type"], started["count"], started["firstTimestamp"]) == (
        "Normal",
        1,
        timestamp(S),
    )
    assert (started["reportingComponent"], started["reportingInstance"]) == (
        "kubelet",
        "devcluster",
    )


def test_repeated_events_are_counted_not_repeated(cluster: Cluster) -> None:
    cluster.create(make_deployment(image="nginx:does-not-exist", replicas=1))
    cluster.run(75, step=1.0)
    back_off = [e for e in events_of(cluster) if e["reason"] == "BackOff"]
    assert len(back_off) == 1
    (event,) = back_off
    assert (event["type"], event["message"]) == (
        "Normal",
        'Back-off pulling image "nginx:does-not-exist"',
    )
    assert event["count"] == 4  # one per back-off, at S+1, S+11, S+31, S+71
    assert (event["firstTimestamp"], event["lastTimestamp"]) == (
        timestamp(S + 1),
        timestamp(S + 71),
    )
    failed = {e["message"]: e["count"] for e in events_of(cluster) if e["reason"] == "Failed"}
    assert failed["Error: ErrImagePull"] == 4
    assert failed["Error: ImagePullBackOff"] == 4


def test_crash_loops_report_back_off_restarting(cluster: Cluster) -> None:
    cluster.create(make_deployment(image="nginx:1.26-crash", replicas=1))
    pod = at(cluster, S + 40)
    (back_off,) = [e for e in events_of(cluster) if e["reason"] == "BackOff"]
    assert back_off["type"] == "Warning"
    assert back_off["message"] == f"Back-off restarting failed container app in pod {pod_key(pod)}"
    assert back_off["count"] == 3
    pulled = [e for e in events_of(cluster) if e["reason"] == "Pulled"]
    assert [e["message"] for e in pulled][-1] == (
        'Container image "nginx:1.26-crash" already present on machine'
    )


def test_events_expire_an_hour_after_their_last_write(cluster: Cluster) -> None:
    cluster.create(make_deployment(replicas=1))
    cluster.run(3)
    assert events_of(cluster)
    cluster.run(TTL - 10, step=60.0)
    assert events_of(cluster)
    cluster.run(20, step=5.0)
    assert events_of(cluster) == []


def test_no_events_when_told_not_to_record() -> None:
    quiet = simulated_cluster(observe_delay=0, record_events=False)
    quiet.create(make_deployment(replicas=1))
    quiet.run(3)
    assert quiet.store.list("events") == []


# --- catalogues -----------------------------------------------------------------------


class SlowRegistry:
    """A catalogue that answers later, as one backed by a real registry would."""

    def __init__(self) -> None:
        self.generation = 0
        self.known: dict[str, Resolution] = {}
        self.asked: list[str] = []

    def resolve(self, reference: ImageReference) -> Resolution:
        self.asked.append(reference.normalized)
        return self.known.get(reference.normalized, PENDING)

    def answer(self, reference: str, resolution: Resolution) -> None:
        self.known[reference] = resolution
        self.generation += 1


def test_a_catalogue_may_answer_later() -> None:
    registry = SlowRegistry()
    slow = simulated_cluster(observe_delay=0, catalog=registry)
    slow.create(make_deployment(replicas=1))
    pod = at(slow, S + 5)
    assert app(pod)["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert len(registry.asked) > 1  # asked again while it had no answer
    reference = "docker.io/library/nginx:1.25"
    registry.answer(reference, found(parse_reference(reference)))
    pod = at(slow, S + 6)
    assert app(pod)["state"] == {"running": {"startedAt": timestamp(S + 6)}}
    assert isinstance(registry.known[reference], Found)


def test_catalogue_changes_reach_pods_at_once() -> None:
    catalog = StaticCatalog({"acme/web": ["1.0"]})
    local = simulated_cluster(observe_delay=0, catalog=catalog)
    local.create(make_deployment(image="acme/web:2.0", replicas=1))
    assert app(at(local, S + 5))["state"]["waiting"]["reason"] == "ImagePullBackOff"
    catalog.add("acme/web", "2.0")  # pushed
    assert "running" in app(at(local, S + 6))["state"]


def test_the_spam_filter_slows_the_events_about_one_object(cluster: Cluster) -> None:
    cluster.create(make_deployment(image="nginx:1.26-crash", replicas=1))
    pod = at(cluster, S + 3000)
    events = events_of(cluster, pod["metadata"]["name"])
    counted = sum(e.get("count", 1) for e in events)
    # 25 at once, then one per 5 minutes: about 35 over 50 minutes of crash loop, while
    # the kubelet had several times more to say (Pulled, Created, Started per restart).
    assert 25 < counted <= 25 + 3000 // 300 + 1
    restarts = app(pod)["restartCount"]
    assert 3 * restarts > counted
