"""TLS on the gRPC port and client certificates as identities (certificates made here)."""

from __future__ import annotations

import io
import ipaddress
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import pytest
import yaml
from cryptography import x509
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from kubeupdate.auth.audit import AuditLog
from kubeupdate.auth.authenticator import Authenticator
from kubeupdate.auth.interceptor import AuthInterceptor
from kubeupdate.auth.mtls import server_credentials
from kubeupdate.auth.policy import parse_policy
from kubeupdate.operations import operations
from kubeupdate.protocol.grpc.server import ServiceServer
from tests.certificates import Pem, make_cert, pem
from tests.kubeupdate.kube.memory import InMemoryDeploymentApi


@dataclass
class Pki:
    ca: Pem
    server: Pem
    client: Pem
    stranger: Pem
    directory: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = make_cert("kubeupdate test CA", [])
    server = make_cert("localhost", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))], ca)
    client = make_cert(
        "deployer",
        [
            x509.DNSName("deployer.acme.internal"),
            x509.UniformResourceIdentifier("spiffe://acme/ci"),
        ],
        ca,
    )
    other_ca = make_cert("someone else", [])
    stranger = make_cert("deployer", [x509.DNSName("deployer.acme.internal")], other_ca)
    directory = tmp_path_factory.mktemp("pki")
    result = Pki(pem(ca), pem(server), pem(client), pem(stranger), directory)
    (directory / "ca.pem").write_bytes(result.ca.cert)
    (directory / "server.pem").write_bytes(result.server.cert)
    (directory / "server.key").write_bytes(result.server.key)
    return result


POLICY = """
rules:
  - subjects: [{cert: spiffe://acme/ci}]
    targets: [{namespace: default}]
    access: [read]
"""


@pytest.fixture
async def port(pki: Pki) -> AsyncIterator[tuple[int, io.StringIO]]:
    api = InMemoryDeploymentApi()
    api.add_deployment("default", "web", {"app": "nginx:1.25"})
    api.add_deployment("prod", "web", {"app": "nginx:1.25"})
    audit = io.StringIO()
    interceptor = AuthInterceptor(
        authenticator=Authenticator(mtls=True),
        policy=parse_policy(yaml.safe_load(POLICY)),
        audit=AuditLog.to_stream(audit),
    )
    credentials = server_credentials(
        pki.directory / "server.pem", pki.directory / "server.key", pki.directory / "ca.pem"
    )
    server = ServiceServer(
        operations(api), port=0, interceptors=[interceptor], server_credentials=credentials
    )
    yield await server.start(), audit
    await server.stop(None)


async def get(port: int, credentials: grpc.ChannelCredentials, namespace: str) -> grpc.StatusCode:
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        stub = pb_grpc.DeploymentImageServiceStub(channel)
        try:
            await stub.GetContainerImage(
                pb.GetContainerImageRequest(namespace=namespace, deployment="web", container="app"),
                timeout=10,
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


async def test_a_client_certificate_identifies_the_caller(
    pki: Pki, port: tuple[int, io.StringIO]
) -> None:
    credentials = grpc.ssl_channel_credentials(pki.ca.cert, pki.client.key, pki.client.cert)
    assert await get(port[0], credentials, "default") == grpc.StatusCode.OK
    assert await get(port[0], credentials, "prod") == grpc.StatusCode.PERMISSION_DENIED
    first = json.loads(port[1].getvalue().splitlines()[0])
    assert first["identity"]["method"] == "mtls"
    assert first["identity"]["name"] == "cert:deployer"
    assert "spiffe://acme/ci" in first["identity"]["sans"]


async def test_tls_without_a_client_certificate_fails_the_handshake(
    pki: Pki, port: tuple[int, io.StringIO]
) -> None:
    credentials = grpc.ssl_channel_credentials(pki.ca.cert)
    assert await get(port[0], credentials, "default") == grpc.StatusCode.UNAVAILABLE
    assert port[1].getvalue() == ""  # the call never reached the service


async def test_a_certificate_of_another_ca_is_refused(
    pki: Pki, port: tuple[int, io.StringIO]
) -> None:
    credentials = grpc.ssl_channel_credentials(pki.ca.cert, pki.stranger.key, pki.stranger.cert)
    assert await get(port[0], credentials, "default") == grpc.StatusCode.UNAVAILABLE
    assert port[1].getvalue() == ""


async def test_an_authorization_header_wins_over_the_certificate(
    pki: Pki, port: tuple[int, io.StringIO]
) -> None:
    # The certificate alone may read default; a (bad) token sent with it is what counts.
    credentials = grpc.ssl_channel_credentials(pki.ca.cert, pki.client.key, pki.client.cert)
    async with grpc.aio.secure_channel(f"127.0.0.1:{port[0]}", credentials) as channel:
        stub = pb_grpc.DeploymentImageServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetContainerImage(
                pb.GetContainerImageRequest(namespace="default", deployment="web", container="app"),
                metadata=(("authorization", "Bearer kut_x_" + "0" * 64),),
                timeout=10,
            )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
