"""``kubeupdate-client ... --help`` as a user types it: every command answers, none crashes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kubeupdate.client.cli import build_parser

CLI = str(Path(sys.executable).with_name("kubeupdate-client"))


def subcommands() -> list[str]:
    (choices,) = [
        action.choices
        for action in build_parser()._actions  # argparse keeps subparsers only there
        if isinstance(action.choices, dict)
    ]
    return sorted(choices)


def test_the_commands_are_the_documented_ones() -> None:
    assert {"get", "set", "list", "status", "watch", "history"} <= set(subcommands())


@pytest.mark.parametrize("command", ["", *subcommands()])
def test_help_of_every_command_prints_its_usage(command: str) -> None:
    argv = [CLI, *([command] if command else []), "--help"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout.startswith(f"usage: kubeupdate-client {command}".rstrip())
    assert "--server" in done.stdout
    # The defaults are shown as values, not as a placeholder (argparse wraps lines).
    assert "(default: 30s)" in " ".join(done.stdout.split())
