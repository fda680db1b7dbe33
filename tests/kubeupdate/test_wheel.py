"""The production wheel holds the service and the gateway: no emulator, no test double.

The devcluster is a distribution of its own (devcluster/), the in-memory
Kubernetes double lives in tests/, and the generated stubs come from the
client distribution; the container image installs this wheel and the client's.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.wheels import build_wheel

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every file of the built kubeupdate wheel, with the text of the Python ones."""
    wheel = build_wheel(ROOT, tmp_path_factory.mktemp("wheel"))
    assert wheel.name.startswith("kubeupdate-")
    with zipfile.ZipFile(wheel) as archive:
        return {
            name: archive.read(name).decode() if name.endswith(".py") else ""
            for name in archive.namelist()
        }


def test_wheel_holds_the_service_and_the_gateway(wheel_names: dict[str, str]) -> None:
    tops = {name.split("/", 1)[0] for name in wheel_names if not name.endswith(".dist-info")}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"kubeupdate", "gateway"}
    for module in ("kubeupdate/cli.py", "kubeupdate/kube/client.py", "gateway/app.py"):
        assert module in wheel_names
    # A namespace shared with the client distribution, whose wheel brings kubeupdate/v1.
    assert "kubeupdate/__init__.py" not in wheel_names
    assert not any(name.startswith("kubeupdate/v1/") for name in wheel_names)


def test_wheel_holds_no_emulator_and_no_test_double(wheel_names: dict[str, str]) -> None:
    parts = {part for name in wheel_names for part in name.split("/")}
    assert not parts & {"devcluster", "tests", "memory.py", "pytest_plugin.py"}
    doubles = [name for name, text in wheel_names.items() if "class InMemory" in text]
    assert doubles == []
    # Only `kubeupdate devcluster` (cli.py, when run) and `kubeupdate demo` load the emulator.
    importers = [
        name
        for name, text in wheel_names.items()
        if "from devcluster" in text or "import devcluster" in text
    ]
    assert sorted(importers) == ["kubeupdate/cli.py", "kubeupdate/demo.py"]
