"""The Python client of kubeupdate: ``DeploymentImageClient``, its results and errors.

It depends on grpcio, protobuf and googleapis-common-protos only; the command
line is :mod:`kubeupdate.client.cli` (``kubeupdate-client``).
"""

from kubeupdate.client.client import DeploymentImageClient
from kubeupdate.client.errors import (
    AuthError,
    Cancelled,
    Conflict,
    CredentialsError,
    DeadlineExceeded,
    Denied,
    FailedPrecondition,
    InvalidArgument,
    KubeUpdateError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RolloutFailed,
    ServerError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from kubeupdate.client.results import (
    Container,
    ContainerImage,
    ImageChange,
    Revision,
    Rollout,
    RolloutState,
)

__all__ = [
    "AuthError",
    "Cancelled",
    "Conflict",
    "Container",
    "ContainerImage",
    "CredentialsError",
    "DeadlineExceeded",
    "Denied",
    "DeploymentImageClient",
    "FailedPrecondition",
    "ImageChange",
    "InvalidArgument",
    "KubeUpdateError",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Revision",
    "Rollout",
    "RolloutFailed",
    "RolloutState",
    "ServerError",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
]
