"""The Python API: lifecycle, seeding, simulated time and object helpers."""

from __future__ import annotations

import time

import pytest
from devcluster.manifests import deployment, namespace

from devcluster import ApiError, DevCluster


def test_seed_creates_namespaces_and_finishes_rollouts() -> None:
    seed = [deployment("web", replicas=2), deployment("api", namespace="staging"), namespace("x")]
    with DevCluster(tls=False, seed=seed) as cluster:
        assert cluster.get("namespaces", "", "staging") is not None
        assert cluster.get("namespaces", "", "x") is not None
        web = cluster.get("deployments", "default", "web") or {}
        assert web["status"]["availableReplicas"] == 2
        assert len(cluster.list("pods", "default", label_selector="app=web")) == 2


def test_builtin_namespaces_exist(devcluster: DevCluster) -> None:
    names = {n["metadata"]["name"] for n in devcluster.list("namespaces")}
    assert names == {"default", "kube-system", "kube-public", "kube-node-lease"}


def test_get_of_a_missing_object_is_none(devcluster: DevCluster) -> None:
    assert devcluster.get("deployments", "default", "nope") is None


def test_create_namespace_is_idempotent(devcluster: DevCluster) -> None:
    first = devcluster.create_namespace("team")
    assert devcluster.create_namespace("team") == first


def test_create_validates(devcluster: DevCluster) -> None:
    with pytest.raises(ApiError) as exc:
        devcluster.create(deployment("web", containers={"app": ""}))
    assert exc.value.code == 422


def test_create_refuses_unknown_kinds(devcluster: DevCluster) -> None:
    with pytest.raises(ValueError, match="does not serve kind 'Job'"):
        devcluster.create({"kind": "Job", "metadata": {"name": "j"}})


def test_time_stands_still_until_advanced(devcluster: DevCluster) -> None:
    devcluster.create(deployment("web", replicas=2))
    assert (devcluster.get("deployments", "default", "web") or {})["status"].get(
        "availableReplicas", 0
    ) == 0
    devcluster.advance(30)
    web = devcluster.get("deployments", "default", "web") or {}
    assert web["status"]["availableReplicas"] == 2
    assert web["status"]["observedGeneration"] == 1


def test_a_running_clock_rolls_out_without_advance() -> None:
    with DevCluster(tls=False, speed=100.0) as cluster:
        cluster.create(deployment("web"))
        for _ in range(500):
            web = cluster.get("deployments", "default", "web") or {}
            if web.get("status", {}).get("availableReplicas") == 1:
                break
            time.sleep(0.01)
        assert web["status"]["availableReplicas"] == 1


def test_a_failing_image_ends_with_progress_deadline_exceeded(devcluster: DevCluster) -> None:
    devcluster.rules.add("broken", "CrashLoopBackOff")
    devcluster.create(deployment("web", containers={"app": "broken:1"}))
    devcluster.advance(700)
    web = devcluster.get("deployments", "default", "web") or {}
    progressing = next(c for c in web["status"]["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")


def test_advance_refuses_to_go_back(devcluster: DevCluster) -> None:
    with pytest.raises(ValueError, match="backwards"):
        devcluster.advance(-1)


def test_calls_before_start_are_refused() -> None:
    cluster = DevCluster()
    with pytest.raises(RuntimeError, match="not running"):
        cluster.get("deployments", "default", "web")


def test_restart_after_stop_is_possible() -> None:
    cluster = DevCluster(tls=False)
    cluster.start()
    cluster.stop()
    cluster.start()
    try:
        assert cluster.get("namespaces", "", "default") is not None
    finally:
        cluster.stop()


def test_objects_handed_in_and_out_are_copies(devcluster: DevCluster) -> None:
    body = deployment("web")
    original = repr(body)
    created = devcluster.create(body)
    assert repr(body) == original  # defaults were not written into the caller's dict
    created["spec"]["replicas"] = 99
    got = devcluster.get("deployments", "default", "web") or {}
    got["metadata"]["labels"]["x"] = "y"
    again = devcluster.get("deployments", "default", "web") or {}
    assert again["spec"]["replicas"] == 1
    assert "x" not in again["metadata"]["labels"]
