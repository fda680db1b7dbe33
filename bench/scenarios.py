"""The measurements: each function runs one part of the benchmark and returns figures.

All of them talk to real processes on loopback (see :mod:`bench.run`); none
changes product code or settings beyond the documented flags.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import grpc.aio
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from bench.cluster import (
    NAMESPACE,
    READ_TARGET,
    WRITE_CONTAINERS,
    WRITE_DEPLOYMENTS,
    RawClient,
    write_slot,
)
from bench.loadgen import POST_SCRIPT, Run, closed_loop, run_wrk
from bench.processes import ServeProcess, serve_command
from bench.soak import Owner, Tally, lost_updates, run_clients
from kubeupdate.kube.api import JsonObject
from kubeupdate.patches import ChangeRecord, RecordedChange, image_patch
from kubeupdate.workloads.templates import find_container, template_digest, template_with_image

_run_tags = itertools.count()


def _tag() -> str:
    """A fresh image-tag prefix, so every write of every run is a real change."""
    return f"r{next(_run_tags)}"


# -- baseline: the devcluster straight from Python ----------------------------------------


async def raw_get(raw: RawClient, *, concurrency: int, requests: int) -> Run:
    deployment = READ_TARGET[0]

    async def call(worker: int, sequence: int) -> str:
        status, _ = await raw.get(deployment)
        return str(status)

    return await closed_loop(
        "raw Kubernetes GET", "aiohttp", call, concurrency=concurrency, requests=requests
    )


async def raw_patch(raw: RawClient, *, concurrency: int, **limit: Any) -> Run:
    """The PATCH kubeupdate would send, byte for byte (built by its own pure function).

    Worker ``w`` writes slot 255 - w: the top slots, which the c=1 runs do not use.
    """
    tag = _tag()
    record = ChangeRecord("bench")
    slots: dict[int, tuple[str, str, JsonObject]] = {}
    for worker in range(concurrency):
        deployment, container = write_slot(255 - worker)
        _, obj = await raw.get(deployment)
        slots[worker] = (deployment, container, obj)

    async def call(worker: int, sequence: int) -> str:
        deployment, container, obj = slots[worker]
        slot = find_container(obj, container)
        assert slot is not None
        image = f"registry.example/bench:{tag}-{worker}-{sequence}"
        template = template_digest(template_with_image(obj, slot, image))
        note = RecordedChange.of(container, slot.image, image, record, template=template)
        operations = image_patch(slot, container, image, note, target=obj)
        status, answer = await raw.patch(deployment, operations)
        if status == 200:
            # What kubeupdate's GET would return next; only this worker writes this slot.
            slots[worker] = (deployment, container, answer)
        return str(status)

    return await closed_loop(
        "raw Kubernetes PATCH", "aiohttp", call, concurrency=concurrency, **limit
    )


# -- gRPC -------------------------------------------------------------------------------


async def grpc_get(target: str, *, concurrency: int, **limit: Any) -> Run:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.DeploymentImageServiceStub(channel)
        request = pb.GetContainerImageRequest(
            namespace=NAMESPACE, deployment=READ_TARGET[0], container=READ_TARGET[1]
        )

        async def call(worker: int, sequence: int) -> str:
            try:
                await stub.GetContainerImage(request, timeout=30)
            except grpc.aio.AioRpcError as exc:
                return exc.code().name
            return "OK"

        return await closed_loop(
            "gRPC GetContainerImage", "grpc.aio", call, concurrency=concurrency, **limit
        )


async def grpc_set(target: str, *, concurrency: int, **limit: Any) -> Run:
    tag = _tag()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.DeploymentImageServiceStub(channel)

        async def call(worker: int, sequence: int) -> str:
            deployment, container = write_slot(worker)  # one writer per container
            request = pb.SetContainerImageRequest(
                namespace=NAMESPACE,
                deployment=deployment,
                container=container,
                image=f"registry.example/bench:{tag}-{worker}-{sequence}",
            )
            try:
                await stub.SetContainerImage(request, timeout=30)
            except grpc.aio.AioRpcError as exc:
                return exc.code().name
            return "OK"

        return await closed_loop(
            "gRPC SetContainerImage", "grpc.aio", call, concurrency=concurrency, **limit
        )


# -- REST -------------------------------------------------------------------------------


def rest_url(port: int, deployment: str, container: str) -> str:
    return f"http://127.0.0.1:{port}/deployment/{NAMESPACE}/{deployment}/{container}"


async def rest_get(port: int, *, requests: int) -> Run:
    url = rest_url(port, *READ_TARGET)
    async with aiohttp.ClientSession() as session:

        async def call(worker: int, sequence: int) -> str:
            async with session.get(url) as answer:
                await answer.read()
                return str(answer.status)

        return await closed_loop("REST GET", "aiohttp", call, concurrency=1, requests=requests)


async def rest_post(port: int, *, requests: int) -> Run:
    url = rest_url(port, *write_slot(0))
    tag = _tag()
    async with aiohttp.ClientSession() as session:

        async def call(worker: int, sequence: int) -> str:
            body = {"Image": f"registry.example/bench:{tag}-{sequence}"}
            async with session.post(url, json=body) as answer:
                await answer.read()
                return str(answer.status)

        return await closed_loop("REST POST", "aiohttp", call, concurrency=1, requests=requests)


def wrk_rest_get(port: int, *, concurrency: int, duration: float) -> Run:
    return run_wrk(
        "REST GET", rest_url(port, *READ_TARGET), concurrency=concurrency, duration=duration
    )


def wrk_rest_post(port: int, *, concurrency: int, duration: float) -> Run:
    script = POST_SCRIPT.format(
        per_thread=WRITE_DEPLOYMENTS * WRITE_CONTAINERS // 2,
        containers=WRITE_CONTAINERS,
        namespace=NAMESPACE,
        prefix="w-",
        image=f"registry.example/bench:{_tag()}x",
    )
    return run_wrk(
        "REST POST",
        f"http://127.0.0.1:{port}/",
        concurrency=concurrency,
        duration=duration,
        script=script,
    )


def wrk_raw_get(server: str, token: str, *, concurrency: int, duration: float) -> Run:
    return run_wrk(
        "raw Kubernetes GET",
        f"{server}/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{READ_TARGET[0]}",
        concurrency=concurrency,
        duration=duration,
        headers={"Authorization": f"Bearer {token}"},
    )


# -- whole processes: curl vs kubectl -----------------------------------------------------


def one_shot_commands(port: int, kubeconfig: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (the timed command, the untimed command that resets the image before it)."""
    deployment, container = write_slot(WRITE_DEPLOYMENTS * WRITE_CONTAINERS - 2)
    url = rest_url(port, deployment, container)

    def curl(image: str) -> list[str]:
        body = json.dumps({"Image": f"registry.example/bench:{image}"})
        return [
            "curl", "-sS", "--fail", "-o", "/dev/null", "-X", "POST",
            "-H", "Content-Type: application/json", "-d", body, url,
        ]  # fmt: skip

    kubectl = tool("kubectl")
    floor = ["curl", "-sS", "--fail", "-o", "/dev/null", f"http://127.0.0.1:{port}/"]
    return {
        "curl GET / (floor: curl start + one round trip)": (floor, ["true"]),
        "curl POST (whole stack)": (curl("curl-a"), curl("curl-b")),
        "kubectl set image": (
            [
                kubectl, f"--kubeconfig={kubeconfig}", "-n", NAMESPACE, "set", "image",
                f"deployment/{deployment}", f"{container}=registry.example/bench:kubectl-a",
            ],
            curl("kubectl-b"),
        ),
    }  # fmt: skip


