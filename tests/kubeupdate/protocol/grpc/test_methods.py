"""Read or write: the proto says it once, for every RPC, and the REST routes agree."""

from __future__ import annotations

import io

import grpc
import grpc.aio
import pytest
from google.api import annotations_pb2
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2
from kubeupdate.v1 import deployment_image_service_pb2 as pb

from kubeupdate.auth.audit import AuditLog
from kubeupdate.auth.interceptor import AuthInterceptor
from kubeupdate.protocol.grpc.methods import access_of

METHODS = [m for service in pb.DESCRIPTOR.services_by_name.values() for m in service.methods]


def full_name(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def test_every_rpc_states_whether_it_reads_or_writes() -> None:
    assert METHODS
    unstated = [m.full_name for m in METHODS if access_of(full_name(m)) is None]
    assert unstated == [], "give each one an idempotency_level in the proto"


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
def test_reads_are_gets_and_writes_are_not(method: MethodDescriptor) -> None:
    # The REST mapping, stated separately in the same proto, must tell the same story.
    http = method.GetOptions().Extensions[annotations_pb2.http]
    verb = http.WhichOneof("pattern")
    assert (access_of(full_name(method)) == "read") == (verb == "get"), verb


def test_the_reads_today() -> None:
    reads = sorted(m.name for m in METHODS if access_of(full_name(m)) == "read")
    assert reads == [
        "GetContainerImage",
        "GetGuardedRollout",
        "GetRolloutStatus",
        "ListContainerImages",
        "ListRevisions",
        "WatchRollout",
    ]


def test_an_rpc_that_states_nothing_or_is_unknown_has_no_access() -> None:
    assert access_of("/kubeupdate.v1.DeploymentImageService/NoSuchMethod") is None
    assert access_of("/no.such.Service/Get") is None
    assert access_of("not a method") is None
    # grpc.health.v1 states no idempotency_level (it is open anyway, as a probe).
    assert health_pb2.DESCRIPTOR.services_by_name["Health"].methods_by_name["Check"]
    assert access_of("/grpc.health.v1.Health/Check") is None


async def test_the_security_interceptor_refuses_an_rpc_whose_access_is_unstated() -> None:
    def echo(request: bytes, context: object) -> bytes:
        return request

    undeclared = grpc.method_handlers_generic_handler(
        "kubeupdate.v1.DeploymentImageService",
        {"Undeclared": grpc.unary_unary_rpc_method_handler(echo)},
    )
    audit = io.StringIO()
    interceptor = AuthInterceptor(authenticator=None, policy=None, audit=AuditLog.to_stream(audit))
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers([undeclared])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                "/kubeupdate.v1.DeploymentImageService/Undeclared"
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(b"hello", timeout=10)
    finally:
        await server.stop(None)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert refused.value.details() == "Undeclared is not available."
