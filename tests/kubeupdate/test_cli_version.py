"""``kubeupdate --version`` prints the version the distribution declares."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KUBEUPDATE = Path(sys.executable).parent / "kubeupdate"


def test_version_is_the_one_in_pyproject() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = subprocess.run(
        [str(KUBEUPDATE), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"kubeupdate {declared}\n",
        "",
    )
