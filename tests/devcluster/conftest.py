"""Clients for the devcluster tests: the real kubernetes package, configured from the kubeconfig."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

from devcluster import DevCluster


def api_client_for(cluster: DevCluster) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kubeconfig_path), client_configuration=configuration
    )
    return client.ApiClient(configuration)


@pytest.fixture
def api_client(devcluster: DevCluster) -> Iterator[client.ApiClient]:
    with api_client_for(devcluster) as api:
        yield api


# The APIs are handed out as Any: kubernetes 37 types every model field as Optional,
# and the tests check presence by asserting on values anyway.
@pytest.fixture
def apps(api_client: client.ApiClient) -> Any:
    return client.AppsV1Api(api_client)


@pytest.fixture
def core(api_client: client.ApiClient) -> Any:
    return client.CoreV1Api(api_client)
