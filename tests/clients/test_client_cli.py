"""The kubeupdate-client command line: output, progress and exit codes."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from kubeupdate.client.cli import ExitCode, exit_code_for, main, positive_duration
from kubeupdate.client.errors import ERROR_FOR_CODE, CredentialsError, ServerError
from kubeupdate.client.progress import ProgressDisplay
from kubeupdate.client.results import Rollout, RolloutState
from kubeupdate.v1 import deployment_image_service_pb2 as pb

from tests.clients.conftest import FakeServer, State, StateValue, rollout

CLIENT_SRC = Path(__file__).resolve().parents[2] / "clients" / "python" / "src"


class LineSignal(io.StringIO):
    """A non-TTY stream that sets ``event`` once it holds ``lines`` lines."""

    def __init__(self, event: threading.Event, lines: int) -> None:
        super().__init__()
        self.event = event
        self.lines = lines

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.getvalue().count("\n") >= self.lines:
            self.event.set()
        return written


class Run:
    """One in-process run of the CLI, with its captured output."""

    def __init__(self, *argv: str, stderr: io.StringIO | None = None) -> None:
        self.stdout = io.StringIO()
        self.stderr = stderr or io.StringIO()
        self.code = main(list(argv), stdout=self.stdout, stderr=self.stderr)

    @property
    def out(self) -> str:
        return self.stdout.getvalue()

    @property
    def err(self) -> str:
        return self.stderr.getvalue()


def cli(server: FakeServer, *argv: str) -> Run:
    return Run("--server", server.target, "--token", "t0k", *argv)


def test_get_prints_the_image_alone(fake_server: FakeServer) -> None:
    run = cli(fake_server, "get", "default/web/app")
    assert (run.code, run.out, run.err) == (ExitCode.OK, "nginx:1.25\n", "")
    assert fake_server.service.metadata[-1]["authorization"] == "Bearer t0k"


def test_options_after_the_command(fake_server: FakeServer) -> None:
    run = Run("get", "default/web/app", "--server", fake_server.target, "--json", "--insecure")
    assert run.code == ExitCode.OK
    assert json.loads(run.out) == {
        "namespace": "default",
        "deployment": "web",
        "container": "app",
        "image": "nginx:1.25",
    }


def test_set_prints_the_change(fake_server: FakeServer) -> None:
    run = cli(fake_server, "set", "default/web/app", "nginx:1.27", "--reason", "r7")
    assert run.code == ExitCode.OK
    assert run.out == "default/web/app: nginx:1.25 -> nginx:1.27 (generation 7)\n"
    (request,) = fake_server.calls("SetContainerImage")
    assert isinstance(request, pb.SetContainerImageRequest)
    assert request.reason == "r7"


def test_set_unchanged_and_dry_run(fake_server: FakeServer) -> None:
    same = cli(fake_server, "set", "default/web/app", "nginx:1.25")
    assert "already nginx:1.25, nothing changed" in same.out
    dry = cli(fake_server, "set", "default/web/app", "nginx:1.27", "--dry-run")
    assert "(dry run, nothing stored)" in dry.out


def test_waited_set_shows_plain_progress_lines_of_this_change(fake_server: FakeServer) -> None:
    # Before the set, the stream shows the previous rollout's end; that is never shown.
    fake_server.service.before_set = rollout(
        State.STATE_COMPLETE, revision=1, message="successfully rolled out"
    )
    # The fake answers once both progress lines are shown.
    fake_server.service.release_set = released = threading.Event()
    run = Run(
        "--server",
        fake_server.target,
        "set",
        "default/web/app",
        "nginx:1.27",
        "--wait",
        "--timeout",
        "2m",
        stderr=LineSignal(released, 3),
    )
    assert run.code == ExitCode.OK
    # Not a TTY: one line per state, no carriage returns or escape codes.
    assert run.err.splitlines() == [
        "default/web/app: nginx:1.27, waiting up to 2m for the rollout",
        "default/web: PROGRESSING 1/3 updated, 0/3 available - 1 of 3 updated replicas",
        "default/web: PROGRESSING 2/3 updated, 1/3 available - 2 of 3 updated replicas",
    ]
    assert "\r" not in run.err
    assert run.out.endswith("rollout COMPLETE: successfully rolled out\n")
    (request,) = fake_server.calls("SetContainerImage")
    assert isinstance(request, pb.SetContainerImageRequest)
    assert request.timeout.seconds == 120


def test_quiet_waited_set_shows_no_progress(fake_server: FakeServer) -> None:
    run = cli(fake_server, "set", "default/web/app", "nginx:1.27", "--wait", "-q")
    assert (run.code, run.err) == (ExitCode.OK, "")
    assert fake_server.calls("WatchRollout") == []


@pytest.mark.parametrize(
    "state", [State.STATE_FAILED, State.STATE_TIMED_OUT, State.STATE_ROLLED_BACK]
)
def test_failed_rollout_exits_3(fake_server: FakeServer, state: StateValue) -> None:
    fake_server.service.set_outcome = rollout(
        state, 1, 0, message="pods in ImagePullBackOff", failed_image="x:1", restored_image="y:1"
    )
    run = cli(fake_server, "--json", "set", "default/web/app", "x:1", "--wait", "-q")
    assert run.code == 3
    answer = json.loads(run.out)["rollout"]
    assert answer["state"] in {"FAILED", "TIMED_OUT", "ROLLED_BACK"}
    assert answer["message"] == "pods in ImagePullBackOff"
    # The sentence is in the answer on stdout; stderr says how it ended, briefly.
    assert run.err == f"kubeupdate-client: RolloutFailed: {answer['state']}\n"


def test_rolled_back_text(fake_server: FakeServer) -> None:
    fake_server.service.set_outcome = rollout(
        State.STATE_ROLLED_BACK, failed_image="x:1", restored_image="nginx:1.25"
    )
    run = cli(fake_server, "set", "default/web/app", "x:1", "--wait", "--rollback-on-failure")
    assert run.code == ExitCode.ROLLOUT_FAILED
    assert "rolled back: x:1 -> nginx:1.25" in run.out


def test_list_and_history(fake_server: FakeServer) -> None:
    listed = cli(fake_server, "list", "default/web")
    assert listed.out.splitlines() == [
        "NAME     IMAGE",
        "migrate  busybox:1.36  (init)",
        "app      nginx:1.25",
        "sidecar  envoy:1.30",
    ]
    history = cli(fake_server, "--json", "history", "default/web")
    revisions = json.loads(history.out)
    assert [r["revision"] for r in revisions] == [2, 1]
    assert revisions[0]["containers"] == [
        {"name": "app", "image": "nginx:1.25", "init_container": False}
    ]
    text = cli(fake_server, "history", "default/web").out.splitlines()
    assert text[1].startswith("2 ")
    assert "app=nginx:1.25" in text[1]
    assert text[2].endswith("<none>")


def test_status_exit_code_follows_the_state(fake_server: FakeServer) -> None:
    ok = cli(fake_server, "status", "default/web")
    assert ok.code == ExitCode.OK
    assert ok.out.startswith("default/web: COMPLETE 3/3 updated")
    fake_server.service.watch_states = [rollout(State.STATE_FAILED, 1, 0, reason="Deadline")]
    failed = cli(fake_server, "--json", "status", "default/web")
    assert failed.code == ExitCode.ROLLOUT_FAILED
    assert json.loads(failed.out)["reason"] == "Deadline"


def test_watch_prints_each_state(fake_server: FakeServer) -> None:
    run = cli(fake_server, "watch", "default/web")
    assert run.code == ExitCode.OK
    assert [line.split(" - ")[0] for line in run.out.splitlines()] == [
        "default/web: PROGRESSING 1/3 updated, 0/3 available",
        "default/web: PROGRESSING 2/3 updated, 1/3 available",
        "default/web: COMPLETE 3/3 updated, 3/3 available",
    ]
    as_json = cli(fake_server, "--json", "watch", "default/web")
    assert [json.loads(line)["state"] for line in as_json.out.splitlines()] == [
        "PROGRESSING",
        "PROGRESSING",
        "COMPLETE",
    ]


def test_watch_of_a_failed_rollout_exits_3(fake_server: FakeServer) -> None:
    fake_server.service.watch_states = [rollout(State.STATE_FAILED, 1, 0)]
    assert cli(fake_server, "watch", "default/web").code == ExitCode.ROLLOUT_FAILED


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 2),
        (grpc.StatusCode.UNAUTHENTICATED, 4),
        (grpc.StatusCode.PERMISSION_DENIED, 4),
        (grpc.StatusCode.NOT_FOUND, 5),
        (grpc.StatusCode.UNAVAILABLE, 6),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 6),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 6),
        (grpc.StatusCode.ABORTED, 7),
        (grpc.StatusCode.FAILED_PRECONDITION, 7),
        (grpc.StatusCode.INTERNAL, 1),
    ],
)
def test_errors_have_documented_exit_codes(
    fake_server: FakeServer, code: grpc.StatusCode, exit_code: int
) -> None:
    fake_server.service.errors["GetContainerImage"] = (code, "why it failed")
    run = cli(fake_server, "get", "default/web/app")
    assert run.code == exit_code
    assert run.out == ""
    assert run.err.startswith("kubeupdate-client: ")
    # The server's sentence, then maybe a hint line of the client's.
    assert run.err.splitlines()[0].endswith("why it failed")


@pytest.mark.parametrize(
    ("code", "reason", "exit_code"),
    [
        # The caller's own refusal: 4. The server's own Kubernetes access: 1, same code.
        (grpc.StatusCode.PERMISSION_DENIED, "TARGET_NOT_ALLOWED", ExitCode.AUTH),
        (grpc.StatusCode.PERMISSION_DENIED, "KUBERNETES_PERMISSION_MISSING", ExitCode.ERROR),
        (grpc.StatusCode.UNAVAILABLE, "KUBERNETES_UNAVAILABLE", ExitCode.UNAVAILABLE),
        (grpc.StatusCode.UNAVAILABLE, "KUBERNETES_CREDENTIALS_INVALID", ExitCode.ERROR),
    ],
)
def test_exit_codes_switch_on_the_reason_where_the_code_is_too_coarse(
    fake_server: FakeServer, code: grpc.StatusCode, reason: str, exit_code: ExitCode
) -> None:
    fake_server.service.errors["GetContainerImage"] = (code, "the same sentence", reason, {})
    run = cli(fake_server, "get", "default/web/app")
    assert run.code == exit_code
    assert f"({reason}): the same sentence" in run.err


def test_not_found_container(fake_server: FakeServer) -> None:
    run = cli(fake_server, "get", "default/web/nope")
    assert run.code == ExitCode.NOT_FOUND
    assert "container nope not found" in run.err


def test_unreachable_server_exits_6() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        run = Run("--server", f"127.0.0.1:{closed.getsockname()[1]}", "get", "a/b/c")
    assert run.code == ExitCode.UNAVAILABLE


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate", "a/b"],
        ["get", "default/web"],
        ["get", "default//app"],
        ["list", "default/web/app"],
        ["set", "default/web/app"],
        ["set", "default/web/app", "x:1", "--rollback-on-failure"],
        ["set", "default/web/app", "x:1", "--timeout", "5m"],
        ["set", "default/web/app", "x:1", "--wait", "--dry-run"],
        ["set", "default/web/app", "x:1", "--wait", "--timeout", "soon"],
        ["--tls", "--insecure", "get", "a/b/c"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    run = Run("--server", "127.0.0.1:1", *argv)
    assert run.code == ExitCode.USAGE
    assert "usage:" in run.err


def test_help_exits_0() -> None:
    run = Run("--help")
    assert run.code == ExitCode.OK
    assert "exit codes:" in run.out


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("300", 300), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("1.5", 1.5), ("250ms", 0.25)],
)
def test_durations_on_the_command_line(text: str, seconds: float) -> None:
    assert positive_duration(text) == seconds


def test_tty_progress_rewrites_one_line() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, tty=True)
    for updated in (1, 1, 2):
        display.update(
            Rollout("ns", "d", RolloutState.PROGRESSING, replicas=2, updated_replicas=updated)
        )
    display.finish()
    assert stream.getvalue() == (
        "\r\x1b[Kns/d: PROGRESSING 1/2 updated, 0/2 available"
        "\r\x1b[Kns/d: PROGRESSING 2/2 updated, 0/2 available\n"
    )


def test_cli_as_a_subprocess(fake_server: FakeServer) -> None:
    environment = {
        **os.environ,
        "PYTHONPATH": str(CLIENT_SRC),
        "KUBEUPDATE_SERVER": fake_server.target,
        "KUBEUPDATE_TOKEN": "env-token",
    }
    found = subprocess.run(
        [sys.executable, "-m", "kubeupdate.client", "get", "default/web/sidecar"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (found.returncode, found.stdout) == (0, "envoy:1.30\n"), found.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "kubeupdate.client", "get", "default/nope/app"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == ExitCode.NOT_FOUND, missing.stderr
    assert fake_server.service.metadata[-1]["authorization"] == "Bearer env-token"


PROTO = CLIENT_SRC.parents[2] / "proto" / "kubeupdate" / "v1" / "error_reason.proto"


def documented_codes() -> dict[str, grpc.StatusCode]:
    """Each ErrorReason with the gRPC code error_reason.proto gives it.

    A value's own comment names its code when it differs from its section's
    (``// --- NOT_FOUND (HTTP 404).``); a value with neither is UNKNOWN.
    """
    names = {code.name for code in grpc.StatusCode}
    section: str | None = None
    comment: list[str] = []
    codes: dict[str, grpc.StatusCode] = {}
    for line in PROTO.read_text().splitlines():
        text = line.strip()
        if text.startswith("// ---"):
            found = [w for w in re.findall(r"[A-Z_]+", text) if w in names]
            section = found[0] if found else None
            comment = []
        elif text.startswith("//"):
            comment.append(text)
        elif match := re.fullmatch(r"([A-Z_]+) = \d+;", text):
            own = [w for w in re.findall(r"[A-Z_]+", " ".join(comment)) if w in names]
            name = (own or [section or "UNKNOWN"])[0]
            codes[match.group(1)] = grpc.StatusCode[name]
            comment = []
    codes.pop("ERROR_REASON_UNSPECIFIED")
    return codes


def readme_table() -> dict[int, list[str]]:
    """Exit code -> the reasons its row of the README's table lists."""
    readme = (CLIENT_SRC.parent / "README.md").read_text()
    section = readme.split("### Exit codes and reasons", 1)[1].split("\n#", 1)[0]
    return {
        int(row.group(1)): re.findall(r"`([A-Z][A-Z_]+)`", row.group(2))
        for row in re.finditer(r"^\| (\d+) \|(.*)$", section, re.MULTILINE)
    }


def test_one_table_gives_every_exit_code_and_the_reasons_behind_it() -> None:
    table = readme_table()
    assert set(table) == {int(code) for code in ExitCode}
    listed = [reason for reasons in table.values() for reason in reasons]
    assert len(listed) == len(set(listed)), "a reason is in two rows"
    row_of = {reason: code for code, reasons in table.items() for reason in reasons}
    # Every reason of the contract, where the CLI really puts it.
    for reason, code in documented_codes().items():
        error = ERROR_FOR_CODE.get(code, ServerError)("m", code, reason=reason)
        assert row_of.get(reason) == exit_code_for(error), reason
    # And the client's own.
    assert row_of["UNREACHABLE"] == ExitCode.UNAVAILABLE
    assert row_of["OIDC_TOKEN_UNAVAILABLE"] == exit_code_for(CredentialsError("m"))
    assert set(listed) == {*documented_codes(), "UNREACHABLE", "OIDC_TOKEN_UNAVAILABLE"}


@pytest.mark.parametrize("width", [80, 40])
def test_tty_progress_fits_the_terminal(width: int) -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, tty=True, width=width)
    display.start("ns/d/app: x:1, waiting for the rollout")
    display.update(
        Rollout(
            "ns", "d", RolloutState.PROGRESSING, replicas=3, updated_replicas=1, message="w" * 200
        )
    )
    display.finish()
    first, rewritten, end = stream.getvalue().split("\n")
    assert first == "ns/d/app: x:1, waiting for the rollout"
    full = "ns/d: PROGRESSING 1/3 updated, 0/3 available - " + "w" * 200
    # Cut one column short of the width; StringIO has no encoding, so "..." not "…".
    assert rewritten == "\r\x1b[K" + full[: width - 4] + "..."
    assert end == ""
