"""The gRPC service against the devcluster emulator, over HTTPS, end to end.

The service runs on a loopback port with real credentials (a kubeconfig or
in-cluster files) and a real ``grpc.aio`` channel; the journal of the
devcluster shows what reached "Kubernetes".
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
import pytest
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from devcluster import DevCluster, faults
from kubeupdate.kube.client import KubeClient
from kubeupdate.kube.credentials import Credentials
from kubeupdate.operations import operations
from kubeupdate.protocol.grpc.server import ServiceServer

if TYPE_CHECKING:
    # Only the stubs know the asyncio flavour of the generated stub class.
    Stub = pb_grpc.DeploymentImageServiceAsyncStub

_namespaces = itertools.count()


@asynccontextmanager
async def running_service(credentials: Credentials) -> AsyncIterator[Stub]:
    async with KubeClient(credentials, timeout=10) as client:
        domain = operations(client, client)
        server = ServiceServer(domain, host="127.0.0.1", port=0)
        port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield pb_grpc.DeploymentImageServiceStub(channel)
        finally:
            await server.stop(None)
            await domain.close()


def deployment(
    namespace: str, name: str, containers: dict[str, str], init: dict[str, str] | None = None
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "containers": [{"name": n, "image": i} for n, i in containers.items()]
    }
    if init:
        pod_spec["initContainers"] = [{"name": n, "image": i} for n, i in init.items()]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def new_namespace(cluster: DevCluster) -> str:
    # The devcluster is shared by the module: each test works in its own namespace.
    name = f"t{next(_namespaces)}"
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def image_of(cluster: DevCluster, namespace: str, name: str, container: str) -> str:
    obj = cluster.get("deployments", namespace, name)
    assert obj is not None
    pod_spec = obj["spec"]["template"]["spec"]
    for entry in pod_spec["containers"] + pod_spec.get("initContainers", []):
        if entry["name"] == container:
            return str(entry["image"])
    raise KeyError(container)


def patches(cluster: DevCluster, namespace: str) -> list[Any]:
    return [
        e for e in cluster.journal if e.method == "PATCH" and f"/namespaces/{namespace}/" in e.path
    ]


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[DevCluster]:
    with DevCluster() as cluster:
        yield cluster


@pytest.fixture
def cluster(shared_cluster: DevCluster) -> Iterator[DevCluster]:
    shared_cluster.faults.clear()
    yield shared_cluster
    shared_cluster.faults.clear()


@pytest.fixture
async def stub(cluster: DevCluster) -> AsyncIterator[Stub]:
    async with running_service(Credentials.from_kubeconfig(cluster.kubeconfig_path)) as stub:
        yield stub


async def test_get_set_list_via_kubeconfig(cluster: DevCluster, stub: Stub) -> None:
    ns = new_namespace(cluster)
    cluster.create(
        deployment(
            ns, "web", {"app": "acme/web:1.0", "sidecar": "envoy:1.30"}, {"migrate": "acme/m:1"}
        )
    )

    got = await stub.GetContainerImage(
        pb.GetContainerImageRequest(namespace=ns, deployment="web", container="sidecar")
    )
    assert got.image == "envoy:1.30"

    request = pb.SetContainerImageRequest(
        namespace=ns, deployment="web", container="sidecar", image="envoy:1.31"
    )
    changed = await stub.SetContainerImage(request, timeout=10)
    assert (changed.previous_image, changed.image, changed.changed) == (
        "envoy:1.30",
        "envoy:1.31",
        True,
    )
    stored = cluster.get("deployments", ns, "web")
    assert stored is not None
    assert changed.generation == stored["metadata"]["generation"]
    assert image_of(cluster, ns, "web", "sidecar") == "envoy:1.31"
    assert image_of(cluster, ns, "web", "app") == "acme/web:1.0"
    [patch] = patches(cluster, ns)
    assert patch.content_type.startswith("application/json-patch+json")
    operations = json.loads(patch.body)
    assert operations[:3] == [
        {"op": "test", "path": "/spec/template/spec/containers/1/name", "value": "sidecar"},
        {"op": "test", "path": "/spec/template/spec/containers/1/image", "value": "envoy:1.30"},
        {"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "envoy:1.31"},
    ]
    # The same patch records the change (tests/kubeupdate/rollouts/test_rollouts.py looks closer).
    assert operations[-1]["path"].startswith("/metadata/annotations")
    record = json.loads(stored["metadata"]["annotations"]["kubeupdate.dev/change"])
    assert (record["container"], record["previous_image"], record["image"]) == (
        "sidecar",
        "envoy:1.30",
        "envoy:1.31",
    )

    again = await stub.SetContainerImage(request, timeout=10)
    assert (again.changed, again.generation) == (False, changed.generation)
    assert len(patches(cluster, ns)) == 1  # nothing written, no new rollout

    listed = await stub.ListContainerImages(
        pb.ListContainerImagesRequest(namespace=ns, deployment="web")
    )
    assert [(c.name, c.image, c.init_container) for c in listed.containers] == [
        ("migrate", "acme/m:1", True),
        ("app", "acme/web:1.0", False),
        ("sidecar", "envoy:1.31", False),
    ]
    assert not any(e.method == "PUT" for e in cluster.journal)


async def test_kubeconfig_token_rotation(cluster: DevCluster) -> None:
    ns = new_namespace(cluster)
    cluster.create(deployment(ns, "web", {"app": "acme/web:1.0"}))
    async with running_service(Credentials.from_kubeconfig(cluster.kubeconfig_path)) as stub:
        request = pb.GetContainerImageRequest(namespace=ns, deployment="web", container="app")
        assert (await stub.GetContainerImage(request)).image == "acme/web:1.0"
        cluster.rotate_token(revoke_old=True)
        assert (await stub.GetContainerImage(request)).image == "acme/web:1.0"


async def test_in_cluster_files_and_token_rotation(cluster: DevCluster, tmp_path: Path) -> None:
    ns = new_namespace(cluster)
    cluster.create(deployment(ns, "web", {"app": "acme/web:1.0"}))
    cluster.write_incluster_files(tmp_path)
    credentials = Credentials.in_cluster(tmp_path, environ=cluster.incluster_environ)
    async with running_service(credentials) as stub:
        request = pb.GetContainerImageRequest(namespace=ns, deployment="web", container="app")
        assert (await stub.GetContainerImage(request)).image == "acme/web:1.0"
        # Like the kubelet, the devcluster rewrites the token file; the old token is revoked.
        cluster.rotate_token(revoke_old=True)
        assert (await stub.GetContainerImage(request)).image == "acme/web:1.0"
        set_request = pb.SetContainerImageRequest(
            namespace=ns, deployment="web", container="app", image="acme/web:2.0"
        )
        assert (await stub.SetContainerImage(set_request, timeout=10)).changed
    assert image_of(cluster, ns, "web", "app") == "acme/web:2.0"


@pytest.mark.parametrize(
    ("namespace", "deployment_name", "container", "message"),
    [
        ("absent", "web", "app", 'namespace "absent" not found'),
        (None, "nope", "app", 'deployment "nope" not found in namespace "{ns}"'),
        (
            None,
            "web",
            "db",
            'container "db" not found in deployment {ns}/web; it has containers: app',
        ),
    ],
)
async def test_not_found_per_level(
    cluster: DevCluster,
    stub: Stub,
    namespace: str | None,
    deployment_name: str,
    container: str,
    message: str,
) -> None:
    ns = new_namespace(cluster)
    cluster.create(deployment(ns, "web", {"app": "acme/web:1.0"}))
    target = namespace or ns
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetContainerImage(
            pb.GetContainerImageRequest(
                namespace=target, deployment=deployment_name, container=container
            )
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == message.format(ns=ns)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SetContainerImage(
            pb.SetContainerImageRequest(
                namespace=target, deployment=deployment_name, container=container, image="a:1"
            )
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert patches(cluster, ns) == []


async def test_forbidden_patch_names_the_permission(cluster: DevCluster, stub: Stub) -> None:
    ns = new_namespace(cluster)
    cluster.create(deployment(ns, "web", {"app": "acme/web:1.0"}))
    cluster.faults.add(
        method="PATCH",
        path=f"/apis/apps/v1/namespaces/{ns}/deployments/*",
        action=faults.forbidden(),
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SetContainerImage(
            pb.SetContainerImageRequest(
                namespace=ns, deployment="web", container="app", image="acme/web:2.0"
            )
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert f'may not patch deployments.apps in namespace "{ns}"' in str(info.value.details())
    assert image_of(cluster, ns, "web", "app") == "acme/web:1.0"


async def test_429_beyond_the_deadline_is_unavailable_with_retry_after(
    cluster: DevCluster, stub: Stub
) -> None:
    ns = new_namespace(cluster)
    cluster.create(deployment(ns, "web", {"app": "acme/web:1.0"}))
    cluster.faults.add(
        method="GET",
        path=f"/apis/apps/v1/namespaces/{ns}/*",
        action=faults.too_many_requests(retry_after=30),
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListContainerImages(
            pb.ListContainerImagesRequest(namespace=ns, deployment="web"), timeout=5
        )
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ("retry-after", "30") in tuple(info.value.trailing_metadata() or ())


async def test_read_is_retried_after_5xx(cluster: DevCluster, stub: Stub) -> None:
    ns = new_namespace(cluster)
    cluster.create(deployment(ns, "web", {"app": "acme/web:1.0"}))
    cluster.faults.add(
        method="GET", path=f"/apis/apps/v1/namespaces/{ns}/*", action=faults.unavailable()
    )
    got = await stub.GetContainerImage(
        pb.GetContainerImageRequest(namespace=ns, deployment="web", container="app")
    )
    assert got.image == "acme/web:1.0"


async def test_dropped_patch_is_checked_and_sent_again(cluster: DevCluster, stub: Stub) -> None:
    ns = new_namespace(cluster)
    cluster.create(deployment(ns, "web", {"app": "acme/web:1.0"}))
    cluster.faults.add(
        method="PATCH", path=f"/apis/apps/v1/namespaces/{ns}/*", action=faults.drop_connection()
    )
    answer = await stub.SetContainerImage(
        pb.SetContainerImageRequest(
            namespace=ns, deployment="web", container="app", image="acme/web:2.0"
        ),
        timeout=10,
    )
    assert (answer.changed, answer.previous_image) == (True, "acme/web:1.0")
    assert image_of(cluster, ns, "web", "app") == "acme/web:2.0"
    assert len(patches(cluster, ns)) == 2


async def test_concurrent_sets_of_different_containers_all_land(
    cluster: DevCluster, stub: Stub
) -> None:
    ns = new_namespace(cluster)
    names = [f"c{i}" for i in range(50)]
    cluster.create(deployment(ns, "wide", {n: f"acme/{n}:1" for n in names}))
    answers = await asyncio.gather(
        *(
            stub.SetContainerImage(
                pb.SetContainerImageRequest(
                    namespace=ns, deployment="wide", container=n, image=f"acme/{n}:2"
                ),
                timeout=30,
            )
            for n in names
        )
    )
    assert all(a.changed and a.previous_image == f"acme/{a.container}:1" for a in answers)
    assert {n: image_of(cluster, ns, "wide", n) for n in names} == {n: f"acme/{n}:2" for n in names}


async def test_concurrent_sets_of_one_container(cluster: DevCluster, stub: Stub) -> None:
    ns = new_namespace(cluster)
    cluster.create(deployment(ns, "web", {"app": "acme/web:0"}))
    images = [f"acme/web:{i}" for i in range(1, 21)]
    results = await asyncio.gather(
        *(
            stub.SetContainerImage(
                pb.SetContainerImageRequest(
                    namespace=ns, deployment="web", container="app", image=image
                ),
                timeout=30,
            )
            for image in images
        ),
        return_exceptions=True,
    )
    succeeded = [r for r in results if isinstance(r, pb.SetContainerImageResponse)]
    failed = [r for r in results if not isinstance(r, pb.SetContainerImageResponse)]
    assert succeeded
    assert all(
        isinstance(r, grpc.aio.AioRpcError) and r.code() == grpc.StatusCode.ABORTED for r in failed
    )
    assert image_of(cluster, ns, "web", "app") in {r.image for r in succeeded}
    # A compare-and-swap chain: no two writers saw the same previous image.
    previous = [r.previous_image for r in succeeded]
    assert len(set(previous)) == len(previous)
