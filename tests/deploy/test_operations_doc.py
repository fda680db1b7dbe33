"""deploy/OPERATIONS.md stays in step with the code: every flag, every variable."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "deploy" / "OPERATIONS.md"
ENTRYPOINT = ROOT / "deploy" / "image" / "entrypoint"
HEALTHCHECK = ROOT / "deploy" / "image" / "healthcheck.py"


def serve_flags() -> set[str]:
    from kubeupdate.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    serve = commands.choices["serve"]
    return {
        option
        for action in serve._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def documented(section: str) -> set[str]:
    text = DOC.read_text().split(section, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return set(re.findall(r"`(--[a-z][a-z0-9-]*)`", text))


def test_every_serve_flag_is_documented_and_nothing_else() -> None:
    assert documented("## Configuration reference") == serve_flags()


def test_image_variables_are_documented_and_used() -> None:
    text = DOC.read_text().split("### Environment of the container image", 1)[1]
    variables = set(re.findall(r"^\| `(KUBEUPDATE_[A-Z_]+)`", text, re.MULTILINE))
    used = set(re.findall(r"KUBEUPDATE_[A-Z_]+", ENTRYPOINT.read_text())) | set(
        re.findall(r"KUBEUPDATE_[A-Z_]+", HEALTHCHECK.read_text())
    )
    assert variables == used
