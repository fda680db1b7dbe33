"""The files every contributor meets agree with each other and with the code.

The pre-commit hooks run what `make lint` and `make typecheck` run, `make help`
lists every target, and LICENSE and CHANGELOG.md follow the pyproject files.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = ROOT / "Makefile"
VENV_BIN = ".venv/bin/"


def recipe(target: str) -> list[list[str]]:
    """The commands of a Makefile target, one word list each."""
    lines = MAKEFILE.read_text().splitlines()
    (start,) = [i for i, line in enumerate(lines) if line.startswith(f"{target}:")]
    commands = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        commands.append(shlex.split(line.strip()))
    return commands


def hooks() -> list[dict[str, Any]]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    (local,) = config["repos"]
    assert local["repo"] == "local"  # nothing to fetch
    found: list[dict[str, Any]] = local["hooks"]
    return found


def hook_command(hook: dict[str, Any]) -> list[str]:
    """The command a hook runs, with the tool named as the Makefile names it (on PATH)."""
    tool, *words = shlex.split(hook["entry"])
    assert tool.startswith(VENV_BIN), f"{hook['id']} must run the pinned tool in .venv"
    return [tool.removeprefix(VENV_BIN), *words, *hook.get("args", [])]


def test_the_hooks_run_what_make_lint_and_make_typecheck_run() -> None:
    assert [hook_command(hook) for hook in hooks()] == recipe("lint") + recipe("typecheck")


def test_the_hooks_check_the_whole_tree_as_the_makefile_does() -> None:
    for hook in hooks():
        assert hook["pass_filenames"] is False, hook["id"]
        assert hook["language"] == "unsupported", hook["id"]


def test_the_pinned_tools_of_the_hooks_are_in_requirements() -> None:
    pinned = {
        line.split("==")[0].lower()
        for line in (ROOT / "requirements" / "dev.txt").read_text().splitlines()
        if "==" in line
    }
    assert {hook_command(hook)[0] for hook in hooks()} <= pinned


def test_make_help_lists_every_phony_target() -> None:
    (phony,) = re.findall(r"^\.PHONY: (.*)$", MAKEFILE.read_text(), re.MULTILINE)
    result = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    listed = [line.split()[1] for line in result.stdout.splitlines()]
    assert sorted(listed) == sorted(phony.split())
    assert all(len(line.split()) > 2 for line in result.stdout.splitlines()), result.stdout


def test_the_license_is_the_one_both_distributions_declare() -> None:
    for pyproject in (ROOT / "pyproject.toml", ROOT / "clients" / "python" / "pyproject.toml"):
        assert tomllib.loads(pyproject.read_text())["project"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def test_the_changelog_has_a_section_for_each_declared_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "\n## [Unreleased]\n" in changelog
    for pyproject in (ROOT / "pyproject.toml", ROOT / "clients" / "python" / "pyproject.toml"):
        version = tomllib.loads(pyproject.read_text())["project"]["version"]
        assert re.search(
            rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M
        )
