"""``kubeupdate serve`` as two processes: the gateway, and the service as its child.

Real processes against the devcluster: what a person sees running ``kubeupdate
serve`` (two processes, one command), and what happens when either one, or a
signal, ends them.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.processes import ServeProcess, serve_command
from devcluster import DevCluster
from kubeupdate.demo import DEMO_TOKEN_ID, write_demo_security
from tests.stack import seed_samples

ROUTE = "/deployment/default/web/app"


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(600):  # bounded: ~30 s
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def get(port: int, user: str | None = None) -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{ROUTE}")
    if user is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(user.encode()).decode())
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - http only
        body: bytes = answer.read()
    return body


def serve(cluster: DevCluster, *extra: str) -> ServeProcess:
    return ServeProcess(
        serve_command(
            "--no-auth",
            "--rate-limit=0",
            "--grpc-port=0",
            "--http-port=0",
            f"--kubeconfig={cluster.kubeconfig_path}",
            *extra,
        )
    )


@pytest.fixture
def seeded(devcluster: DevCluster) -> DevCluster:
    seed_samples(devcluster)
    return devcluster


@pytest.fixture
def running(seeded: DevCluster) -> Iterator[ServeProcess]:
    with serve(seeded) as process:
        yield process


def test_serve_runs_the_service_as_a_child_forwards_sighup_and_stops_both_on_sigterm(
    seeded: DevCluster, tmp_path: Path
) -> None:
    secret, auth = write_demo_security(tmp_path)
    files = (f"--tokens-file={auth.tokens_file}", f"--policy-file={auth.policy_file}")
    command = serve_command(
        "--grpc-port=0", "--http-port=0", f"--kubeconfig={seeded.kubeconfig_path}", *files
    )
    with ServeProcess(command) as process:
        [service] = children(process.pid)
        cmdline = Path(f"/proc/{service}/cmdline").read_bytes().split(b"\0")
        assert cmdline[-3:] == [b"--only", b"grpc", b""]
        assert process.http_port is not None
        assert b'"Image":"nginx:1.25"' in get(process.http_port, f"{DEMO_TOKEN_ID}:{secret}")

        os.kill(process.pid, signal.SIGHUP)  # the service reloads its policy and tokens
        until(
            lambda: any(f"policy {auth.policy_file} reloaded" in x for x in process.lines),
            "the service reloaded its policy",
        )
        assert process.process.poll() is None

        assert process.terminate() == 0, "\n".join(process.lines)
        assert not alive(service)


def test_when_the_service_dies_the_gateway_stops_with_its_exit_code(
    running: ServeProcess,
) -> None:
    [service] = children(running.pid)
    os.kill(service, signal.SIGKILL)

    assert running.process.wait(30) == 128 + signal.SIGKILL
    assert any("exited with code -9; stopping the gateway" in line for line in running.lines)


def test_when_serve_is_killed_the_service_stops_by_itself(running: ServeProcess) -> None:
    [service] = children(running.pid)
    os.kill(running.pid, signal.SIGKILL)
    running.process.wait(30)

    until(lambda: not alive(service), "the orphaned service stopped")


def test_a_service_that_cannot_start_ends_serve_with_its_message(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    command = serve_command("--grpc-port=0", "--http-port=0", f"--kubeconfig={missing}")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 2, done.stderr
    assert f"cannot load Kubernetes credentials from kubeconfig {missing}" in done.stderr
    assert "REST gateway listening" not in done.stderr


def test_one_process_keeps_both_halves_in_this_process(seeded: DevCluster) -> None:
    with serve(seeded, "--one-process") as process:
        assert children(process.pid) == []
        assert process.http_port is not None
        assert b'"Image":"nginx:1.25"' in get(process.http_port)
        assert process.terminate() == 0
