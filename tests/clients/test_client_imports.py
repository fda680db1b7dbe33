"""The client distribution stands alone: no kubernetes, falcon, aiohttp or service code."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.wheels import build_wheel

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"

# Runs in a fresh interpreter that refuses the service's dependencies.
PROBE = """
import importlib.abc
import sys

BLOCKED = {"kubernetes", "falcon", "aiohttp", "uvicorn", "yaml", "gateway"}


class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"blocked: {name}")
        return None


sys.meta_path.insert(0, Refuse())
import kubeupdate.client
import kubeupdate.client.cli
import kubeupdate.client.__main__ as _  # noqa
"""

ALLOWED_OWN = ("kubeupdate.client", "kubeupdate.v1")


def test_client_imports_without_service_dependencies() -> None:
    probe = PROBE.replace("import kubeupdate.client.__main__ as _  # noqa\n", "") + (
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(CLIENT / "src")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    modules = result.stdout.split()
    assert "kubeupdate.client.cli" in modules
    own = [m for m in modules if m.startswith("kubeupdate.")]
    assert all(m.startswith(ALLOWED_OWN) for m in own), own
    blocked = {"kubernetes", "falcon", "aiohttp", "uvicorn", "yaml", "gateway"}
    assert not blocked & {m.partition(".")[0] for m in modules}


def test_no_namespace_package_init() -> None:
    # `kubeupdate` is shared with the service distribution (PEP 420).
    assert not (CLIENT / "src" / "kubeupdate" / "__init__.py").exists()


def test_distribution_depends_on_grpc_and_protobuf_only() -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    names = {
        dep.split(">")[0].split("=")[0].split("[")[0].strip() for dep in project["dependencies"]
    }
    assert names == {"grpcio", "protobuf", "googleapis-common-protos"}
    assert project["scripts"]["kubeupdate-client"] == "kubeupdate.client.cli:run"


def test_wheel_holds_the_client_and_stubs_only(tmp_path: Path) -> None:
    wheel = build_wheel(CLIENT, tmp_path)
    assert wheel.name.startswith("kubeupdate_client-")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("/METADATA"))).decode()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt")))
    packages = {name.rsplit("/", 1)[0] for name in names if name.endswith(".py")}
    assert packages == {"kubeupdate/client", "kubeupdate/v1"}
    assert "kubeupdate/__init__.py" not in names
    requires = {
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    }
    assert {re.split(r"[<>=\[; ]", r, maxsplit=1)[0] for r in requires} == {
        "grpcio",
        "protobuf",
        "googleapis-common-protos",
    }
    assert b"kubeupdate-client = kubeupdate.client.cli:run" in entry_points
