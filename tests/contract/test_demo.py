"""`kubeupdate demo` as a new user runs it: the printed curl lines work as printed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")

LAST_LINE = "kubectl sees the same cluster:"


REPOSITORY = Path(__file__).resolve().parents[2]
# What the port-conflict hint tells a user to type.
ANY_PORTS = 'make demo ARGS="--http-port 0 --grpc-port 0"'


@pytest.fixture(scope="module")
def banner() -> Iterator[str]:
    # As a user starts it: make, with other ports (the shell would split ARGS like this).
    demo = subprocess.Popen(
        ["make", "--no-print-directory", "demo", "ARGS=--http-port 0 --grpc-port 0"],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # Ctrl-C reaches make and the demo, as in a terminal
    )
    assert demo.stdout is not None
    lines: list[str] = []
    try:
        for line in demo.stdout:
            lines.append(line)
            if line.startswith(LAST_LINE):
                break
        assert lines, "the demo printed nothing"
        assert lines[-1].startswith(LAST_LINE), "".join(lines)
        yield "".join(lines)
        os.killpg(demo.pid, signal.SIGINT)
        # The demo stops; make reports the interrupt as a terminal's make does.
        assert demo.wait(timeout=30) in (0, -signal.SIGINT)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()


def commands(banner: str) -> list[str]:
    """The printed curl lines, continuations joined, trailing comments removed."""
    joined = re.sub(r"\\\n\s*", "", banner)
    found = []
    for line in joined.splitlines():
        line = re.sub(r"\s{2,}#.*$", "", line.strip())
        if line.startswith("curl "):
            found.append(line)
    return found


def run(banner: str, command: str) -> tuple[int, str]:
    """Runs a printed command in bash after the printed DEMO= line; (status, body)."""
    (demo_line,) = re.findall(r"^\s*(DEMO=\S+)$", banner, re.MULTILINE)
    script = f"{demo_line}; {command} -s --max-time 60 -w '\\n%{{http_code}}'"
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=90, check=True
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def find(banner: str, *parts: str) -> str:
    (command,) = [c for c in commands(banner) if all(p in c for p in parts)]
    return command


def test_the_root_answers_like_the_original(banner: str) -> None:
    (root,) = [c for c in commands(banner) if c.endswith("/") and "-u" not in c]
    # Byte for byte, with the newline the original's JSON encoder wrote.
    assert run(banner, root) == (200, '{"Status":"okay","Detail":"server is running"}\n')


def test_the_original_get_and_post_work_as_printed(banner: str) -> None:
    status, body = run(banner, find(banner, '-u "$DEMO" http', "/deployment/default/web/app"))
    assert status == 200
    assert json.loads(body)["Image"] == "nginx:1.25"

    status, body = run(banner, find(banner, '"Image":"nginx:1.27"'))
    assert status == 200
    answer = json.loads(body)
    assert (answer["Image"], answer["PreviousImage"], answer["Changed"]) == (
        "nginx:1.27",
        "nginx:1.25",
        True,
    )


def test_a_waited_deploy_completes_and_the_watch_shows_it(banner: str) -> None:
    status, body = run(banner, find(banner, '"Image":"nginx:1.28"', '"Wait":true'))
    assert status == 200
    assert json.loads(body)["Rollout"]["State"] == "STATE_COMPLETE"

    status, body = run(banner, find(banner, "/rollout/default/web/watch"))
    assert status == 200
    last = json.loads(body.splitlines()[-1])
    assert last["Rollout"]["State"] == "STATE_COMPLETE"


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("/deployment/default/web/nope",), 404),
        (('"Image":"Nginx:1.27"',), 400),
        (('"Image":"nginx:latest"',), 403),
        (('"Image":"evil.example.com/x:1"',), 403),
        (("Bearer ${DEMO#*:}",), 200),
        (("/history/default/web",), 200),
    ],
)
def test_the_other_printed_lines_answer_as_their_comments_say(
    banner: str, parts: tuple[str, ...], expected: int
) -> None:
    status, body = run(banner, find(banner, *parts))
    assert status == expected, body


def test_no_credentials_is_a_401(banner: str) -> None:
    (anonymous,) = [
        c
        for c in commands(banner)
        if c.endswith("/deployment/default/web/app") and "-u" not in c and "Authorization" not in c
    ]
    status, body = run(banner, anonymous)
    assert status == 401
    assert json.loads(body)["Code"] == "UNAUTHENTICATED"


def test_make_demo_takes_other_ports(banner: str) -> None:
    assert re.search(r"REST gateway\s+http://127\.0\.0\.1:(\d+)", banner) is not None
    assert "127.0.0.1:8080" not in banner
    assert "127.0.0.1:50051" not in banner


def test_the_client_line_works_in_a_second_shell(banner: str) -> None:
    """A new shell has no .venv/bin on its PATH: the printed line must not need it."""
    joined = re.sub(r"\\\n\s*", "", banner)
    (line,) = [c.strip() for c in joined.splitlines() if "kubeupdate-client" in c]
    (demo_line,) = re.findall(r"^\s*(DEMO=\S+)$", banner, re.MULTILINE)
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", f"{demo_line}; {line}"],
        env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "nginx:1.30" in done.stdout


def test_a_port_in_use_is_answered_with_a_command_that_works() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "kubeupdate", "demo", "--http-port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 2
    # The command the banner fixture above runs, and sees work.
    assert ANY_PORTS in done.stdout + done.stderr
