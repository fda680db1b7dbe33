"""gRPC reflection, read by a client that is not ours: ``buf curl`` (buf-bin).

``buf curl`` knows nothing of kubeupdate's protos: it lists the methods and
encodes the request from what the service's reflection tells it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster import DevCluster
from kubeupdate.demo import write_demo_security
from tests.observed import Observed, observed_stack
from tests.stack import Stack

BUF = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
SERVICE = "kubeupdate.v1.DeploymentImageService"
# A guard against a hung process, not a measured time.
GUARD = 60

pytestmark = pytest.mark.skipif(BUF is None, reason="buf not installed (pip install buf-bin)")


def buf_curl(port: int, *arguments: str) -> subprocess.CompletedProcess[str]:
    assert BUF is not None
    return subprocess.run(
        [BUF, "curl", "--protocol", "grpc", "--http2-prior-knowledge", *arguments],
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )


def test_buf_curl_lists_the_methods(stack: Stack) -> None:
    done = buf_curl(stack.grpc_port, "--list-methods", f"http://{stack.grpc_target}")
    assert done.returncode == 0, done.stderr
    methods = set(done.stdout.split())
    assert {
        f"{SERVICE}/GetContainerImage",
        f"{SERVICE}/SetContainerImage",
        f"{SERVICE}/ListContainerImages",
        f"{SERVICE}/GetRolloutStatus",
        f"{SERVICE}/WatchRollout",
        f"{SERVICE}/ListRevisions",
        "grpc.health.v1.Health/Check",
    } <= methods


def test_buf_curl_calls_through_reflection(stack: Stack) -> None:
    request = {"namespace": "default", "deployment": "web", "container": "app"}
    done = buf_curl(
        stack.grpc_port,
        "-d",
        json.dumps(request),
        f"http://{stack.grpc_target}/{SERVICE}/GetContainerImage",
    )
    assert done.returncode == 0, done.stderr
    # buf prints the reply in the proto's JSON names (PascalCase json_name).
    assert json.loads(done.stdout) == {
        "Namespace": "default",
        "Deployment": "web",
        "Container": "app",
        "Image": "nginx:1.25",
    }


def test_buf_curl_reports_the_status_of_a_missing_container(stack: Stack) -> None:
    request = {"namespace": "default", "deployment": "web", "container": "nope"}
    done = buf_curl(
        stack.grpc_port,
        "-d",
        json.dumps(request),
        f"http://{stack.grpc_target}/{SERVICE}/GetContainerImage",
    )
    assert done.returncode != 0
    assert "not_found" in done.stderr.lower()


@pytest.fixture
def guarded(devcluster: DevCluster, tmp_path: Path) -> Iterator[tuple[Observed, str]]:
    secret, config = write_demo_security(tmp_path)
    for stack in observed_stack(devcluster, config):
        yield stack, secret


def test_buf_curl_with_a_token_and_without(guarded: tuple[Observed, str]) -> None:
    stack, secret = guarded
    url = f"http://{stack.grpc_target}/{SERVICE}/GetContainerImage"
    data = json.dumps({"namespace": "default", "deployment": "web", "container": "app"})
    # Reflection itself needs no token: it only describes the API.
    listed = buf_curl(stack.grpc_port, "--list-methods", f"http://{stack.grpc_target}")
    assert listed.returncode == 0, listed.stderr
    assert f"{SERVICE}/GetContainerImage" in listed.stdout.split()

    allowed = buf_curl(stack.grpc_port, "-H", f"authorization: Bearer {secret}", "-d", data, url)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["Image"] == "nginx:1.25"

    refused = buf_curl(stack.grpc_port, "-d", data, url)
    assert refused.returncode != 0
    assert "unauthenticated" in refused.stderr.lower()
