"""Small frictions a new user meets, each run as the user runs it (processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kubeupdate.client.cli import ExitCode

from tests.clients.conftest import GitHubStack
from tests.clients.github import GUARD

CLI = str(Path(sys.executable).with_name("kubeupdate-client"))
PROG = "kubeupdate-client: "


def cli(github_stack: GitHubStack, *argv: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": os.environ["PATH"],
        "KUBEUPDATE_TOKEN": github_stack.secret,
        "HOME": os.environ.get("HOME", "/"),
    }
    return subprocess.run(
        [CLI, *argv], env=environment, capture_output=True, text=True, timeout=GUARD, check=False
    )


def test_tls_against_a_plaintext_server_says_so_and_nothing_else(
    github_stack: GitHubStack,
) -> None:
    done = cli(github_stack, "--server", github_stack.stack.grpc_target, "--tls", "get", "a/b/c")
    assert done.returncode == ExitCode.UNAVAILABLE
    # Only our own lines: no log line of gRPC's C core before them.
    assert all(line.startswith(PROG) for line in done.stderr.splitlines()), done.stderr
    assert "does not speak TLS" in done.stderr
    assert "--insecure" in done.stderr


def test_the_rest_port_is_recognised_and_the_grpc_port_named(github_stack: GitHubStack) -> None:
    rest = f"127.0.0.1:{github_stack.stack.http_port}"
    done = cli(github_stack, "--server", rest, "get", "default/web/app")
    assert done.returncode == ExitCode.UNAVAILABLE
    assert all(line.startswith(PROG) for line in done.stderr.splitlines()), done.stderr
    assert f"{rest} answers HTTP/1.1: this looks like the REST port" in done.stderr
    assert "the gRPC port (kubeupdate serve --grpc-port, 50051 by default)" in done.stderr
