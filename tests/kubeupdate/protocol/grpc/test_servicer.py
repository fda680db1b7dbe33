"""The gRPC service on a loopback port, backed by the in-memory Kubernetes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from kubeupdate.client.errors import error_info
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from kubeupdate.kube import errors as kube_errors
from kubeupdate.operations import operations
from kubeupdate.protocol.grpc.server import SERVICE_NAME, ServiceServer
from tests.kubeupdate.kube.memory import InMemoryDeploymentApi


@pytest.fixture
def api() -> InMemoryDeploymentApi:
    api = InMemoryDeploymentApi()
    api.add_deployment("prod", "web", {"app": "acme/web:1.0"}, {"migrate": "acme/migrate:1.0"})
    return api


@pytest.fixture
async def channel(api: InMemoryDeploymentApi) -> AsyncIterator[grpc.aio.Channel]:
    server = ServiceServer(operations(api, backoff=0), host="127.0.0.1", port=0)
    port = await server.start()
    assert server.port == port != 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop(None)


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.DeploymentImageServiceAsyncStub:
    return pb_grpc.DeploymentImageServiceStub(channel)


async def test_get(stub: pb_grpc.DeploymentImageServiceAsyncStub) -> None:
    answer = await stub.GetContainerImage(
        pb.GetContainerImageRequest(namespace="prod", deployment="web", container="app")
    )
    assert answer == pb.GetContainerImageResponse(
        namespace="prod", deployment="web", container="app", image="acme/web:1.0"
    )


async def test_set_then_set_again(stub: pb_grpc.DeploymentImageServiceAsyncStub) -> None:
    request = pb.SetContainerImageRequest(
        namespace="prod", deployment="web", container="app", image="acme/web:2.0"
    )
    first = await stub.SetContainerImage(request, timeout=10)
    assert (first.image, first.previous_image, first.changed, first.generation) == (
        "acme/web:2.0",
        "acme/web:1.0",
        True,
        2,
    )
    again = await stub.SetContainerImage(request, timeout=10)
    assert (again.previous_image, again.changed, again.generation) == ("acme/web:2.0", False, 2)


async def test_list(stub: pb_grpc.DeploymentImageServiceAsyncStub) -> None:
    answer = await stub.ListContainerImages(
        pb.ListContainerImagesRequest(namespace="prod", deployment="web")
    )
    assert list(answer.containers) == [
        pb.ContainerImage(name="migrate", image="acme/migrate:1.0", init_container=True),
        pb.ContainerImage(name="app", image="acme/web:1.0"),
    ]


async def test_not_found_and_invalid(stub: pb_grpc.DeploymentImageServiceAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetContainerImage(
            pb.GetContainerImageRequest(namespace="prod", deployment="web", container="db")
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == (
        'container "db" not found in deployment prod/web; '
        "it has containers: app; init containers: migrate"
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SetContainerImage(
            pb.SetContainerImageRequest(
                namespace="prod", deployment="web", container="app", image="no spaces"
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def reason_of(error: grpc.aio.AioRpcError) -> tuple[str, dict[str, str]]:
    return error_info(error.trailing_metadata() or ())


Get = pb.GetContainerImageRequest
Set = pb.SetContainerImageRequest
List = pb.ListContainerImagesRequest


@pytest.mark.parametrize(
    ("rpc", "request_", "failure", "code", "reason", "metadata"),
    [
        (
            "GetContainerImage",
            Get(namespace="prod", deployment="web", container="db"),
            None,
            grpc.StatusCode.NOT_FOUND,
            "CONTAINER_NOT_FOUND",
            {"namespace": "prod", "deployment": "web", "container": "db"},
        ),
        (
            "GetContainerImage",
            Get(namespace="prod", deployment="api", container="app"),
            None,
            grpc.StatusCode.NOT_FOUND,
            "DEPLOYMENT_NOT_FOUND",
            {"namespace": "prod", "deployment": "api"},
        ),
        (
            "ListContainerImages",
            List(namespace="test", deployment="web"),
            None,
            grpc.StatusCode.NOT_FOUND,
            "NAMESPACE_NOT_FOUND",
            {"namespace": "test"},
        ),
        (
            "GetContainerImage",
            Get(namespace="Prod", deployment="web", container="app"),
            None,
            grpc.StatusCode.INVALID_ARGUMENT,
            "NAME_INVALID",
            {"field": "namespace"},
        ),
        (
            "SetContainerImage",
            Set(namespace="prod", deployment="web", container="app", image="no spaces"),
            None,
            grpc.StatusCode.INVALID_ARGUMENT,
            "IMAGE_INVALID",
            {},
        ),
        (
            "SetContainerImage",
            Set(
                namespace="prod",
                deployment="web",
                container="app",
                image="a:2",
                rollback_on_failure=True,
            ),
            None,
            grpc.StatusCode.INVALID_ARGUMENT,
            "OPTIONS_INVALID",
            {},
        ),
        (
            "SetContainerImage",
            Set(namespace="prod", deployment="web", container="app", image="a:2", wait=True),
            None,
            grpc.StatusCode.UNAVAILABLE,
            "WATCH_UNAVAILABLE",
            # The change was made before the wait failed: the details say so.
            {"changed": "true", "image": "a:2", "previousImage": "acme/web:1.0"},
        ),
        (
            "ListContainerImages",
            List(namespace="prod", deployment="web"),
            kube_errors.Forbidden(403, method="GET", path="/", message="no"),
            grpc.StatusCode.PERMISSION_DENIED,
            "KUBERNETES_PERMISSION_MISSING",
            {"verb": "get", "resource": "deployments.apps", "namespace": "prod"},
        ),
        (
            "ListContainerImages",
            List(namespace="prod", deployment="web"),
            kube_errors.ServerError(503, method="GET", path="/", message="etcd"),
            grpc.StatusCode.UNAVAILABLE,
            "KUBERNETES_UNAVAILABLE",
            {},
        ),
        (
            "ListContainerImages",
            List(namespace="prod", deployment="web"),
            kube_errors.Timeout("slow"),
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "KUBERNETES_TIMEOUT",
            {},
        ),
        (
            "ListContainerImages",
            List(namespace="prod", deployment="web"),
            kube_errors.UnexpectedStatus(400, method="GET", path="/"),
            grpc.StatusCode.INTERNAL,
            "INTERNAL",
            {},
        ),
    ],
)
async def test_every_error_carries_its_reason(
    stub: pb_grpc.DeploymentImageServiceAsyncStub,
    api: InMemoryDeploymentApi,
    rpc: str,
    request_: Any,
    failure: kube_errors.KubeError | None,
    code: grpc.StatusCode,
    reason: str,
    metadata: dict[str, str],
) -> None:
    if failure is not None:
        api.fail_next("get_deployment", failure)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await getattr(stub, rpc)(request_)
    assert info.value.code() == code
    assert reason_of(info.value) == (reason, metadata)


async def test_retry_after_reaches_the_caller(
    stub: pb_grpc.DeploymentImageServiceAsyncStub, api: InMemoryDeploymentApi
) -> None:
    api.fail_next(
        "get_deployment", kube_errors.TooManyRequests(429, retry_after=5, method="GET", path="/")
    )
    call = stub.ListContainerImages(
        pb.ListContainerImagesRequest(namespace="prod", deployment="web")
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ("retry-after", "5") in tuple(info.value.trailing_metadata() or ())
    assert reason_of(info.value) == ("KUBERNETES_OVERLOADED", {"retryAfterSeconds": "5"})


async def test_unexpected_error_is_internal_with_the_request_id(
    stub: pb_grpc.DeploymentImageServiceAsyncStub, api: InMemoryDeploymentApi
) -> None:
    api.fail_next(
        "get_deployment",
        kube_errors.UnexpectedStatus(400, method="GET", path="/", message="token=hunter2"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetContainerImage(
            pb.GetContainerImageRequest(namespace="prod", deployment="web", container="app"),
            metadata=(("x-request-id", "req-7"),),
        )
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == "internal error (request id req-7)"


async def test_each_call_carries_its_own_request_id(
    stub: pb_grpc.DeploymentImageServiceAsyncStub, api: InMemoryDeploymentApi
) -> None:
    # The interceptors wrap a method's handler once; the id must still be per call.
    for rid in ("req-a", "req-b", "req-c"):
        api.fail_next("get_deployment", kube_errors.UnexpectedStatus(400, method="GET", path="/"))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetContainerImage(
                pb.GetContainerImageRequest(namespace="prod", deployment="web", container="app"),
                metadata=(("x-request-id", rid),),
            )
        assert info.value.details() == f"internal error (request id {rid})"


async def test_health_is_serving(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE_NAME):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_service(channel: grpc.aio.Channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for answer in reflection.ServerReflectionInfo(iter([request])):
        names = {s.name for s in answer.list_services_response.service}
        assert SERVICE_NAME in names
        assert "grpc.health.v1.Health" in names
        break
    else:
        pytest.fail("no reflection answer")


class DenyEverything(grpc.aio.ServerInterceptor):
    """Stands for an authentication interceptor that aborts the call itself."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        async def deny(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "who are you?")

        return grpc.unary_unary_rpc_method_handler(deny)


async def test_a_status_chosen_by_an_inner_interceptor_is_kept(
    api: InMemoryDeploymentApi, caplog: pytest.LogCaptureFixture
) -> None:
    server = ServiceServer(operations(api), port=0, interceptors=[DenyEverything()])
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.DeploymentImageServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ListContainerImages(
                    pb.ListContainerImagesRequest(namespace="prod", deployment="web")
                )
        assert (info.value.code(), info.value.details()) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "who are you?",
        )
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await server.stop(None)