def tool(name: str) -> str:
    """A program from PATH, else from this interpreter's venv (kubectl, py-spy)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise FileNotFoundError(name)
    return found


def time_processes(
    commands: dict[str, tuple[list[str], list[str]]], runs: int
) -> dict[str, dict[str, Any]]:
    """Mean and median wall time of each command, reset before every run (hyperfine if present)."""
    results: dict[str, dict[str, Any]] = {}
    hyperfine = shutil.which("hyperfine")
    for name, (command, reset) in commands.items():
        if hyperfine is not None:
            results[name] = _hyperfine(hyperfine, command, reset, runs)
            continue
        times = []
        for _ in range(runs):
            subprocess.run(reset, check=True, capture_output=True)
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - started)
        times.sort()
        results[name] = {
            "tool": "subprocess loop",
            "runs": runs,
            "mean_ms": sum(times) / len(times) * 1000,
            "median_ms": times[len(times) // 2] * 1000,
        }
    return results


def _hyperfine(hyperfine: str, command: list[str], reset: list[str], runs: int) -> dict[str, Any]:
    def shell(words: list[str]) -> str:
        return " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)

    with tempfile.TemporaryDirectory() as directory:
        export = Path(directory) / "out.json"
        subprocess.run(
            [
                hyperfine, "--shell=none", "--warmup=2", f"--runs={runs}",
                f"--prepare={shell(reset)}", f"--export-json={export}", "--style=none",
                shell(command),
            ],
            check=True, capture_output=True,
        )  # fmt: skip
        result = json.loads(export.read_text())["results"][0]
    return {
        "tool": "hyperfine",
        "runs": runs,
        "mean_ms": result["mean"] * 1000,
        "median_ms": result["median"] * 1000,
        "stddev_ms": result["stddev"] * 1000,
    }


# -- start-up -----------------------------------------------------------------------------


def start_to_ready(kubeconfig: Path, attempts: int) -> dict[str, Any]:
    """``kubeupdate serve`` (both servers): spawn → listening, and spawn → /readyz 200."""
    listening, readyz = [], []
    for _ in range(attempts):
        started = time.perf_counter()
        with ServeProcess(serve_command(*service_flags(kubeconfig))) as process:
            assert process.ready_after is not None
            listening.append(process.ready_after)
            url = f"http://127.0.0.1:{process.http_port}/readyz"
            for _ in range(1000):  # bounded: ~10 s
                try:
                    with urllib.request.urlopen(url, timeout=5) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    pass
                time.sleep(0.01)
            readyz.append(time.perf_counter() - started)
            process.terminate()
    return {
        "attempts": attempts,
        "listening_s": sorted(listening),
        "readyz_s": sorted(readyz),
        "readyz_median_s": sorted(readyz)[len(readyz) // 2],
        "readyz_max_s": max(readyz),
    }


def service_flags(kubeconfig: Path, *extra: str) -> list[str]:
    """Auth off and no rate limit, as the benchmark measures the data path."""
    return [
        "--no-auth",
        "--rate-limit=0",
        "--grpc-port=0",
        "--http-port=0",
        f"--kubeconfig={kubeconfig}",
        "--audit-log=/dev/null",
        *extra,
    ]


# -- soak ----------------------------------------------------------------------------------


async def soak(
    port: int,
    raw: RawClient,
    *,
    clients: int,
    warm_up_rounds: int,
    rounds: int,
    rss: Callable[[], dict[str, int]],
) -> dict[str, Any]:
    owners: list[Owner] = [(NAMESPACE, *write_slot(slot)) for slot in range(clients)]
    tally = Tally()
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    await run_clients(base, owners, range(warm_up_rounds), tally)
    warm = rss()
    await run_clients(base, owners, range(warm_up_rounds, warm_up_rounds + rounds), tally)
    after = rss()
    seconds = time.perf_counter() - started
    images: dict[Owner, str] = {}
    for deployment in sorted({owner[1] for owner in owners}):
        _, obj = await raw.get(deployment)
        for entry in obj["spec"]["template"]["spec"]["containers"]:
            images[(NAMESPACE, deployment, entry["name"])] = entry["image"]
    lost = lost_updates(tally, lambda owner: images[owner])
    return {
        "clients": clients,
        "requests": sum(tally.statuses.values()),
        "seconds": seconds,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "server_errors": tally.server_errors,
        "stale_reads": len(tally.stale_reads),
        "lost_updates": lost,
        "rss_warm": warm,
        "rss_after": after,
    }
