"""``kubeupdate-client`` in a real terminal: tmux, 80 columns, against the real stack.

The progress line must stay one row: a line wider than the terminal wraps,
and ``\\r`` then rewrites only its last row, leaving the others behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clients.conftest import GitHubStack
from tests.clients.github import GUARD

TMUX = shutil.which("tmux")
CLI_DIR = str(Path(sys.executable).parent)
WIDTH = 80

pytestmark = pytest.mark.skipif(
    TMUX is None and not os.environ.get("CI"),
    reason="needs tmux (scripts/install-test-tools installs it; apt-get install tmux)",
)


@dataclass
class Terminal:
    """A shell in a tmux window of WIDTH columns, on a tmux server of its own."""

    socket: Path

    environment: dict[str, str]

    def tmux(self, *args: str) -> str:
        assert TMUX is not None, "tmux is missing: run scripts/install-test-tools"
        done = subprocess.run(
            [TMUX, "-S", str(self.socket), *args],
            env=self.environment,  # the server's, so the shell's, when it starts
            capture_output=True,
            text=True,
            timeout=GUARD,
            check=True,
        )
        return done.stdout

    def type(self, line: str) -> None:
        self.tmux("send-keys", "-t", "test", "-l", line)
        self.tmux("send-keys", "-t", "test", "Enter")

    def screen(self) -> list[str]:
        """The rows of the window, as a person sees them (trailing spaces dropped)."""
        return [row.rstrip() for row in self.tmux("capture-pane", "-p", "-t", "test").splitlines()]

    def wait_for(self, found: Callable[[list[str]], bool], between: Callable[[], None]) -> None:
        """Calls ``between`` until the screen shows what ``found`` looks for."""
        give_up = time.monotonic() + GUARD
        while not found(self.screen()):
            assert time.monotonic() < give_up, "\n".join(self.screen())
            between()


@pytest.fixture
def terminal(github_stack: GitHubStack, tmp_path: Path) -> Iterator[Terminal]:
    environment = {
        "PATH": f"{CLI_DIR}:{os.environ['PATH']}",
        "KUBEUPDATE_SERVER": github_stack.stack.grpc_target,
        "KUBEUPDATE_TOKEN": github_stack.secret,
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "HOME": str(tmp_path),
    }
    term = Terminal(tmp_path / "tmux.sock", environment)
    # Not a login shell: /etc/profile would set PATH again.
    shell = "bash --noprofile --norc"
    term.tmux(
        "-f", "/dev/null", "new-session", "-d", "-s", "test", "-x", str(WIDTH), "-y", "30", shell
    )
    term.type("PS1='$ '; clear")
    term.wait_for(lambda rows: rows[0] == "$", lambda: time.sleep(0.05))
    try:
        yield term
    finally:
        term.tmux("kill-server")


def test_a_failed_waited_set_keeps_its_progress_on_one_row_at_80_columns(
    github_stack: GitHubStack, terminal: Terminal
) -> None:
    cluster = github_stack.cluster
    terminal.type("kubeupdate-client set default/web/app nginx:1.26-bad --wait \\")
    terminal.type("  --rollback-on-failure; echo exit=$?")

    # Time stands still until the rollout is shown in progress, then moves.
    def progressing(rows: list[str]) -> bool:
        return any(row.startswith("default/web: PROGRESSING") for row in rows)

    terminal.wait_for(progressing, lambda: time.sleep(0.05))
    terminal.wait_for(lambda rows: "exit=3" in rows, lambda: cluster.advance(1))
    rows = terminal.screen()
    screen = "\n".join(rows)
    # The first line is about this change, then one progress row, then the result.
    description = "default/web/app: nginx:1.26-bad, waiting for the rollout (rollback on failure)"
    assert description in rows, screen
    start = rows.index(description)
    assert rows[start + 1].startswith("default/web: PROGRESSING ")
    assert len(rows[start + 1]) < WIDTH, screen
    assert rows[start + 2] == "default/web/app: nginx:1.25 -> nginx:1.26-bad (generation 2)"
    assert "rolled back: nginx:1.26-bad -> nginx:1.25" in rows
    assert github_stack.stack.image_of("default", "web", "app") == "nginx:1.25"
    print(screen)  # for the record (pytest -s shows it)
