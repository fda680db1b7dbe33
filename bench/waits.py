"""Waits at scale: N waited changes pending at once, then released all together.

Each run of :func:`waits_at_scale` gets a fresh devcluster (clock stopped)
and a fresh service and gateway (``serve --only grpc`` / ``--only gateway``),
so its figures are its own:

1. N Deployments of one replica, spread over 100 namespaces or all in one,
   rolled out; then N ``SetContainerImage`` calls with ``Wait`` from this
   process (100 at a time, each batch followed before the next), each to a
   new image. No rollout can progress: the clock stands still.
2. Once the service follows all N (``kubeupdate_followed_rollouts``): its
   resident memory over its idle memory, per wait; REST GET p50 with the
   waits pending over idle; the Kubernetes lists and watches the service sent
   (its ``kubeupdate_kubernetes_requests_total``).
3. Release: the devcluster's admin API moves the clock a simulated second at
   a time until every Deployment is complete, while this process watches the
   Deployments itself. The devcluster's share is the time from the release to
   the last completion that watch received; kubeupdate's is the time from then
   to the last answer.

:func:`notice_latency` compares a waited ``curl`` with ``kubectl rollout
status`` on the same rollouts, one at a time.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc.aio
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from bench.cluster import Access
from bench.loadgen import closed_loop, percentile
from bench.processes import DevclusterProcess, ServeProcess, devcluster_command, serve_command
from kubeupdate.workloads.deployments import RolloutFailed, rollout_status

#: Clock stopped; a bookmark a minute per watch, as kube-apiserver sends them (the
#: devcluster's default of one a second would be 300 events a second with 300 watches).
DEVCLUSTER_FLAGS = ("--port=0", "--speed=0", "--bookmark-interval=60")
#: The label of every Deployment these runs create (their LIST selects it).
LABEL = "bench-waits"
IMAGE = "registry.example/app"
#: Waited changes started together.
BATCH = 100


@dataclass(frozen=True)
class Layout:
    name: str
    namespaces: int


LAYOUTS = (Layout("100 namespaces", 100), Layout("one namespace", 1))


def deployment(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {LABEL: "yes"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": f"{IMAGE}:1"}]},
            },
        },
    }


def complete(obj: dict[str, Any]) -> bool:
    """kubectl's rule: the rollout of this Deployment is done."""
    try:
        return rollout_status(obj)[1]
    except RolloutFailed:
        return False


