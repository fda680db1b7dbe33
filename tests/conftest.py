"""Fixtures shared by every test folder.

``devcluster`` (a fresh Kubernetes API emulator per test) comes from the
devcluster's pytest plugin; ``stack`` adds the gRPC service and the REST
gateway in front of it, seeded with the demo's sample Deployments.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from devcluster import DevCluster
from kubeupdate.auth.config import AuthConfig
from kubeupdate.demo import write_demo_security
from tests.stack import Stack, running_stack

# The real registries (tests/registry/fixtures.py) serve the registry tests and the
# whole-stack registry checks (tests/contract/test_registry_checks.py) alike.
pytest_plugins = ["devcluster.pytest_plugin", "tests.registry.fixtures"]


@pytest.fixture
def stack(devcluster: DevCluster) -> Iterator[Stack]:
    """The stack without authentication (the contract tests are about the API)."""
    with running_stack(devcluster, AuthConfig(enabled=False, rate_limit=0)) as running:
        yield running


@dataclass
class SecuredStack:
    stack: Stack
    secret: str
    audit_log: Path

    def audit_lines(self) -> list[dict[str, Any]]:
        text = self.audit_log.read_text(encoding="utf-8") if self.audit_log.exists() else ""
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def secured_stack(devcluster: DevCluster, tmp_path: Path) -> Iterator[SecuredStack]:
    """The stack with the demo's token and policy, auditing to a file."""
    secret, auth = write_demo_security(tmp_path)
    audit_log = tmp_path / "audit.jsonl"
    auth = replace(auth, audit_log=str(audit_log), rate_limit=0)
    with running_stack(devcluster, auth) as running:
        yield SecuredStack(running, secret, audit_log)


@pytest.fixture
def channel(stack: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(stack.grpc_target) as channel:
        yield channel
