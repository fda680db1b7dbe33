"""A GitHub Actions job on loopback, for the clients that run inside one.

- :class:`TokenEndpoint`: the runner's OIDC token service
  (``ACTIONS_ID_TOKEN_REQUEST_URL``), signing GitHub-like ID tokens for the
  audience asked, with the keys the service under test trusts.
- :func:`run_composite_action`: runs a composite action's steps as the runner
  does: inputs (with their defaults) through ``${{ inputs.* }}`` into each
  step's ``env:``, ``bash --noprofile --norc -eo pipefail`` on the step's
  script, ``GITHUB_OUTPUT`` and ``GITHUB_STEP_SUMMARY`` files per step, and the
  action's outputs from its steps' outputs.
- :func:`drive`: moves the devcluster's simulated clock while a process runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from devcluster import DevCluster
from tests.auth.conftest import Issuer

REQUEST_TOKEN = "runtime-request-token"
# A guard against a hung process, never reached when the code under test works.
GUARD = 120.0
# The parts of the `github` context the actions here read, as the runner fills them.
GITHUB_CONTEXT = {
    "GITHUB_REPOSITORY": "acme/web",
    "GITHUB_SHA": "a" * 40,
    "GITHUB_ACTOR": "octocat",
    "GITHUB_RUN_ID": "9001",
}


@dataclass
class TokenEndpoint:
    """The runner's token service on 127.0.0.1 (port 0); ``refuse`` answers 401 instead."""

    issuer: Issuer
    port: int = 0
    refuse: bool = False
    audiences: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/_apis/token?api-version=2.0"

    def environment(self) -> dict[str, str]:
        """What the runner sets in a job with ``permissions: id-token: write``."""
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
        }

    @contextlib.contextmanager
    def serving(self) -> Iterator[TokenEndpoint]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(parts.query)
                authorized = self.headers.get("Authorization") == f"bearer {REQUEST_TOKEN}"
                if parts.path != "/_apis/token" or not authorized or endpoint.refuse:
                    self.reply(401, {"message": "the runtime token is not valid"})
                    return
                audience = query.get("audience", [""])[0]
                endpoint.audiences.append(audience)
                claims = endpoint.issuer.claims(aud=audience)
                self.reply(200, {"count": 1, "value": endpoint.issuer.sign(claims)})

            def reply(self, status: int, document: Any) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def drive(cluster: DevCluster, process: subprocess.Popen[str], step: float = 1.0) -> None:
    """Moves simulated time in ``step`` seconds while ``process`` runs (its rollouts progress)."""
    give_up = time.monotonic() + GUARD
    while process.poll() is None:
        if time.monotonic() > give_up:
            process.kill()
            raise AssertionError(f"{process.args!r} still ran after {GUARD:g} s")
        cluster.advance(step)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.01)


@dataclass
class ActionResult:
    """What a job sees of one use of the action."""

    code: int
    log: str  # stdout then stderr of the steps, as the job's log shows them
    outputs: dict[str, str]
    summary: str


_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def run_composite_action(
    action_dir: Path,
    inputs: Mapping[str, str],
    environment: Mapping[str, str],
    workdir: Path,
    *,
    while_running: Callable[[subprocess.Popen[str]], None] | None = None,
) -> ActionResult:
    """Runs the composite action in ``action_dir`` as a job step ``uses:`` it.

    Only the expressions an action of ours may use are known:
    ``inputs.NAME``, ``github.NAME`` and ``steps.ID.outputs.NAME``; any other
    fails the test. Steps without ``if:`` stop at the first failure, as on
    GitHub; ``if: always()`` steps run anyway. ``while_running`` is called
    with each step's process while it runs.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    action = yaml.safe_load((action_dir / "action.yml").read_text(encoding="utf-8"))
    assert action["runs"]["using"] == "composite"
    declared = action.get("inputs", {})
    unknown = set(inputs) - set(declared)
    assert not unknown, f"inputs the action does not declare: {unknown}"
    github = {name.removeprefix("GITHUB_").lower(): value for name, value in GITHUB_CONTEXT.items()}
    step_outputs: dict[str, dict[str, str]] = {}

    def evaluate(text: str, given: Mapping[str, str]) -> str:
        def one(match: re.Match[str]) -> str:
            expression = match.group(1)
            scope, _, rest = expression.partition(".")
            if scope == "inputs" and rest in declared:
                return given[rest]
            if scope == "github" and rest in github:
                return github[rest]
            step, _, output = rest.partition(".outputs.")
            if scope == "steps" and output:
                return step_outputs.get(step, {}).get(output, "")
            raise AssertionError(f"an expression this runner does not know: {expression}")

        return _EXPRESSION.sub(one, str(text))

    # Inputs not given take their default, which may itself be an expression.
    values: dict[str, str] = {}
    for name, spec in declared.items():
        values[name] = inputs[name] if name in inputs else str(spec.get("default", ""))
    values = {name: evaluate(value, values) for name, value in values.items()}

    log: list[str] = []
    summary: list[str] = []
    failed = 0
    for number, step in enumerate(action["runs"]["steps"]):
        condition = str(step.get("if", "success()"))
        if failed and "always()" not in condition and "failure()" not in condition:
            continue
        assert step.get("shell") == "bash", "composite run steps name their shell"
        script = workdir / f"step-{number}.sh"
        script.write_text(evaluate(step["run"], values), encoding="utf-8")
        output_file = workdir / f"output-{number}"
        summary_file = workdir / f"summary-{number}"
        output_file.touch()
        summary_file.touch()
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(workdir),
            **GITHUB_CONTEXT,
            **environment,
            "GITHUB_ACTION_PATH": str(action_dir),
            "GITHUB_OUTPUT": str(output_file),
            "GITHUB_STEP_SUMMARY": str(summary_file),
            "RUNNER_TEMP": str(workdir),
        }
        env.update({k: evaluate(v, values) for k, v in step.get("env", {}).items()})
        process = subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if while_running is not None:
            while_running(process)
        out, err = process.communicate(timeout=GUARD)
        log.append(out + err)
        summary.append(summary_file.read_text(encoding="utf-8"))
        if "id" in step:
            step_outputs[step["id"]] = read_outputs(output_file)
        if process.returncode != 0 and not step.get("continue-on-error"):
            failed = process.returncode
    outputs = {
        name: evaluate(spec["value"], values) for name, spec in action.get("outputs", {}).items()
    }
    return ActionResult(failed, "".join(log), outputs, "".join(summary))


def read_outputs(path: Path) -> dict[str, str]:
    """A GITHUB_OUTPUT file: ``name=value`` lines and ``name<<DELIMITER`` blocks."""
    outputs: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            for part in lines:
                if part == delimiter:
                    break
                block.append(part)
            outputs[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs
