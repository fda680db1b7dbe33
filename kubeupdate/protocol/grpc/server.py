"""The gRPC server: DeploymentImageService, health checking and reflection.

:class:`ServiceServer` is the server as an object (start, port, stop), for
:func:`kubeupdate.service.serve`, for tests and for embedding. Interceptors
run inside the error interceptor, so a domain error they raise (e.g. from
authentication) is reported like any other.

Two of gRPC's defaults are changed (:data:`SERVER_OPTIONS`). ``SO_REUSEPORT``
is off: with it (gRPC's default on Linux) a second server on a port already in
use starts without a word and the kernel splits the connections between the
two; without it, binding fails and :meth:`ServiceServer.start` says which
address. And requests are limited to :data:`MAX_REQUEST_BYTES` (gRPC allows 4
MiB): every request of the contract is a few hundred bytes, and a larger one is
refused by gRPC itself (RESOURCE_EXHAUSTED) before any of our code reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Final

import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from kubeupdate.operations import Operations
from kubeupdate.protocol.grpc.interceptors import ErrorStatusInterceptor
from kubeupdate.protocol.grpc.servicer import DeploymentImageServicer

if TYPE_CHECKING:
    from kubeupdate.metrics import ServiceMetrics

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["DeploymentImageService"].full_name

#: The largest request message accepted, in bytes.
MAX_REQUEST_BYTES: Final = 64 * 1024
#: The largest metadata (headers) accepted, in bytes: above the gateway's limit on a
#: whole HTTP header block, so an oversized Authorization from a REST caller reaches
#: the security interceptor, which refuses it with a sentence and an audit line
#: (gRPC itself would answer RESOURCE_EXHAUSTED, unaudited).
MAX_METADATA_BYTES: Final = 32 * 1024
SERVER_OPTIONS: Final = (
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
    # The soft limit refuses some requests between it and the absolute one: both alike.
    ("grpc.max_metadata_size", MAX_METADATA_BYTES),
    ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
)


class ServiceServer:
    """A ``grpc.aio`` server with the service, health checking and reflection.

    ``interceptors`` run inside the error interceptor, so a domain error they
    raise (e.g. from authentication) is reported like any other.
    """

    def __init__(
        self,
        operations: Operations,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        server_credentials: grpc.ServerCredentials | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        """``metrics`` counts and times every call (exposing them is the caller's job)."""
        self._address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._server = grpc.aio.server(
            interceptors=[ErrorStatusInterceptor(metrics), *interceptors],
            options=SERVER_OPTIONS,
        )
        pb_grpc.add_DeploymentImageServiceServicer_to_server(
            DeploymentImageServicer(operations, metrics=metrics), self._server
        )
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            [SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        self._port: int | None = None
        # TLS (and client certificates) when given; plaintext otherwise.
        self._credentials = server_credentials
        self._serving = False

    @property
    def serving(self) -> bool:
        """What the health service reports: started and not stopping."""
        return self._serving

    @property
    def port(self) -> int:
        """The bound port (useful with port 0); only after :meth:`start`."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    async def start(self) -> int:
        """Bind, start serving, report SERVING; returns the bound port.

        Raises OSError naming the address when it cannot be bound (in use).
        """
        try:
            if self._credentials is not None:
                self._port = self._server.add_secure_port(self._address, self._credentials)
            else:
                self._port = self._server.add_insecure_port(self._address)
        except RuntimeError:  # what grpc raises for a port it cannot bind
            self._port = 0
        if self._port == 0:
            raise OSError(
                f"cannot listen for gRPC on {self._address}: the address is in use "
                "(another process listens there) or not available here"
            )
        await self._server.start()
        for name in ("", SERVICE_NAME):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._serving = True
        return self._port

    async def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING, let running calls finish within ``grace`` seconds, stop."""
        self._serving = False
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()

    async def __aenter__(self) -> ServiceServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop(None)
