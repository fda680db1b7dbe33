"""`kubeupdate certs`: the CA and certificates of the gateway-service link, used for real."""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import ipaddress
import itertools
import json
import logging
import shutil
import stat
from pathlib import Path

import grpc
import grpc.aio
import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from devcluster.manifests import deployment
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from devcluster import DevCluster
from gateway.settings import GatewaySettings
from kubeupdate import cli
from kubeupdate.auth import certificates
from kubeupdate.auth.config import Auth, AuthConfig, SecurityConfigError
from kubeupdate.auth.mtls import server_credentials
from kubeupdate.operations import operations
from kubeupdate.protocol.grpc.server import ServiceServer
from kubeupdate.service import ServerConfig
from tests.kubeupdate.kube.memory import InMemoryDeploymentApi
from tests.stack import StackThread

FILES = ("ca.crt", "ca.key", "service.crt", "service.key", "gateway.crt", "gateway.key")


def certs(*argv: str | Path) -> int:
    return cli.main(["certs", *map(str, argv)])


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def contents(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    assert certs("create", "--dir", directory, "--san", "127.0.0.1") == 0
    return directory


def test_create_makes_a_ca_that_signed_a_server_and_a_client_certificate(pki: Path) -> None:
    assert sorted(p.name for p in pki.iterdir()) == sorted(FILES)
    for key in ("ca.key", "service.key", "gateway.key"):
        assert stat.S_IMODE((pki / key).stat().st_mode) == 0o600
    ca, service, gateway = (
        load(pki / "ca.crt"),
        load(pki / "service.crt"),
        load(pki / "gateway.crt"),
    )
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    service.verify_directly_issued_by(ca)
    gateway.verify_directly_issued_by(ca)
    usage = x509.ExtendedKeyUsage
    assert list(service.extensions.get_extension_for_class(usage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    assert list(gateway.extensions.get_extension_for_class(usage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    names = service.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [
        "kubeupdate-service",
        "kubeupdate-service.kubeupdate",
        "kubeupdate-service.kubeupdate.svc",
        "kubeupdate-service.kubeupdate.svc.cluster.local",
    ]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert gateway.subject.rfc4514_string() == "CN=kubeupdate-gateway"


def test_create_refuses_a_directory_that_holds_a_ca(
    pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = contents(pki)
    capsys.readouterr()
    assert certs("create", "--dir", pki) == 2
    assert "already holds a CA" in capsys.readouterr().err
    assert contents(pki) == before


def test_renew_without_a_ca_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert certs("renew", "--dir", tmp_path) == 2
    assert f"kubeupdate certs create --dir {tmp_path}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--namespace", "Kube_Update"], "namespace"),
        (["--san", "not a name"], "--san"),
        (["--san", "a..b"], "--san"),
        (["--days", "0"], "--days"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    assert certs("create", "--dir", tmp_path / "pki", *argv) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "pki").exists()


def test_renew_keeps_the_ca_and_replaces_both_keys(pki: Path) -> None:
    before = contents(pki)
    assert certs("renew", "--dir", pki, "--san", "127.0.0.1") == 0
    after = contents(pki)
    assert after["ca.crt"] == before["ca.crt"]
    assert after["ca.key"] == before["ca.key"]
    for name in ("service.crt", "service.key", "gateway.crt", "gateway.key"):
        assert after[name] != before[name]
    load(pki / "service.crt").verify_directly_issued_by(load(pki / "ca.crt"))


def test_each_secret_holds_its_own_key_and_the_ca_it_trusts(
    pki: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other"
    assert certs("create", "--dir", other) == 0
    capsys.readouterr()
    assert (
        certs("secrets", "--dir", pki, "--namespace", "tools", "--also-trust", other / "ca.crt")
        == 0
    )
    secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all(capsys.readouterr().out)}
    assert sorted(secrets) == ["kubeupdate-gateway-tls", "kubeupdate-service-tls"]
    for side in ("service", "gateway"):
        secret = secrets[f"kubeupdate-{side}-tls"]
        assert secret["type"] == "kubernetes.io/tls"
        assert secret["metadata"]["namespace"] == "tools"
        data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
        assert data["tls.crt"] == (pki / f"{side}.crt").read_bytes()
        assert data["tls.key"] == (pki / f"{side}.key").read_bytes()
        assert data["ca.crt"] == (pki / "ca.crt").read_bytes() + (other / "ca.crt").read_bytes()
        assert (pki / "ca.key").read_bytes() not in data.values()


def test_rest_calls_reach_the_service_through_the_certificates_made_here(
    devcluster: DevCluster, pki: Path
) -> None:
    # The deploy/ arrangement: the service requires a client certificate of this CA and
    # believes the gateway's x-forwarded-for by its certificate's name.
    devcluster.create(deployment("web", "default", {"app": "nginx:1.25"}))
    auth = AuthConfig(
        enabled=False,
        rate_limit=0,
        tls_cert=pki / "service.crt",
        tls_key=pki / "service.key",
        tls_client_ca=pki / "ca.crt",
        trusted_proxy_certs=("kubeupdate-gateway",),
    )
    runner = StackThread(
        ServerConfig(port=0, kubeconfig=devcluster.kubeconfig_path, auth=auth),
        GatewaySettings(upstream="", port=0, access_log=False),
        channel_credentials=gateway_credentials(pki, pki),
    )
    listening = runner.start()
    try:
        assert listening.http_port is not None
        connection = http.client.HTTPConnection("127.0.0.1", listening.http_port, timeout=10)
        connection.request("GET", "/deployment/default/web/app")
        answer = connection.getresponse()
        assert (answer.status, json.loads(answer.read())["Image"]) == (200, "nginx:1.25")
    finally:
        runner.stop()


def gateway_credentials(trusting: Path, holding: Path) -> grpc.ChannelCredentials:
    """What the gateway's Pod has: the CA file of ``trusting``, the key pair of ``holding``."""
    return grpc.ssl_channel_credentials(
        (trusting / "ca.crt").read_bytes(),
        (holding / "gateway.key").read_bytes(),
        (holding / "gateway.crt").read_bytes(),
    )


async def handshake(
    service_trusting: Path, service_holding: Path, gateway: grpc.ChannelCredentials
) -> grpc.StatusCode:
    """One call from a gateway to a service with the given files; OK or why it failed."""
    api = InMemoryDeploymentApi()
    api.add_deployment("default", "web", {"app": "nginx:1.25"})
    server = ServiceServer(
        operations(api),
        port=0,
        server_credentials=server_credentials(
            service_holding / "service.crt",
            service_holding / "service.key",
            service_trusting / "ca.crt",
        ),
    )
    port = await server.start()
    try:
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", gateway) as channel:
            request = pb.GetContainerImageRequest(
                namespace="default", deployment="web", container="app"
            )
            await pb_grpc.DeploymentImageServiceStub(channel).GetContainerImage(request, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    finally:
        await server.stop(None)
    return grpc.StatusCode.OK


async def test_a_service_refuses_a_gateway_without_a_certificate_of_its_ca(pki: Path) -> None:
    only_the_ca = grpc.ssl_channel_credentials((pki / "ca.crt").read_bytes())
    assert await handshake(pki, pki, only_the_ca) == grpc.StatusCode.UNAVAILABLE


async def test_old_and_new_pods_accept_each_other_while_certificates_are_renewed(
    pki: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    shutil.copytree(pki, old)
    assert certs("renew", "--dir", pki, "--san", "127.0.0.1") == 0
    assert await handshake(pki, pki, gateway_credentials(old, old)) == grpc.StatusCode.OK
    assert await handshake(old, old, gateway_credentials(pki, pki)) == grpc.StatusCode.OK


async def test_a_ca_is_replaced_in_three_restarts_without_a_refused_call(
    pki: Path, tmp_path: Path
) -> None:
    # OPERATIONS.md's steps: 1. trust both CAs, keep the old certificates; 2. new
    # certificates, both CAs trusted; 3. trust only the new CA. At each restart Pods of
    # the step before meet Pods of the step after; both must accept each other.
    new = tmp_path / "new"
    assert certs("create", "--dir", new, "--san", "127.0.0.1") == 0
    steps = [
        (pki, pki),  # 0: before: trusts old, holds old
        (both_cas(tmp_path / "1", pki, new), pki),
        (both_cas(tmp_path / "2", new, pki), new),
        (new, new),  # 3: after
    ]
    for before, after in itertools.pairwise(steps):
        for service, gateway in ((before, after), (after, before)):
            assert await handshake(*service, gateway_credentials(*gateway)) == grpc.StatusCode.OK
    # Skipping step 1 would refuse calls: new certificates meet Pods that trust only the old CA.
    assert await handshake(pki, pki, gateway_credentials(new, new)) == grpc.StatusCode.UNAVAILABLE


def both_cas(directory: Path, first: Path, second: Path) -> Path:
    """A directory whose ca.crt is what `certs secrets --also-trust` puts in the Secrets."""
    directory.mkdir()
    (directory / "ca.crt").write_bytes(
        (first / "ca.crt").read_bytes() + (second / "ca.crt").read_bytes()
    )
    return directory


def test_renew_keeps_the_names_the_service_certificate_was_made_with(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    assert certs("create", "--dir", directory, "--namespace", "tools", "--san", "10.0.0.7") == 0
    before = load(directory / "service.crt").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert certs("renew", "--dir", directory, "--san", "kubeupdate.tools.example") == 0
    after = load(directory / "service.crt").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert list(after.value) == [*before.value, x509.DNSName("kubeupdate.tools.example")]
    assert "kubeupdate-service.tools.svc" in after.value.get_values_for_type(x509.DNSName)


def test_the_commands_defaults_are_the_modules() -> None:
    # The parser repeats them so that building it loads no cryptography.
    parser = cli.build_parser()
    create = parser.parse_args(["certs", "create", "--dir", "d"])
    assert (create.namespace, create.days, create.ca_days) == (
        certificates.NAMESPACE,
        certificates.LEAF_DAYS,
        certificates.CA_DAYS,
    )
    assert parser.parse_args(["certs", "renew", "--dir", "d"]).days == certificates.LEAF_DAYS
    assert parser.parse_args(["certs", "secrets", "--dir", "d"]).namespace == certificates.NAMESPACE


def start_service(cert: Path, key: Path) -> None:
    """What the service does with its security flags at start (it stops on an error)."""
    Auth(AuthConfig(enabled=False, tls_cert=cert, tls_key=key))


def test_a_service_whose_certificate_expired_does_not_start(tmp_path: Path) -> None:
    made = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    certificates.create(tmp_path, days=365, now=made)
    with pytest.raises(
        SecurityConfigError, match=r"expired on .* UTC: renew it \(`kubeupdate certs renew`"
    ):
        start_service(tmp_path / "service.crt", tmp_path / "service.key")


def test_a_service_given_another_certificates_key_does_not_start(pki: Path) -> None:
    with pytest.raises(SecurityConfigError, match="--tls-key is not the key of the certificate"):
        start_service(pki / "service.crt", pki / "gateway.key")


def test_a_certificate_near_its_end_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    certificates.create(tmp_path, days=10)
    with caplog.at_level(logging.WARNING, logger="kubeupdate.auth.mtls"):
        server_credentials(tmp_path / "service.crt", tmp_path / "service.key")
    (record,) = caplog.records
    assert "expires in 9 days" in record.getMessage()
    caplog.clear()
    certificates.renew(tmp_path)
    with caplog.at_level(logging.WARNING, logger="kubeupdate.auth.mtls"):
        server_credentials(tmp_path / "service.crt", tmp_path / "service.key")
    assert caplog.records == []
