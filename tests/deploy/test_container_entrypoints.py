"""The image's two entrypoints as plain processes (no Docker engine here).

``deploy/image/entrypoint service|gateway`` runs ``kubeupdate serve`` exactly
as the container does, only bound to loopback and port 0; the service talks
to a devcluster through its kubeconfig. The checks are the container's: the
HEALTHCHECK script, gRPC health for the service, ``/readyz`` for the gateway,
then one real call through each, then a clean SIGTERM stop.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import yaml
from devcluster.manifests import load_manifests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kubeupdate.client import DeploymentImageClient

from devcluster import DevCluster
from kubeupdate.auth import certificates
from kubeupdate.demo import SAMPLES, write_demo_security

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "image" / "entrypoint"
HEALTHCHECK = ROOT / "deploy" / "image" / "healthcheck.py"
BIN = Path(sys.executable).parent
# A guard against a hung process, not a measured time.
GUARD = 60.0

pytestmark = pytest.mark.skipif(
    not (BIN / "kubeupdate").exists(), reason="the kubeupdate console script is not installed"
)


@dataclass
class Process:
    """A running entrypoint whose stderr is read in the background."""

    popen: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.log.append(line)
            self.lines.put(line)

    def port_from(self, pattern: str) -> int:
        """Waits for the log line announcing the bound port."""
        while True:
            try:
                line = self.lines.get(timeout=GUARD)
            except queue.Empty:
                pytest.fail("no 'listening' line; log:\n" + "".join(self.log))
            match = re.search(pattern, line)
            if match:
                return int(match.group(1))

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(GUARD)


def environment(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra}


def start(*argv: str, env: dict[str, str] | None = None) -> Process:
    popen = subprocess.Popen(
        [str(ENTRYPOINT), *argv],
        env=environment(**(env or {})),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Process(popen)


@pytest.fixture(scope="module")
def auth_flags(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], str | None]:
    """The security flags the service needs, if its ``serve`` has them yet."""
    shown = subprocess.run(
        [str(BIN / "kubeupdate"), "serve", "--help"], capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0, f"`kubeupdate serve --help` fails:\n{shown.stderr}"
    help_text = shown.stdout
    if "--tokens-file" not in help_text:
        return [], None
    secret, config = write_demo_security(tmp_path_factory.mktemp("security"))
    return [f"--tokens-file={config.tokens_file}", f"--policy-file={config.policy_file}"], secret


@pytest.fixture
def cluster() -> Iterator[DevCluster]:
    with DevCluster(seed=load_manifests(SAMPLES)) as cluster:
        yield cluster


def healthcheck(**ports: str) -> int:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)], env=environment(**ports), check=False
    ).returncode


@pytest.mark.parametrize("credentials", ["kubeconfig", "in-cluster"])
def test_service_and_gateway_entrypoints(
    cluster: DevCluster,
    auth_flags: tuple[list[str], str | None],
    tmp_path: Path,
    credentials: str,
) -> None:
    flags, secret = auth_flags
    if credentials == "kubeconfig":
        where, env = [f"--kubeconfig={cluster.kubeconfig_path}"], {}
    else:
        # As in a Pod: the service account mount and KUBERNETES_SERVICE_HOST/PORT.
        cluster.write_incluster_files(tmp_path / "serviceaccount")
        where = [f"--serviceaccount-dir={tmp_path / 'serviceaccount'}"]
        env = cluster.incluster_environ
    service = start(
        "service",
        "--grpc-host=127.0.0.1",
        "--grpc-port=0",
        "--metrics-port=0",
        *where,
        *flags,
        env=env,
    )
    try:
        # The metrics listener starts first, then the gRPC server.
        metrics_port = service.port_from(r"metrics at http://\S+:(\d+)/metrics")
        grpc_port = service.port_from(r"gRPC service listening on \S+:(\d+)")
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=GUARD
            )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        with DeploymentImageClient(f"127.0.0.1:{grpc_port}", token=secret, environ={}) as client:
            assert client.get("default", "web", "app").image
        with urllib.request.urlopen(
            f"http://127.0.0.1:{metrics_port}/metrics", timeout=GUARD
        ) as scraped:
            assert b'grpc_method="GetContainerImage"' in scraped.read()

        gateway = start(
            "gateway",
            "--http-host=127.0.0.1",
            "--http-port=0",
            f"--upstream=127.0.0.1:{grpc_port}",
        )
        try:
            http_port = gateway.port_from(r"REST gateway listening on \S+:(\d+)")
            with urllib.request.urlopen(
                f"http://127.0.0.1:{http_port}/readyz", timeout=GUARD
            ) as ready:
                assert ready.status == 200
            request = urllib.request.Request(
                f"http://127.0.0.1:{http_port}/deployment/default/web/app"
            )
            if secret:
                request.add_header("Authorization", f"Bearer {secret}")
            with urllib.request.urlopen(request, timeout=GUARD) as answer:  # noqa: S310
                assert json.load(answer)["Container"] == "app"

            # The image's HEALTHCHECK, in each role (the other port refuses).
            unused = str(_refused_port(tmp_path))
            assert (
                healthcheck(KUBEUPDATE_HTTP_PORT=str(http_port), KUBEUPDATE_GRPC_PORT=unused) == 0
            )
            assert (
                healthcheck(KUBEUPDATE_HTTP_PORT=unused, KUBEUPDATE_GRPC_PORT=str(grpc_port)) == 0
            )
            assert healthcheck(KUBEUPDATE_HTTP_PORT=unused, KUBEUPDATE_GRPC_PORT=unused) == 1
        finally:
            assert gateway.stop() == 0, "".join(gateway.log)
    finally:
        assert service.stop() == 0, "".join(service.log)
    # The image logs JSON lines (the audit lines are JSON too).
    assert all(json.loads(line) for line in service.log if line.strip())


def manifest_tls_flags(manifest: str, mounts: Path) -> list[str]:
    """The TLS flags of a deploy/ Deployment as written there, its mount moved to ``mounts``."""
    (deployment,) = [
        d
        for d in yaml.safe_load_all((ROOT / "deploy" / manifest).read_text())
        if d["kind"] == "Deployment"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    flags = [
        arg
        for arg in container["args"]
        if arg.startswith(("--tls-", "--trusted-proxy-cert=", "--upstream-ca=", "--upstream-ce"))
        or arg.startswith("--upstream-key=")
    ]
    return [flag.replace("/etc/kubeupdate/tls", str(mounts)) for flag in flags]


def mount_secrets(pki: Path, mounts: Path) -> None:
    """What the kubelet puts in each Pod's tls volume: the Secrets `kubeupdate certs` made."""
    for secret in yaml.safe_load_all(certificates.secrets(pki)):
        volume = mounts / secret["metadata"]["name"]
        volume.mkdir(parents=True)
        for key, value in secret["data"].items():
            (volume / key).write_bytes(base64.b64decode(value))


