"""The CLI against the real gRPC service and a devcluster: deploy, follow, fail, roll back.

The service runs in a background thread's event loop; the CLI runs in-process
in a worker thread while the test moves the devcluster's simulated clock, so a
rollout of simulated minutes takes a fraction of a real second.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from devcluster.manifests import load_manifests
from kubeupdate.client.cli import ExitCode, main

from devcluster import DevCluster
from kubeupdate.demo import SAMPLES
from kubeupdate.kube.client import KubeClient
from kubeupdate.kube.credentials import Credentials
from kubeupdate.operations import operations
from kubeupdate.protocol.grpc.server import ServiceServer
from kubeupdate.rollouts.settings import RolloutSettings

# A guard against a hung call, not a measured time.
GUARD = 60.0
# Short real-time delays: stuck Pods fail the rollout at once; watches restart every second.
FAST = RolloutSettings(stuck_grace=0.05, watch_seconds=1)


@dataclass
class Service:
    cluster: DevCluster
    port: int

    def image(self, container: str = "app") -> str:
        obj = self.cluster.get("deployments", "default", "web")
        assert obj is not None
        (found,) = [
            c for c in obj["spec"]["template"]["spec"]["containers"] if c["name"] == container
        ]
        return str(found["image"])


@pytest.fixture
def service() -> Iterator[Service]:
    with DevCluster(seed=load_manifests(SAMPLES)) as cluster:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="service", daemon=True)
        thread.start()
        stack = contextlib.AsyncExitStack()

        async def start() -> int:
            client = await stack.enter_async_context(
                KubeClient(Credentials.from_kubeconfig(cluster.kubeconfig_path))
            )
            domain = operations(client, client, FAST)
            stack.push_async_callback(domain.close)  # the shared watches, after the server
            server = ServiceServer(domain, port=0)
            port = await server.start()
            stack.push_async_callback(server.stop, None)
            return port

        try:
            port = asyncio.run_coroutine_threadsafe(start(), loop).result(GUARD)
            yield Service(cluster, port)
        finally:
            asyncio.run_coroutine_threadsafe(stack.aclose(), loop).result(GUARD)
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()


class FirstLine(io.StringIO):
    """Sets ``event`` when the first line is written (the first progress line)."""

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if "\n" in text:
            self.event.set()
        return written


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_cli(service: Service, *argv: str, drive_after: threading.Event | None = None) -> Run:
    """Runs the CLI in a worker thread while simulated time moves (after ``drive_after``)."""
    out, err = io.StringIO(), FirstLine()
    args = ["--server", f"127.0.0.1:{service.port}", *argv]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(main, args, stdout=out, stderr=err)
        if drive_after is not None:
            drive_after.wait(GUARD)
        while not future.done():
            service.cluster.advance(1.0)
            concurrent.futures.wait([future], timeout=0.01)
        code = future.result()
    return Run(code, out.getvalue(), err.getvalue())


def test_reads(service: Service) -> None:
    assert run_cli(service, "get", "default/web/app") == Run(0, "nginx:1.25\n", "")
    listed = run_cli(service, "list", "default/web")
    assert listed.code == 0
    assert "sidecar" in listed.out
    assert run_cli(service, "status", "default/web").out.startswith("default/web: COMPLETE")
    missing = run_cli(service, "get", "default/web/nope")
    assert missing.code == ExitCode.NOT_FOUND
    assert missing.err.startswith("kubeupdate-client: NotFound (CONTAINER_NOT_FOUND): ")
    invalid = run_cli(service, "get", "Default/web/app")
    assert invalid.code == ExitCode.USAGE
    assert "(NAME_INVALID)" in invalid.err


def test_set_wait_shows_progress_and_completes(service: Service) -> None:
    out, err = io.StringIO(), FirstLine()
    args = ["--server", f"127.0.0.1:{service.port}", "set", "default/web/app", "nginx:1.26"]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(main, [*args, "--wait", "--reason", "e2e"], stdout=out, stderr=err)
        # Time stands still until the first line, about this change, is shown.
        err.event.wait(GUARD)
        while not future.done():
            service.cluster.advance(1.0)
            concurrent.futures.wait([future], timeout=0.01)
    assert future.result() == ExitCode.OK, err.getvalue()
    first, *progress = err.getvalue().splitlines()
    assert first == "default/web/app: nginx:1.26, waiting for the rollout"
    assert all(line.startswith("default/web: PROGRESSING") for line in progress)
    assert "default/web/app: nginx:1.25 -> nginx:1.26" in out.getvalue()
    assert "rollout COMPLETE" in out.getvalue()
    assert service.image() == "nginx:1.26"
    history = run_cli(service, "history", "default/web")
    assert "app=nginx:1.26" in history.out.splitlines()[1]


def test_failed_rollout_is_rolled_back_and_exits_3(service: Service) -> None:
    run = run_cli(
        service,
        "--json",
        "set",
        "default/web/app",
        "nginx:1.26-bad",
        "--wait",
        "--timeout",
        "5m",
        "--rollback-on-failure",
        "--quiet",
    )
    assert run.code == ExitCode.ROLLOUT_FAILED, run.err
    assert '"state": "ROLLED_BACK"' in run.out
    assert service.image() == "nginx:1.25"


def test_watch_follows_a_rollout_to_the_end(service: Service) -> None:
    assert run_cli(service, "set", "default/web/app", "nginx:1.26").code == 0
    run = run_cli(service, "watch", "default/web")
    assert run.code == ExitCode.OK, run.err
    assert run.out.splitlines()[-1].startswith("default/web: COMPLETE")
