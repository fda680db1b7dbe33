"""``kubeupdate-client set --wait`` re-attaches by itself when its replica gets SIGTERM.

Two service replicas (``kubeupdate serve --only grpc`` processes) sit behind
one address, as behind a Kubernetes Service: a small TCP forwarder sends each
new connection to the first replica that accepts it. The CLI's waited set
reaches the first replica; once the change is applied that replica is
terminated, hands the rollout over (ROLLOUT_HANDED_OVER) and exits; the CLI
follows the guarded rollout on the survivor, which rolls it back, and exits 3
with the real verdict.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.processes import ServeProcess, serve_command
from devcluster import DevCluster
from kubeupdate.guarded import records
from kubeupdate.guarded.records import Phase
from tests.clients.github import GUARD, drive
from tests.stack import seed_samples

CLI = str(Path(sys.executable).with_name("kubeupdate-client"))
BAD = "nginx:1.26-bad"
GOOD = "nginx:1.25"
LEASE_SECONDS = 2


class Forwarder:
    """A Service stand-in on 127.0.0.1:0: each connection goes to the first backend that accepts."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._start(self._accept)

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                backend = self._connect()
                if backend is None:
                    client.close()
                    continue
                self._start(self._pump, client, backend)
                self._start(self._pump, backend, client)

    def _connect(self) -> socket.socket | None:
        for port in self.backends:
            with contextlib.suppress(OSError):
                return socket.create_connection(("127.0.0.1", port), timeout=5)
        return None

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(None)
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()


def replica(cluster: DevCluster) -> ServeProcess:
    return ServeProcess(
        serve_command(
            "--only=grpc",
            "--no-auth",
            "--rate-limit=0",
            "--grpc-port=0",
            f"--kubeconfig={cluster.kubeconfig_path}",
            f"--guard-lease-duration={LEASE_SECONDS}",
            "--stuck-grace=5",
            "--grace=20",
        ),
        expect=frozenset({"grpc"}),
    )


def phases(cluster: DevCluster) -> list[Phase]:
    return [records.parse(lease).state.phase for lease in cluster.list("leases", "default")]


def image_of(cluster: DevCluster) -> str:
    deployment = cluster.get("deployments", "default", "web")
    assert deployment is not None
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return str(next(c["image"] for c in containers if c["name"] == "app"))


@pytest.fixture
def seeded(devcluster: DevCluster) -> DevCluster:
    seed_samples(devcluster)
    devcluster.advance(60)  # the samples are rolled out
    return devcluster


@pytest.fixture
def survivor(seeded: DevCluster) -> Iterator[ServeProcess]:
    with replica(seeded) as process:
        yield process


def test_the_cli_follows_a_handed_over_rollout_to_its_rollback(
    seeded: DevCluster, survivor: ServeProcess
) -> None:
    with replica(seeded) as leaving:
        assert leaving.grpc_port is not None
        assert survivor.grpc_port is not None
        service = Forwarder([leaving.grpc_port, survivor.grpc_port])
        environment = {"PATH": os.environ["PATH"], "KUBEUPDATE_SERVER": f"127.0.0.1:{service.port}"}
        argv = ["--json", "set", "default/web/app", BAD, "--wait", "--rollback-on-failure"]
        cli = subprocess.Popen(
            [CLI, *argv, "--timeout", "10m"],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            give_up = time.monotonic() + GUARD
            while Phase.APPLIED not in phases(seeded):
                assert cli.poll() is None, cli.communicate()
                assert time.monotonic() < give_up, "the change was never applied"
                time.sleep(0.05)
            assert leaving.terminate() == 0, "\n".join(leaving.lines)
            drive(seeded, cli)  # the survivor judges the rollout as simulated time passes
            out, err = cli.communicate(timeout=GUARD)
        finally:
            if cli.poll() is None:
                cli.kill()
            service.close()

    assert cli.returncode == 3, err
    assert "handed the rollout over; following guarded rollout kubeupdate-" in err
    answer = json.loads(out)
    assert answer["rollout"]["state"] == "ROLLED_BACK", answer
    assert answer["rollout_id"].startswith("kubeupdate-")
    assert (answer["image"], answer["rollout"]["failed_image"]) == (GOOD, BAD)
    assert image_of(seeded) == GOOD
