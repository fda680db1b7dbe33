"""Simulated time: advancing it leaves the server free, and other processes can move it."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from devcluster.manifests import deployment, namespace

from devcluster import DevCluster, faults

from .raw import call
from .test_devcluster_kubectl import kubectl_binary


def clock(cluster: DevCluster, method: str = "GET", path: str = "", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    answer = call(cluster, method, f"/devcluster/v1/clock{path}", data, "application/json")
    return answer.status, json.loads(answer.body)


# --- the server's loop stays free -----------------------------------------------------


def test_advancing_over_many_rollouts_lets_the_server_run_between_chunks(
    devcluster: DevCluster,
) -> None:
    devcluster.create_namespace("many")
    for index in range(60):
        devcluster.create(deployment(f"d{index}", namespace="many", replicas=2))

    async def advance_while_counting() -> int:
        turns = 0
        done = asyncio.Event()

        async def other_task() -> None:  # stands for the server answering requests
            nonlocal turns
            while not done.is_set():
                turns += 1
                await asyncio.sleep(0)

        counting = asyncio.ensure_future(other_task())
        await devcluster.advance_async(3)
        done.set()
        await counting
        return turns

    assert devcluster._loop is not None
    future = asyncio.run_coroutine_threadsafe(advance_while_counting(), devcluster._loop)
    turns = future.result(timeout=120)
    # 60 Deployments, 120 Pods: hundreds of objects to look at, in chunks of 100, with
    # the loop's other tasks run between chunks.
    assert turns > 5
    stats = devcluster.controller_stats
    assert stats["chunks"] > turns
    assert stats["busySeconds"] >= stats["longestBlockSeconds"] > 0
    assert stats["busyCpuSeconds"] > 0
    assert stats["visits"]["pods"] >= 120
    assert all(
        (d["status"].get("availableReplicas"), d["status"]["observedGeneration"]) == (2, 1)
        for d in devcluster.list("deployments", "many")
    )


def test_advance_refuses_to_run_on_the_devclusters_own_thread(devcluster: DevCluster) -> None:
    async def inside() -> None:
        devcluster.advance(1)

    assert devcluster._loop is not None
    with pytest.raises(RuntimeError, match="await advance_async"):
        asyncio.run_coroutine_threadsafe(inside(), devcluster._loop).result(timeout=30)


# --- the admin API --------------------------------------------------------------------


def test_the_clock_is_read_and_moved_over_http(devcluster: DevCluster) -> None:
    status, before = clock(devcluster)
    assert status == 200
    assert before["speed"] == 0.0
    assert before["time"].endswith("Z")
    devcluster.create(deployment("web", replicas=2))
    status, after = clock(devcluster, "POST", "/advance", {"seconds": 30})
    assert status == 200
    assert after["unix"] == pytest.approx(before["unix"] + 30)
    # Answered once the controllers caught up: the rollout is done.
    web = devcluster.get("deployments", "default", "web") or {}
    assert web["status"]["availableReplicas"] == 2


def test_the_clock_can_be_started_and_stopped_over_http(devcluster: DevCluster) -> None:
    status, running = clock(devcluster, "PUT", "/speed", {"speed": 2})
    assert (status, running["speed"]) == (200, 2.0)
    assert devcluster.clock.speed == 2.0
    status, stopped = clock(devcluster, "PUT", "/speed", {"speed": 0})
    assert (status, stopped["speed"]) == (200, 0.0)
    assert devcluster.clock.speed == 0.0


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("POST", "/advance", {"seconds": -1}, "seconds must be between 0 and 31536000, not -1.0"),
        ("POST", "/advance", {"seconds": 1e12}, "seconds must be between 0 and 31536000"),
        ("POST", "/advance", {"seconds": "30"}, "'seconds' must be a number"),
        ("POST", "/advance", {}, "'seconds' must be a number"),
        ("POST", "/advance", [30], "the body must be a JSON object"),
        ("PUT", "/speed", {"speed": -2}, "speed must be zero or positive, not -2.0"),
        ("PUT", "/speed", {"speed": True}, "'speed' must be a number"),
    ],
)
def test_bad_clock_requests_are_refused_and_change_nothing(
    devcluster: DevCluster, method: str, path: str, body: Any, message: str
) -> None:
    _, before = clock(devcluster)
    status, answer = clock(devcluster, method, path, body)
    assert (status, answer["kind"], answer["reason"]) == (400, "Status", "BadRequest")
    assert answer["message"].startswith(message)
    _, after = clock(devcluster)
    assert (after["unix"], after["speed"]) == (before["unix"], before["speed"])


def test_unknown_admin_paths_and_methods_answer_as_kube_apiserver_does(
    devcluster: DevCluster,
) -> None:
    assert clock(devcluster, "DELETE")[0] == 405
    assert clock(devcluster, "GET", "/advance")[0] == 405
    answer = call(devcluster, "GET", "/devcluster/v1/nothing")
    assert answer.status == 404
    assert json.loads(answer.body)["reason"] == "NotFound"


def test_the_admin_api_needs_the_token_and_ignores_faults(devcluster: DevCluster) -> None:
    devcluster.faults.add("*", "*", faults.unavailable())
    assert clock(devcluster)[0] == 200  # faults imitate the cluster, not the emulator
    context = ssl.create_default_context(cafile=str(devcluster.ca_path))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{devcluster.url}/devcluster/v1/clock", context=context)  # noqa: S310
    assert refused.value.code == 401


# --- from another process -------------------------------------------------------------


def test_a_stopped_devcluster_is_advanced_from_another_process(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump_all([namespace("team"), deployment("web", "team", replicas=2)]))
    kubeconfig = tmp_path / "dc.kubeconfig"
    server = subprocess.Popen(
        [sys.executable, "-m", "devcluster", "--port", "0", "--speed", "0", "--seed", str(seed),
         "--kubeconfig-out", str(kubeconfig), "--no-events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip

    def kubectl(*args: str, stdin: str | None = None) -> str:
        return subprocess.run(
            [kubectl_binary(), "--kubeconfig", str(kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout

    try:
        assert server.stdout is not None
        banner = []
        for line in server.stdout:
            banner.append(line)
            if "Ctrl-C" in line:
                break
        printed = re.search(r"(echo .*?advance -f -)", "".join(banner), re.DOTALL)
        assert printed is not None, "".join(banner)
        kubectl("-n", "team", "set", "image", "deployment/web", "app=nginx:1.26")
        before = json.loads(kubectl("get", "--raw", "/devcluster/v1/clock"))
        waiting = kubectl("-n", "team", "rollout", "status", "deployment/web", "--watch=false")
        assert waiting.startswith("Waiting for deployment spec update to be observed")  # stopped
        # The command the banner printed, as a user pastes it.
        pasted = subprocess.run(
            ["bash", "-c", printed.group(1).replace("kubectl", kubectl_binary(), 1)],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        moved = json.loads(pasted.stdout)
        assert moved["unix"] == pytest.approx(before["unix"] + 30)
        done = kubectl("-n", "team", "rollout", "status", "deployment/web", "--watch=false")
        assert done.strip() == 'deployment "web" successfully rolled out'
        started = json.loads(
            kubectl("replace", "--raw", "/devcluster/v1/clock/speed", "-f", "-",
                    stdin='{"speed": 1}')
        )  # fmt: skip
        assert started["speed"] == 1.0
        stats = json.loads(kubectl("get", "--raw", "/devcluster/v1/stats"))
        assert stats["chunks"] > 0
        assert json.loads(kubectl("get", "events", "-A", "-o", "json"))["items"] == []
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    assert server.returncode == 0
