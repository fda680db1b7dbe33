"""serve_all(): the service and the gateway in one process, also over TLS."""

from __future__ import annotations

import http.client
import ipaddress
import json
from pathlib import Path

import pytest
from cryptography import x509
from devcluster.manifests import deployment

from devcluster import DevCluster
from gateway.settings import GatewaySettings
from kubeupdate.auth.config import AuthConfig
from kubeupdate.service import ServerConfig
from tests.certificates import make_cert, pem
from tests.stack import StackThread


def tls_files(directory: Path) -> tuple[Path, Path]:
    pair = pem(make_cert("localhost", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]))
    cert, key = directory / "server.pem", directory / "server.key"
    cert.write_bytes(pair.cert)
    key.write_bytes(pair.key)
    return cert, key


def test_the_gateway_calls_a_tls_service_started_alongside(
    devcluster: DevCluster, tmp_path: Path
) -> None:
    devcluster.create(deployment("web", "default", {"app": "nginx:1.25"}))
    cert, key = tls_files(tmp_path)
    auth = AuthConfig(enabled=False, rate_limit=0, tls_cert=cert, tls_key=key)
    runner = StackThread(
        ServerConfig(port=0, kubeconfig=devcluster.kubeconfig_path, auth=auth),
        GatewaySettings(upstream="", port=0, access_log=False),
    )
    listening = runner.start()
    try:
        assert listening.http_port is not None
        connection = http.client.HTTPConnection("127.0.0.1", listening.http_port, timeout=10)
        connection.request("GET", "/deployment/default/web/app")
        answer = connection.getresponse()
        assert answer.status == 200
        assert json.loads(answer.read())["Image"] == "nginx:1.25"
    finally:
        runner.stop()


def test_a_service_requiring_client_certificates_needs_one_for_the_gateway(
    devcluster: DevCluster, tmp_path: Path
) -> None:
    cert, key = tls_files(tmp_path)
    auth = AuthConfig(tls_cert=cert, tls_key=key, tls_client_ca=cert)
    runner = StackThread(
        ServerConfig(port=0, kubeconfig=devcluster.kubeconfig_path, auth=auth),
        GatewaySettings(upstream="", port=0, access_log=False),
    )
    with pytest.raises(ValueError, match="--upstream-cert"):
        runner.start()