def test_the_manifests_mutual_tls_joins_the_gateway_to_the_service(
    cluster: DevCluster, auth_flags: tuple[list[str], str | None], tmp_path: Path
) -> None:
    flags, secret = auth_flags
    pki = tmp_path / "pki"
    certificates.create(pki, extra_names=["127.0.0.1"])
    mount_secrets(pki, tmp_path / "secrets")
    service_tls = manifest_tls_flags("service.yaml", tmp_path / "secrets/kubeupdate-service-tls")
    gateway_tls = manifest_tls_flags("gateway.yaml", tmp_path / "secrets/kubeupdate-gateway-tls")
    assert len(service_tls) == 4
    assert len(gateway_tls) == 3
    service = start(
        "service",
        "--grpc-host=127.0.0.1",
        "--grpc-port=0",
        "--metrics-port=0",
        f"--kubeconfig={cluster.kubeconfig_path}",
        *flags,
        *service_tls,
    )
    try:
        metrics_port = service.port_from(r"metrics at http://\S+:(\d+)/metrics")
        grpc_port = service.port_from(r"gRPC service listening on \S+:(\d+)")
        # Plaintext gRPC gets nowhere; the probes and the HEALTHCHECK use the metrics port.
        with (
            grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
            pytest.raises(grpc.RpcError) as refused,
        ):
            health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=GUARD
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        with urllib.request.urlopen(
            f"http://127.0.0.1:{metrics_port}/readyz", timeout=GUARD
        ) as ready:
            assert ready.status == 200
        unused = str(_refused_port(tmp_path))
        assert (
            healthcheck(
                KUBEUPDATE_HTTP_PORT=unused,
                KUBEUPDATE_METRICS_PORT=str(metrics_port),
                KUBEUPDATE_GRPC_PORT=str(grpc_port),
            )
            == 0
        )

        gateway = start(
            "gateway",
            "--http-host=127.0.0.1",
            "--http-port=0",
            f"--upstream=127.0.0.1:{grpc_port}",
            *gateway_tls,
        )
        try:
            http_port = gateway.port_from(r"REST gateway listening on \S+:(\d+)")
            request = urllib.request.Request(
                f"http://127.0.0.1:{http_port}/deployment/default/web/app"
            )
            if secret:
                request.add_header("Authorization", f"Bearer {secret}")
            with urllib.request.urlopen(request, timeout=GUARD) as answer:  # noqa: S310
                assert json.load(answer)["Container"] == "app"
        finally:
            assert gateway.stop() == 0, "".join(gateway.log)
    finally:
        assert service.stop() == 0, "".join(service.log)
    # The service believed the gateway's x-forwarded-for because of its certificate.
    # (gRPC's own lines about the refused plaintext handshake are not JSON.)
    (audited,) = [
        record
        for record in (json.loads(line) for line in service.log if line.startswith("{"))
        if record.get("target", {}).get("deployment") == "web"
    ]
    assert audited["peer"] is not None
    assert "forwarded_for_ignored" not in audited


def test_unknown_role_runs_as_a_command() -> None:
    done = subprocess.run(
        [str(ENTRYPOINT), "kubeupdate-client", "--help"],
        env=environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "exit codes:" in done.stdout


_held: list[object] = []


def _refused_port(tmp_path: Path) -> int:
    import socket

    # Bound but not listening: connections are refused for the rest of the test.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _held.append(sock)
    return int(sock.getsockname()[1])
