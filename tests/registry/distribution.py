"""A real CNCF distribution registry (Debian's ``docker-registry``) as a test process.

:func:`running_registry` writes the registry's config (storage in a temporary
folder, loopback only), picks a free port, starts ``docker-registry serve``,
waits until ``/v2/`` answers, and stops it at the end. Options add htpasswd
Basic auth, TLS with a test CA, or token (Bearer) auth.

When the binary is missing the tests skip with a loud reason, except under CI
(``CI`` set), where a missing registry is a failure: CI installs it
(``scripts/install-test-tools``).
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

BINARY = "docker-registry"
INSTALL_HINT = (
    "the registry tests need Debian's docker-registry (CNCF distribution 2.8): "
    "run scripts/install-test-tools as root, or apt-get install docker-registry"
)


def registry_binary() -> str:
    """The path of ``docker-registry``; skips the test (fails under CI) when absent."""
    path = shutil.which(BINARY) or (BINARY if Path("/usr/bin/" + BINARY).exists() else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"docker-registry is missing on CI: {INSTALL_HINT}")
        pytest.skip(f"SKIPPED LOUDLY: {INSTALL_HINT}")
    return path


@dataclass(frozen=True)
class TokenAuth:
    """The registry's ``auth.token`` settings: who issues tokens and which cert signs them."""

    realm: str
    service: str
    issuer: str
    root_cert_bundle: Path


@dataclass(frozen=True)
class RunningRegistry:
    host: str  # "127.0.0.1:PORT", the registry key of its images
    scheme: str
    ca_file: Path | None
    log_file: Path

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"


def write_htpasswd(path: Path, users: dict[str, str]) -> Path:
    # bcrypt is the only hash the registry accepts; the lowest cost keeps tests fast.
    lines = [
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}"
        for user, password in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def running_registry(
    folder: Path,
    *,
    htpasswd: Path | None = None,
    tls: tuple[Path, Path, Path] | None = None,
    token: TokenAuth | None = None,
) -> Iterator[RunningRegistry]:
    """A registry serving from ``folder``; ``tls`` is (certificate, key, CA) files."""
    binary = registry_binary()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(folder / "storage")},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": "test-secret-not-used-for-anything"},
    }
    if tls is not None:
        config["http"]["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "kubeupdate-tests", "path": str(htpasswd)}}
    if token is not None:
        config["auth"] = {
            "token": {
                "realm": token.realm,
                "service": token.service,
                "issuer": token.issuer,
                "rootcertbundle": str(token.root_cert_bundle),
            }
        }
    config_file = folder / "config.yml"
    config_file.write_text(yaml.safe_dump(config))
    log_file = folder / "registry.log"
    running = RunningRegistry(
        f"127.0.0.1:{port}", "https" if tls else "http", tls[2] if tls else None, log_file
    )
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [binary, "serve", str(config_file)], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_until_ready(process, running)
            yield running
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_ready(process: subprocess.Popen[bytes], running: RunningRegistry) -> None:
    context = ssl.create_default_context(cafile=str(running.ca_file)) if running.ca_file else None
    give_up = time.monotonic() + 20
    while time.monotonic() < give_up:
        if process.poll() is not None:
            log = running.log_file.read_text(errors="replace")
            raise RuntimeError(f"docker-registry exited with {process.returncode}:\n{log}")
        try:
            with urllib.request.urlopen(f"{running.url}/v2/", timeout=2, context=context):  # noqa: S310
                return
        except urllib.error.HTTPError:
            return  # 401: up, and asking for credentials
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not answer on {running.url} within 20 s")
