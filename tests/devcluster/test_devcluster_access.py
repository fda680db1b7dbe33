"""TLS, bearer tokens, kubeconfig and in-cluster credentials, as a real cluster has them."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from devcluster.manifests import deployment
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from devcluster import DevCluster

from .conftest import api_client_for


def get(url: str, token: str | None, ca: Path | None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url)  # noqa: S310
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    try:
        with urllib.request.urlopen(request, context=context) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_kubeconfig_names_the_devcluster_context(devcluster: DevCluster) -> None:
    written = yaml.safe_load(devcluster.kubeconfig_path.read_text())
    assert written["current-context"] == "devcluster"
    cluster = written["clusters"][0]["cluster"]
    assert cluster["server"] == devcluster.url
    assert devcluster.url.startswith("https://127.0.0.1:")
    assert cluster["certificate-authority-data"]
    assert written["users"][0]["user"]["token"] == devcluster.token
    assert devcluster.kubeconfig_path.stat().st_mode & 0o077 == 0


def test_the_ca_verifies_the_serving_certificate(devcluster: DevCluster) -> None:
    status, body = get(f"{devcluster.url}/version", devcluster.token, devcluster.ca_path)
    assert status == 200
    assert body["major"] == "1"


def test_localhost_is_in_the_certificate(devcluster: DevCluster) -> None:
    url = f"https://localhost:{devcluster.port}/version"
    assert get(url, devcluster.token, devcluster.ca_path)[0] == 200


def test_a_missing_token_is_401(devcluster: DevCluster) -> None:
    status, body = get(f"{devcluster.url}/api/v1/namespaces", None, devcluster.ca_path)
    assert status == 401
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }


def test_a_wrong_token_is_401_through_the_client(devcluster: DevCluster, tmp_path: Path) -> None:
    written = yaml.safe_load(devcluster.kubeconfig_path.read_text())
    written["users"][0]["user"]["token"] = "wrong"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(written))
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)  # type: ignore[no-untyped-call]
    with client.ApiClient(configuration) as api, pytest.raises(ApiException) as exc:
        client.AppsV1Api(api).list_namespaced_deployment("default")
    assert exc.value.status == 401
    assert json.loads(exc.value.body or "")["reason"] == "Unauthorized"


def test_rotation_revokes_the_old_token_and_rewrites_the_kubeconfig(
    devcluster: DevCluster,
) -> None:
    old = devcluster.token
    new = devcluster.rotate_token()
    assert new != old
    assert devcluster.token == new
    assert get(f"{devcluster.url}/api", old, devcluster.ca_path)[0] == 401
    assert get(f"{devcluster.url}/api", new, devcluster.ca_path)[0] == 200
    with api_client_for(devcluster) as api:
        core: Any = client.CoreV1Api(api)
        assert core.read_namespace("default").metadata.name == "default"


def test_rotation_can_keep_the_old_token(devcluster: DevCluster) -> None:
    old = devcluster.token
    devcluster.rotate_token(revoke_old=False)
    assert get(f"{devcluster.url}/api", old, devcluster.ca_path)[0] == 200


def test_in_cluster_files_work_with_the_in_cluster_loader(
    devcluster: DevCluster, tmp_path: Path
) -> None:
    devcluster.write_incluster_files(tmp_path)
    assert (tmp_path / "namespace").read_text() == "default"
    loader = config.incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
        token_filename=str(tmp_path / "token"),
        cert_filename=str(tmp_path / "ca.crt"),
        environ=devcluster.incluster_environ,
    )
    configuration = client.Configuration()
    loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
    devcluster.create(deployment("web"))
    with client.ApiClient(configuration) as api:
        apps: Any = client.AppsV1Api(api)
        assert apps.read_namespaced_deployment("web", "default").metadata.name == "web"
    devcluster.rotate_token()
    assert (tmp_path / "token").read_text() == devcluster.token


def test_insecure_http_needs_no_token() -> None:
    with DevCluster(tls=False) as cluster:
        assert cluster.url.startswith("http://")
        assert cluster.token is None
        status, body = get(f"{cluster.url}/api/v1/namespaces/default", None, None)
        assert status == 200
        assert body["metadata"]["name"] == "default"
        written = yaml.safe_load(cluster.kubeconfig_path.read_text())
        assert "certificate-authority-data" not in written["clusters"][0]["cluster"]


def test_stop_removes_the_written_files() -> None:
    cluster = DevCluster().start()
    path = cluster.kubeconfig_path
    assert path.exists()
    cluster.stop()
    assert not path.exists()
