"""sigstore-js's CLI (``@sigstore/cli`` from npm), the real signing tool of these tests.

``sigstore attest`` signs an in-toto statement about an image digest with a
short-lived certificate from a Fulcio (here :mod:`tests.registry.fulcio`) and
writes a sigstore bundle; ``sigstore attach`` pushes the bundle to the
registry as an OCI artifact whose subject is the image (falling back to the
referrers tag ``sha256-<hex>`` on a registry without the referrers API, like
distribution 2.8). The tool is installed by ``scripts/install-test-tools``
from ``tests/registry/sigstore-js/package-lock.json`` (pinned versions).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

TOOL_DIR = Path(__file__).parent / "sigstore-js"
CLI = TOOL_DIR / "node_modules" / "@sigstore" / "cli" / "bin" / "run"
INSTALL_HINT = "run scripts/install-test-tools (npm ci in tests/registry/sigstore-js)"


def sigstore_command() -> list[str]:
    """How to run the CLI; skips (fails under CI) when node or the package is missing."""
    node = shutil.which("node")
    if node is None or not CLI.exists():
        missing = "node" if node is None else "@sigstore/cli"
        if os.environ.get("CI"):
            pytest.fail(f"{missing} is missing on CI: {INSTALL_HINT}")
        pytest.skip(f"SKIPPED LOUDLY: {missing} is missing: {INSTALL_HINT}")
    return [node, str(CLI)]


def attest(folder: Path, subject: str, digest: str, *, fulcio_url: str, token: str) -> Path:
    """Sign an in-toto statement naming ``digest`` with a Fulcio certificate; the bundle file."""
    algorithm, _, hex_value = digest.partition(":")
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": subject, "digest": {algorithm: hex_value}}],
        "predicateType": "https://kubeupdate.test/release/v1",
        "predicate": {"tested": True},
    }
    statement_file = folder / "statement.json"
    statement_file.write_text(json.dumps(statement))
    bundle = folder / "bundle.json"
    _run(
        "attest", str(statement_file), "--fulcio-url", fulcio_url, "--no-tlog-upload",
        "--output-file", str(bundle),
        env={"SIGSTORE_ID_TOKEN": token},
    )  # fmt: skip
    return bundle


def attach(bundle: Path, image: str, user: str, password: str) -> None:
    """Push the bundle to the registry, attached to ``image`` (``host/repo@sha256:...``)."""
    _run("attach", "--attestation", str(bundle), "-u", user, "-p", password, image)


def _run(*arguments: str, env: dict[str, str] | None = None) -> None:
    # CI=true: sigstore-js takes the identity token from SIGSTORE_ID_TOKEN instead
    # of opening a browser for an interactive OAuth flow.
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "CI": "true",
    }
    done = subprocess.run(
        [*sigstore_command(), *arguments],
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"sigstore {arguments[0]} failed:\n{done.stdout}\n{done.stderr}")
