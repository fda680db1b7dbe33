"""Building a distribution's wheel in a test, offline, to look at what it ships."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def build_wheel(project: Path, out: Path) -> Path:
    """The wheel of the project at ``project``, built into ``out``; skips without hatchling."""
    # Offline: the build backend (hatchling) comes from this environment.
    built = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet"),
            *("--no-deps", "--no-build-isolation", "--no-index"),
            *(str(project), "--wheel-dir", str(out)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0 and "hatchling" in built.stderr:
        pytest.skip("the hatchling build backend is not installed")
    assert built.returncode == 0, built.stderr
    (wheel,) = out.glob("*.whl")
    return wheel
