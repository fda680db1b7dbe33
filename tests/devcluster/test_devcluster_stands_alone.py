"""The devcluster is its own distribution: it imports nothing from kubeupdate.

Its tests judge the controller by the status fields it writes, never through the
service's rules, and the production image can leave it out (tests/kubeupdate/
test_wheel.py checks the service's wheel).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = ROOT / "devcluster"
PACKAGE = DISTRIBUTION / "src" / "devcluster"
# What the devcluster must not import: the service, its gateway, the client's namespace.
FORBIDDEN = {"kubeupdate", "gateway"}


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, at any depth (lazy imports in functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_devcluster_module_imports_kubeupdate() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20
    offenders = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in sources
        for name in imported_modules(path)
        if name.partition(".")[0] in FORBIDDEN
    }
    assert offenders == set()


PROBE = """
import importlib
import pkgutil
import sys

import devcluster

for module in pkgutil.walk_packages(devcluster.__path__, "devcluster."):
    importlib.import_module(module.name)
print(" ".join(sorted({name.partition(".")[0] for name in sys.modules})))
"""


def test_importing_every_devcluster_module_loads_no_kubeupdate() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert FORBIDDEN.isdisjoint(result.stdout.split())


def test_the_distribution_depends_on_no_kubeupdate_distribution() -> None:
    project = tomllib.loads((DISTRIBUTION / "pyproject.toml").read_text())["project"]
    assert project["name"] == "kubeupdate-devcluster"
    assert not any(dep.startswith("kubeupdate") for dep in project["dependencies"])
    assert project["scripts"] == {"devcluster": "devcluster.cli:main"}
