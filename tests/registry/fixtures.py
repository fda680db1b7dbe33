"""Real registries for the tests, one of each kind per test session (a pytest plugin).

- ``registry``: anonymous, plain HTTP on loopback.
- ``basic_registry``: htpasswd Basic auth behind TLS signed by a test CA.
- ``token_registry``: Bearer tokens from a test token service (user ``ci``
  may pull everything; anonymous callers only ``public/app``).

Each test pushes to repositories of its own (``repository`` fixture), so the
session-wide registries never leak state between tests.
"""

from __future__ import annotations

import base64
import ipaddress
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography import x509

from kubeupdate.registry.client import RegistryClient
from kubeupdate.registry.credentials import Credential, RegistryCredentials
from kubeupdate.registry.hosts import HostSettings, RegistryHosts
from tests.certificates import make_cert, pem
from tests.registry.distribution import (
    RunningRegistry,
    running_registry,
    write_htpasswd,
)
from tests.registry.publisher import Publisher
from tests.registry.token_service import TokenService, running_token_service

USER, PASSWORD = "ci", "correct horse battery staple"
REFRESH_TOKEN = "refresh-token-of-ci"


@dataclass
class LiveRegistry:
    running: RunningRegistry
    publisher: Publisher
    tokens: TokenService | None = None

    @property
    def host(self) -> str:
        return self.running.host

    def hosts(self) -> RegistryHosts:
        if self.running.scheme == "http":
            return RegistryHosts({self.host: HostSettings(plain_http=True)})
        return RegistryHosts({self.host: HostSettings(ca_file=self.running.ca_file)})

    def credentials(self, user: str = USER, password: str = PASSWORD) -> RegistryCredentials:
        return RegistryCredentials({self.host: Credential(user, password)})

    def client(
        self, credentials: RegistryCredentials | None = None, **options: object
    ) -> RegistryClient:
        table = credentials or RegistryCredentials()
        return RegistryClient(credentials=lambda: table, hosts=self.hosts(), **options)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegistry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield LiveRegistry(running, Publisher(running))


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegistry]:
    folder = tmp_path_factory.mktemp("basic-registry")
    ca = make_cert("kubeupdate test registry CA", [])
    server = pem(
        make_cert("registry", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))], issuer=ca)
    )
    (folder / "server.pem").write_bytes(server.cert)
    (folder / "server.key").write_bytes(server.key)
    (folder / "ca.pem").write_bytes(pem(ca).cert)
    htpasswd = write_htpasswd(folder / "htpasswd", {USER: PASSWORD})
    tls = (folder / "server.pem", folder / "server.key", folder / "ca.pem")
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    with running_registry(folder / "data", htpasswd=htpasswd, tls=tls) as running:
        yield LiveRegistry(running, Publisher(running, lambda repository: basic))


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegistry]:
    folder = tmp_path_factory.mktemp("token-registry")
    tokens = TokenService(
        users={USER: PASSWORD},
        grants={USER: {"*"}, "": {"public/app"}},
        refresh_tokens={REFRESH_TOKEN: USER},
    )
    with running_token_service(tokens):
        auth = tokens.registry_auth(folder / "token-signer.pem")
        with running_registry(folder / "data", token=auth) as running:

            def push_token(repository: str) -> str:
                return "Bearer " + tokens.mint(USER, repository, ["pull", "push"])

            yield LiveRegistry(running, Publisher(running, push_token), tokens)


@pytest.fixture
def repository() -> str:
    """A repository name no other test uses."""
    return f"tests/{uuid.uuid4().hex[:12]}"
