"""Undo as users call it: ``kubeupdate-client undo`` and ``curl``, against the real stack.

The stack (``github_stack``) has a policy: the static token may write any
``docker.io/library/`` image to namespace default, the GitHub OIDC caller only
``docker.io/library/nginx`` to its container ``app``. An undo writes an image
too, so the same rules apply to the image it puts back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kubeupdate.client.cli import ExitCode

from tests.clients.conftest import GitHubStack
from tests.clients.github import GUARD, drive

CLI = str(Path(sys.executable).with_name("kubeupdate-client"))


def cli(
    github_stack: GitHubStack, *argv: str, oidc: bool = False
) -> subprocess.CompletedProcess[str]:
    """The CLI as a process, moving simulated time while it runs."""
    environment = {
        "PATH": os.environ["PATH"],
        "KUBEUPDATE_SERVER": github_stack.stack.grpc_target,
        **(
            github_stack.tokens.environment() if oidc else {"KUBEUPDATE_TOKEN": github_stack.secret}
        ),
    }
    process = subprocess.Popen(
        [CLI, *argv], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    drive(github_stack.cluster, process)
    out, err = process.communicate(timeout=GUARD)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def image_now(github_stack: GitHubStack) -> str:
    return github_stack.stack.image_of("default", "web", "app")


def test_undo_waits_and_puts_the_previous_image_back(github_stack: GitHubStack) -> None:
    assert cli(github_stack, "set", "default/web/app", "nginx:1.26", "--wait").returncode == 0

    done = cli(github_stack, "undo", "default/web/app", "--wait", "--reason", "bad release")

    assert done.returncode == ExitCode.OK, done.stderr
    assert done.stdout.splitlines() == [
        "default/web/app: nginx:1.26 -> nginx:1.25 (revision 1, generation 3)",
        'rollout COMPLETE: deployment "web" successfully rolled out',
    ]
    assert done.stderr.splitlines()[0] == (
        "default/web/app: back to the image of the previous revision, waiting for the rollout"
    )
    assert image_now(github_stack) == "nginx:1.25"
    history = cli(github_stack, "history", "default/web")
    assert "undo to revision 1: bad release" in history.stdout


def test_undo_to_a_revision_answers_json(github_stack: GitHubStack) -> None:
    for image in ("nginx:1.26", "nginx:1.27"):
        assert cli(github_stack, "set", "default/web/app", image, "--wait").returncode == 0

    done = cli(github_stack, "--json", "undo", "default/web/app", "--to-revision", "2")

    assert done.returncode == ExitCode.OK, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["image"], answer["previous_image"], answer["revision"]) == (
        "nginx:1.26",
        "nginx:1.27",
        2,
    )
    assert image_now(github_stack) == "nginx:1.26"


def test_undo_over_rest_is_a_post_to_the_container(github_stack: GitHubStack) -> None:
    assert cli(github_stack, "set", "default/web/app", "nginx:1.26", "--wait").returncode == 0
    url = f"http://127.0.0.1:{github_stack.stack.http_port}/deployment/default/web/app/undo"

    done = subprocess.run(
        [
            "curl",
            "-sS",
            "-u",
            f"release-bot:{github_stack.secret}",
            "-X",
            "POST",
            url,
            "-d",
            '{"ToRevision":1,"Reason":"from curl"}',
        ],
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=True,
    )

    answer = json.loads(done.stdout)
    assert (answer["Image"], answer["PreviousImage"], answer["Revision"], answer["Changed"]) == (
        "nginx:1.25",
        "nginx:1.26",
        "1",
        True,
    )
    assert image_now(github_stack) == "nginx:1.25"


def test_the_image_put_back_must_be_allowed_to_the_caller(github_stack: GitHubStack) -> None:
    # Revision 2 runs httpd, which only the static token may write; revision 3 nginx.
    assert cli(github_stack, "set", "default/web/app", "httpd:2.4", "--wait").returncode == 0
    assert cli(github_stack, "set", "default/web/app", "nginx:1.26", oidc=True).returncode == 0

    refused = cli(github_stack, "undo", "default/web/app", oidc=True)

    assert refused.returncode == ExitCode.AUTH
    assert "PermissionDenied" in refused.stderr
    assert image_now(github_stack) == "nginx:1.26"
    *_, line = github_stack.audit_lines()
    assert (line["method"], line["image"], line["decision"], line["outcome"]) == (
        "UndoContainerImage",
        "httpd:2.4",
        "deny",
        "PERMISSION_DENIED",
    )

    allowed = cli(github_stack, "undo", "default/web/app")  # the static token may

    assert allowed.returncode == ExitCode.OK, allowed.stderr
    assert image_now(github_stack) == "httpd:2.4"
    *_, line = github_stack.audit_lines()
    assert (line["method"], line["image"], line["decision"], line["outcome"]) == (
        "UndoContainerImage",
        "httpd:2.4",
        "allow",
        "OK",
    )
    assert (line["previous_image"], line["changed"]) == ("nginx:1.26", True)
