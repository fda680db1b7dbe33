"""What the ``kubeupdate`` command line loads, and what it does without the devcluster.

Memory is the point: the kubernetes package, aiohttp and cryptography weigh
~40 MB that a gateway process must not carry. ``demo`` and ``devcluster``
need the emulator, a distribution of its own that the production image does
not install. Checked in fresh interpreters.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from kubeupdate.cli import main

PROBE = """
import sys

from kubeupdate import cli, serving  # noqa: F401 - what run_serve imports

args = cli.build_parser().parse_args(["serve", "--only", "gateway"])
assert args.only == "gateway"
loaded = sorted(
    name
    for name in sys.modules
    if name.partition(".")[0] in {"kubernetes", "aiohttp", "cryptography", "devcluster"}
    or name.startswith(("kubeupdate.kube.client", "kubeupdate.auth.oidc"))
)
print(" ".join(loaded))
"""


def test_serve_only_gateway_does_not_import_the_service_stack() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_devcluster_and_demo_parse_their_own_flags(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("devcluster", "demo"):
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0
        usage = capsys.readouterr().out
        assert usage.startswith(f"usage: kubeupdate {command} [-h]")
        assert "--speed" in usage


def test_serve_refuses_flags_it_does_not_know(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--speed", "2"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --speed 2" in capsys.readouterr().err


# The production image: kubeupdate without the devcluster distribution.
WITHOUT_DEVCLUSTER = """
import importlib.abc
import sys


class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "devcluster":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Refuse())
from kubeupdate.cli import main

sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", ["devcluster", "demo"])
def test_without_the_devcluster_one_line_says_so(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_DEVCLUSTER, command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"kubeupdate {command}: the devcluster (the Kubernetes API emulator for tests and the "
        "demo) is not installed here; from a clone of the repository, run `make demo` or "
        "`pip install ./devcluster`\n"
    )
