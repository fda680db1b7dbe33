"""Small frictions a new user meets, each run as the user runs it (processes)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
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


@pytest.mark.parametrize(
    "argv",
    [
        ["get", "default/nope/app"],
        ["set", "default/nope/app", "nginx:1.26"],
        ["undo", "default/nope/app"],
        ["list", "default/nope"],
        ["status", "default/nope"],
        ["watch", "default/nope"],
        ["history", "default/nope"],
    ],
)
def test_json_of_every_command_carries_the_reason_of_a_failure(
    github_stack: GitHubStack, argv: list[str]
) -> None:
    done = cli(github_stack, "--server", github_stack.stack.grpc_target, "--json", *argv)
    assert done.returncode == ExitCode.NOT_FOUND, done.stderr
    error = json.loads(done.stdout)["error"]
    assert (error["kind"], error["code"], error["reason"], error["exit_code"]) == (
        "NotFound",
        "NOT_FOUND",
        "DEPLOYMENT_NOT_FOUND",
        5,
    )
    assert error["metadata"]["deployment"] == "nope"
    assert "nope" in error["message"]


def test_an_unreachable_server_is_a_reason_too(github_stack: GitHubStack) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        server = f"127.0.0.1:{closed.getsockname()[1]}"
        done = cli(github_stack, "--server", server, "--json", "get", "default/web/app")
    assert done.returncode == ExitCode.UNAVAILABLE
    assert json.loads(done.stdout)["error"]["reason"] == "UNREACHABLE"
    assert "Unavailable (UNREACHABLE)" in done.stderr