class Devcluster:
    """A devcluster's Kubernetes API and admin API, over one aiohttp session."""

    def __init__(self, access: Access) -> None:
        self._server = access.server
        #: Set once :meth:`completions` watches.
        self.watching = asyncio.Event()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=32, ssl=access.ssl_context()),
            headers={"Authorization": f"Bearer {access.token}", "Accept": "application/json"},
        )

    async def close(self) -> None:
        await self._session.close()

    async def _send(self, method: str, path: str, body: Any = None) -> Any:
        async with self._session.request(method, self._server + path, json=body) as answer:
            data = await answer.json()
            if answer.status >= 300:
                raise RuntimeError(f"{method} {path}: {answer.status} {data}")
            return data

    async def create(self, objects: Sequence[dict[str, Any]]) -> None:
        """Namespaces, then the rest, 32 at a time."""
        for obj in objects:
            if obj["kind"] == "Namespace":
                await self._send("POST", "/api/v1/namespaces", obj)
        deployments = [o for o in objects if o["kind"] == "Deployment"]
        for start in range(0, len(deployments), 32):
            await asyncio.gather(
                *(
                    self._send(
                        "POST",
                        f"/apis/apps/v1/namespaces/{o['metadata']['namespace']}/deployments",
                        o,
                    )
                    for o in deployments[start : start + 32]
                )
            )

    async def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        data: dict[str, Any] = await self._send(
            "GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        )
        return data

    async def complete(self) -> int:
        """How many of this run's Deployments have completed their rollout."""
        listed = await self._send("GET", f"/apis/apps/v1/deployments?labelSelector={LABEL}%3Dyes")
        return sum(1 for obj in listed["items"] if complete(obj))

    async def completions(self, n: int) -> float:
        """Watch this run's Deployments until ``n`` have completed a rollout to the new
        image; when the last completion arrived (monotonic). Sets :attr:`watching` once
        the watch is open."""
        path = "/apis/apps/v1/deployments"
        listed = await self._send("GET", f"{path}?labelSelector={LABEL}%3Dyes")
        query = {
            "watch": "true",
            "labelSelector": f"{LABEL}=yes",
            "resourceVersion": listed["metadata"]["resourceVersion"],
            "timeoutSeconds": "1800",
        }
        done: set[tuple[str, str]] = set()
        last = 0.0
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self._session.get(self._server + path, params=query, timeout=timeout) as answer:
            self.watching.set()
            async for line in answer.content:
                event = json.loads(line)
                if event["type"] not in ("ADDED", "MODIFIED"):
                    raise RuntimeError(f"the completions watch got {event}")
                obj = event["object"]
                containers = obj["spec"]["template"]["spec"]["containers"]
                if containers[0]["image"] == f"{IMAGE}:2" and complete(obj):
                    meta = obj["metadata"]
                    key = (meta["namespace"], meta["name"])
                    if key not in done:
                        done.add(key)
                        last = time.monotonic()
                        if len(done) == n:
                            return last
        raise RuntimeError(f"the watch ended after {len(done)} of {n} completions")

    async def advance(self, seconds: float) -> None:
        """Move the clock; returns once the controllers have caught up."""
        await self._send("POST", "/devcluster/v1/clock/advance", {"seconds": seconds})

    async def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._send("GET", "/devcluster/v1/stats")
        return data


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        return str(answer.read().decode())


def total(text: str, name: str, **labels: str) -> float:
    """The sum of the series ``name`` whose labels include these."""
    found = 0.0
    for line in text.splitlines():
        if not line.startswith((name + "{", name + " ")):
            continue
        series, value = line.rsplit(" ", 1)
        if all(f'{key}="{wanted}"' in series for key, wanted in labels.items()):
            found += float(value)
    return found


def kubernetes_requests(text: str) -> dict[str, int]:
    name = "kubeupdate_kubernetes_requests_total"
    return {verb: int(total(text, name, verb=verb)) for verb in ("list", "watch", "get", "patch")}


async def until(condition: Callable[[], Any], what: str, limit: float = 120.0) -> None:
    """Poll ``condition`` (it may block: it runs in a thread) until true; bounded."""
    deadline = time.monotonic() + limit
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise RuntimeError(f"never happened: {what}")
        await asyncio.sleep(0.1)


async def get_p50(port: int, namespace: str, name: str, requests: int) -> float:
    url = f"http://127.0.0.1:{port}/deployment/{namespace}/{name}/app"
    async with aiohttp.ClientSession() as session:

        async def call(worker: int, sequence: int) -> str:
            async with session.get(url) as answer:
                await answer.read()
                return str(answer.status)

        run = await closed_loop("REST GET", "aiohttp", call, concurrency=1, requests=requests)
    if run.errors:
        raise RuntimeError(f"REST GET failed: {run.statuses}")
    return run.p50_ms


def service_flags(kubeconfig: Path) -> list[str]:
    return [
        "--no-auth",
        "--rate-limit=0",
        "--audit-log=/dev/null",
        "--grpc-port=0",
        "--http-port=0",
        f"--kubeconfig={kubeconfig}",
        "--max-wait-timeout=1800",
    ]


async def waits_at_scale(n: int, layout: Layout, *, get_requests: int) -> dict[str, Any]:
    """One run: ``n`` waits in ``layout``; see the module's docstring."""
    spaces = [f"waits-{i:02d}" for i in range(min(n, layout.namespaces))]
    targets = [(spaces[i % len(spaces)], f"app-{i}") for i in range(n)]
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": s}} for s in spaces]
    objects += [deployment(namespace, name) for namespace, name in targets]
    with tempfile.TemporaryDirectory(prefix="kubeupdate-waits-") as directory:
        kubeconfig = Path(directory) / "kubeconfig"
        command = devcluster_command(*DEVCLUSTER_FLAGS, f"--kubeconfig-out={kubeconfig}")
        with DevclusterProcess(command):
            cluster = Devcluster(Access.from_kubeconfig(kubeconfig))
            try:
                await cluster.create(objects)
                await cluster.advance(120)  # the first rollouts
                if await cluster.complete() != n:
                    raise RuntimeError("the first rollouts did not complete")
                return await _measure(cluster, kubeconfig, targets, layout, get_requests)
            finally:
                await cluster.close()


async def _measure(
    cluster: Devcluster,
    kubeconfig: Path,
    targets: list[tuple[str, str]],
    layout: Layout,
    get_requests: int,
) -> dict[str, Any]:
    n = len(targets)
    service_command = serve_command("--only=grpc", *service_flags(kubeconfig))
    with ServeProcess(service_command, expect=frozenset({"grpc", "metrics"})) as service:
        assert service.grpc_port is not None
        assert service.metrics_port is not None
        gateway_command = serve_command(
            "--only=gateway", f"--upstream=127.0.0.1:{service.grpc_port}", "--http-port=0"
        )
        with ServeProcess(gateway_command, expect=frozenset({"gateway"})) as gateway:
            assert gateway.http_port is not None
            metrics = service.metrics_port
            idle_get = await get_p50(gateway.http_port, *targets[0], get_requests)
            idle_rss = service.rss_bytes()
            idle = await asyncio.to_thread(scrape, metrics)

            done_at: list[float] = []
            async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
                stub = pb_grpc.DeploymentImageServiceStub(channel)
                calls = []
                started = time.monotonic()
                # In batches: a thousand writes in the same instant would measure how the
                # devcluster copes with a burst, not what a pending wait costs.
                for first in range(0, n, BATCH):
                    for namespace, name in targets[first : first + BATCH]:
                        request = pb.SetContainerImageRequest(
                            namespace=namespace,
                            deployment=name,
                            container="app",
                            image=f"{IMAGE}:2",
                            wait=True,
                        )
                        request.timeout.FromSeconds(1800)
                        call = asyncio.ensure_future(stub.SetContainerImage(request, timeout=1800))
                        call.add_done_callback(lambda _: done_at.append(time.monotonic()))
                        calls.append(call)
                    followed = len(calls)

                    def all_followed(count: int = followed) -> bool:
                        return total(scrape(metrics), "kubeupdate_followed_rollouts") >= count

                    await until(all_followed, f"the service follows {followed} rollouts")
                all_pending_after = time.monotonic() - started
                if any(call.done() for call in calls):
                    failed = next(call for call in calls if call.done())
                    raise RuntimeError(f"a wait ended early: {failed.result()}")
                pending_rss = service.rss_bytes()
                pending = await asyncio.to_thread(scrape, metrics)
                busy_get = await get_p50(gateway.http_port, *targets[0], get_requests)

                # Release: a simulated second at a time until every rollout is complete,
                # while a watch of our own notes when each completion reaches a client.
                completions = asyncio.ensure_future(cluster.completions(n))
                await cluster.watching.wait()
                stats_before = await cluster.stats()
                released = time.monotonic()
                steps = 0
                while True:
                    step_started = time.monotonic()
                    await cluster.advance(1.0)
                    step_ended = time.monotonic()
                    steps += 1
                    if await cluster.complete() == n:
                        break
                    if steps > 120:
                        raise RuntimeError("the rollouts did not complete in 120 simulated s")
                stats_after = await cluster.stats()
                answers = await asyncio.gather(*calls)
                last_completion = await completions
            last_answer = max(done_at)
            after = await asyncio.to_thread(scrape, metrics)

    states = [pb.Rollout.State.Name(answer.rollout.state) for answer in answers]
    requests_idle, requests_after = kubernetes_requests(idle), kubernetes_requests(after)
    requests_pending = kubernetes_requests(pending)
    return {
        "waits": n,
        "layout": layout.name,
        "namespaces": len({namespace for namespace, _ in targets}),
        "completed": states.count("STATE_COMPLETE"),
        "states": {state: states.count(state) for state in sorted(set(states))},
        "all_pending_after_s": all_pending_after,
        "rss_idle": idle_rss,
        "rss_pending": pending_rss,
        "rss_per_wait": (pending_rss - idle_rss) / n,
        "get_p50_idle_ms": idle_get,
        "get_p50_pending_ms": busy_get,
        # Requests the service sent to Kubernetes for the waits, by verb.
        "requests_until_pending": {
            verb: requests_pending[verb] - requests_idle[verb] for verb in requests_idle
        },
        "requests": {verb: requests_after[verb] - requests_idle[verb] for verb in requests_idle},
        "release_steps": steps,
        # The devcluster's share: from the release to the last completion a watch received.
        "last_completion_after_release_s": last_completion - released,
        # kubeupdate's: from that moment to the last answer.
        "last_answer_after_last_completion_s": last_answer - last_completion,
        "last_step_s": step_ended - step_started,
        "last_answer_after_step_start_s": last_answer - step_started,
        "last_answer_after_step_end_s": last_answer - step_ended,
        "devcluster_busy_s": stats_after["busySeconds"] - stats_before["busySeconds"],
    }


# -- notice latency: a waited curl and kubectl rollout status, on the same rollouts ---------


class Exited:
    """When a process ended (monotonic), recorded by a thread as it happens."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.at: float | None = None
        self._thread = threading.Thread(target=self._wait, daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        self.process.wait()
        self.at = time.monotonic()

    def join(self, timeout: float) -> float:
        self._thread.join(timeout)
        if self.at is None:
            self.process.kill()
            raise RuntimeError(f"{self.process.args!r} did not end")
        return self.at


async def notice_latency(runs: int, kubectl: str) -> dict[str, Any]:
    """``runs`` rollouts, each followed by a waited curl and by kubectl rollout status."""
    namespace, name = "notice", "web"
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        deployment(namespace, name),
    ]
    curl_ms: list[float] = []
    kubectl_ms: list[float] = []
    with tempfile.TemporaryDirectory(prefix="kubeupdate-notice-") as directory:
        kubeconfig = Path(directory) / "kubeconfig"
        command = devcluster_command(*DEVCLUSTER_FLAGS, f"--kubeconfig-out={kubeconfig}")
        with DevclusterProcess(command):
            cluster = Devcluster(Access.from_kubeconfig(kubeconfig))
            try:
                await cluster.create(objects)
                await cluster.advance(120)
                serve = serve_command(*service_flags(kubeconfig))
                with ServeProcess(serve, expect=frozenset({"grpc", "gateway", "metrics"})) as p:
                    assert p.http_port is not None
                    assert p.metrics_port is not None
                    url = f"http://127.0.0.1:{p.http_port}/deployment/{namespace}/{name}/app"
                    for run in range(runs):
                        curl, kubectl_ = await _one_rollout(
                            cluster, url, p.metrics_port, kubectl, kubeconfig, run
                        )
                        curl_ms.append(curl)
                        kubectl_ms.append(kubectl_)
            finally:
                await cluster.close()
    return {"runs": runs, "curl": _spread(curl_ms), "kubectl": _spread(kubectl_ms)}


async def _one_rollout(
    cluster: Devcluster, url: str, metrics: int, kubectl: str, kubeconfig: Path, run: int
) -> tuple[float, float]:
    namespace, name = "notice", "web"
    image = f"{IMAGE}:n{run}"
    body = json.dumps({"Image": image, "Wait": True, "Timeout": "300s"})
    curl = _spawn(
        ["curl", "-sS", "--fail", "-X", "POST", "-H", "Content-Type: application/json",
         "-d", body, url]
    )  # fmt: skip
    curl_exit = Exited(curl)

    def curl_waits() -> bool:
        followed = total(scrape(metrics), "kubeupdate_followed_rollouts") >= 1
        return followed and curl.poll() is None

    await until(curl_waits, "the waited curl is following the rollout")
    watcher = _spawn(
        [kubectl, f"--kubeconfig={kubeconfig}", "-n", namespace, "rollout", "status",
         f"deployment/{name}"]
    )  # fmt: skip
    assert watcher.stdout is not None
    first = await asyncio.to_thread(watcher.stdout.readline)  # "Waiting for deployment ..."
    if not first.startswith(b"Waiting"):
        raise RuntimeError(f"kubectl rollout status said {first!r}")
    kubectl_exit = Exited(watcher)
    while True:
        # The rollout completes during one of these steps: measured from its start (both
        # clients alike), the figures include the few ms the devcluster takes for a step.
        step_started = time.monotonic()
        await cluster.advance(0.5)
        if complete(await cluster.deployment(namespace, name)):
            break
    curl_at, kubectl_at = curl_exit.join(60), kubectl_exit.join(60)
    assert curl.stdout is not None
    answer = json.loads(curl.stdout.read())
    if answer["Rollout"]["State"] != "STATE_COMPLETE" or watcher.returncode != 0:
        raise RuntimeError(f"run {run}: curl {answer}, kubectl exit {watcher.returncode}")
    return 1000 * (curl_at - step_started), 1000 * (kubectl_at - step_started)


def _spawn(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, stdout=subprocess.PIPE)


def _spread(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)
    return {
        "p50_ms": percentile(ordered, 0.50),
        "p95_ms": percentile(ordered, 0.95),
        "max_ms": ordered[-1],
    }
