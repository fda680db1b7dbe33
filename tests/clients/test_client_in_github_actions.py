"""``kubeupdate-client`` inside a GitHub Actions job, run as a process against the real stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kubeupdate.client.cli import ExitCode

from tests.clients.conftest import GitHubStack
from tests.clients.github import GUARD

CLI = str(Path(sys.executable).with_name("kubeupdate-client"))


def run_in_job(
    github_stack: GitHubStack, *argv: str, **variables: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": os.environ["PATH"],
        **github_stack.tokens.environment(),
        "KUBEUPDATE_SERVER": github_stack.stack.grpc_target,
        **variables,
    }
    return subprocess.run(
        [CLI, *argv], env=environment, capture_output=True, text=True, timeout=GUARD, check=False
    )


def test_without_audience_the_default_one_is_asked_for(github_stack: GitHubStack) -> None:
    done = run_in_job(github_stack, "get", "default/web/app")
    assert (done.returncode, done.stdout) == (ExitCode.OK, "nginx:1.25\n"), done.stderr
    assert github_stack.tokens.audiences == ["kubeupdate"]
    (line,) = github_stack.audit_lines()
    assert line["identity"]["repository"] == "acme/web"


def test_a_server_with_another_audience_is_named_in_the_error(github_stack: GitHubStack) -> None:
    done = run_in_job(github_stack, "get", "default/web/app", KUBEUPDATE_AUDIENCE="other")
    assert done.returncode == ExitCode.AUTH
    assert github_stack.tokens.audiences == ["other"]
    assert "audience 'other'" in done.stderr
    assert "--audience" in done.stderr


def test_without_id_token_permission_the_error_says_what_to_add(
    github_stack: GitHubStack,
) -> None:
    done = run_in_job(github_stack, "get", "default/web/app", ACTIONS_ID_TOKEN_REQUEST_URL="")
    assert done.returncode == ExitCode.AUTH
    assert "permissions: id-token: write" in done.stderr
    assert "KUBEUPDATE_TOKEN" in done.stderr


def test_a_token_wins_over_oidc(github_stack: GitHubStack) -> None:
    done = run_in_job(
        github_stack, "get", "default/web/sidecar", KUBEUPDATE_TOKEN=github_stack.secret
    )
    assert (done.returncode, done.stdout) == (ExitCode.OK, "busybox:1.36\n"), done.stderr
    assert github_stack.tokens.audiences == []
