"""The gRPC face of the domain: protobuf in, domain call, protobuf out.

Nothing else happens here. Errors are raised as domain errors and turned into
statuses by :class:`kubeupdate.status.ErrorStatusInterceptor`.
"""

from __future__ import annotations

import time
from typing import Any

import grpc.aio
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from kubeupdate.deployments import DeploymentImages

Context = grpc.aio.ServicerContext[Any, Any]


class DeploymentImageServicer(pb_grpc.DeploymentImageServiceServicer):
    """Implements ``kubeupdate.v1.DeploymentImageService`` with :class:`DeploymentImages`."""

    def __init__(self, images: DeploymentImages) -> None:
        self._images = images

    async def GetContainerImage(
        self, request: pb.GetContainerImageRequest, context: Context
    ) -> pb.GetContainerImageResponse:
        image = await self._images.get_container_image(
            request.namespace, request.deployment, request.container, deadline=_deadline(context)
        )
        return pb.GetContainerImageResponse(
            namespace=request.namespace,
            deployment=request.deployment,
            container=request.container,
            image=image,
        )

    async def SetContainerImage(
        self, request: pb.SetContainerImageRequest, context: Context
    ) -> pb.SetContainerImageResponse:
        change = await self._images.set_container_image(
            request.namespace,
            request.deployment,
            request.container,
            request.image,
            deadline=_deadline(context),
        )
        return pb.SetContainerImageResponse(
            namespace=change.namespace,
            deployment=change.deployment,
            container=change.container,
            image=change.image,
            previous_image=change.previous_image,
            changed=change.changed,
            generation=change.generation,
        )

    async def ListContainerImages(
        self, request: pb.ListContainerImagesRequest, context: Context
    ) -> pb.ListContainerImagesResponse:
        containers = await self._images.list_container_images(
            request.namespace, request.deployment, deadline=_deadline(context)
        )
        return pb.ListContainerImagesResponse(
            namespace=request.namespace,
            deployment=request.deployment,
            containers=[
                pb.ContainerImage(name=c.name, image=c.image, init_container=c.init_container)
                for c in containers
            ],
        )


def _deadline(context: Context) -> float | None:
    """The caller's deadline on the ``time.monotonic()`` clock, if it set one."""
    left: float | None = context.time_remaining()
    return None if left is None else time.monotonic() + left
