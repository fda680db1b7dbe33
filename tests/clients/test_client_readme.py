"""The client's README, run: its shell and Python examples against the real stack.

Only what a reader would change is changed: the server address (the
examples name 127.0.0.1:50051 or kubeupdate.example.com:443) and, for the
release script, the target and repository, which it takes from the
environment. ``pip install`` lines are not run (the test runs offline, in an
environment where the client is installed).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from kubeupdate.client.cli import ExitCode

from tests.clients.conftest import GitHubStack
from tests.clients.github import GUARD, drive

README = Path(__file__).resolve().parents[2] / "clients" / "python" / "README.md"
BIN = str(Path(sys.executable).parent)


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)


def run(
    github_stack: GitHubStack, argv: list[str], **variables: str
) -> subprocess.CompletedProcess[str]:
    """A process with the client on PATH and the stack's token, moving simulated time."""
    environment = {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/"),
        "KUBEUPDATE_TOKEN": github_stack.secret,
        **variables,
    }
    process = subprocess.Popen(
        argv, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    drive(github_stack.cluster, process)
    out, err = process.communicate(timeout=GUARD)
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


def test_the_install_lines_say_what_the_installed_client_says(github_stack: GitHubStack) -> None:
    (install, *_) = blocks("sh")
    assert "pip install kubeupdate-client" in install
    (version,) = [line for line in install.splitlines() if "--version" in line]
    command, expected = (part.strip() for part in version.split("#", 1))
    done = run(github_stack, ["bash", "-c", command])
    assert done.stdout.strip() == expected


def test_the_release_script_deploys_and_fails_a_release_that_cannot_come_up(
    github_stack: GitHubStack, tmp_path: Path
) -> None:
    (script,) = [block for block in blocks("sh") if block.startswith("#!/usr/bin/env bash")]
    assert len(script.splitlines()) == 5
    release = tmp_path / "release.sh"
    release.write_text(script)
    where = {
        "KUBEUPDATE_SERVER": github_stack.stack.grpc_target,
        "TARGET": "default/web/app",
        "REPOSITORY": "nginx",
    }

    good = run(github_stack, ["bash", str(release), "1.26"], **where)
    assert good.returncode == 0, good.stderr
    assert github_stack.stack.image_of("default", "web", "app") == "nginx:1.26"

    bad = run(github_stack, ["bash", str(release), "1.27-bad"], **where)
    assert bad.returncode == ExitCode.ROLLOUT_FAILED
    assert github_stack.stack.image_of("default", "web", "app") == "nginx:1.26"


def test_the_command_line_examples_run_as_written(github_stack: GitHubStack) -> None:
    (examples,) = [block for block in blocks("sh") if block.startswith("export KUBEUPDATE_SERVER")]
    script = "set -e\n" + examples.replace("127.0.0.1:50051", github_stack.stack.grpc_target)
    done = run(github_stack, ["bash", "-c", script])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kubeupdate-client 0.1.0" in done.stdout


def test_the_python_examples_run_as_written(github_stack: GitHubStack) -> None:
    prelude = (
        "from kubeupdate.client import DeploymentImageClient, NotFound\n"
        f"client = DeploymentImageClient({github_stack.stack.grpc_target!r})\n"
    )
    for example in blocks("python"):
        code = example.replace(
            'DeploymentImageClient("kubeupdate.example.com:443", tls=True)',
            f"DeploymentImageClient({github_stack.stack.grpc_target!r})",
        )
        done = run(github_stack, [sys.executable, "-c", prelude + code])
        assert done.returncode == 0, code + done.stderr
