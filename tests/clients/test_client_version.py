"""``kubeupdate-client --version`` prints the version the client distribution declares."""

from __future__ import annotations

import io
import subprocess
import sys
import tomllib
from pathlib import Path

from kubeupdate.client.cli import ExitCode, main

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"
KUBEUPDATE_CLIENT = Path(sys.executable).parent / "kubeupdate-client"


def declared_version() -> str:
    version: str = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]["version"]
    return version


def test_version_is_the_one_in_the_client_pyproject() -> None:
    result = subprocess.run(
        [str(KUBEUPDATE_CLIENT), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"kubeupdate-client {declared_version()}\n",
        "",
    )


def test_version_goes_to_the_given_stdout_and_exits_ok() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(["--version"], stdout=stdout, stderr=stderr)
    assert (code, stdout.getvalue(), stderr.getvalue()) == (
        ExitCode.OK,
        f"kubeupdate-client {declared_version()}\n",
        "",
    )
