"""DeploymentImageClient against a real grpc.aio server with a fake servicer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from kubeupdate.client import (
    Cancelled,
    Conflict,
    Container,
    ContainerImage,
    DeadlineExceeded,
    Denied,
    DeploymentImageClient,
    FailedPrecondition,
    InvalidArgument,
    KubeUpdateError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Rollout,
    RolloutFailed,
    RolloutState,
    ServerError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from kubeupdate.client.results import to_json
from kubeupdate.v1 import deployment_image_service_pb2 as pb

from tests.clients.conftest import FakeServer, State, StateValue, rollout


@pytest.fixture
def client(fake_server: FakeServer) -> Iterator[DeploymentImageClient]:
    with DeploymentImageClient(fake_server.target, token="s3cret", environ={}) as client:
        yield client


def test_get_returns_the_image(client: DeploymentImageClient, fake_server: FakeServer) -> None:
    assert client.get("default", "web", "app") == ContainerImage(
        "default", "web", "app", "nginx:1.25"
    )
    assert fake_server.service.metadata[-1]["authorization"] == "Bearer s3cret"


def test_no_token_sends_no_authorization(fake_server: FakeServer) -> None:
    with DeploymentImageClient(fake_server.target, environ={}) as client:
        client.get("default", "web", "app")
    assert "authorization" not in fake_server.service.metadata[-1]


def test_token_from_environment(fake_server: FakeServer) -> None:
    environ = {"KUBEUPDATE_TOKEN": "from-env"}
    with DeploymentImageClient(fake_server.target, environ=environ) as client:
        client.get("default", "web", "app")
    assert fake_server.service.metadata[-1]["authorization"] == "Bearer from-env"


def test_set_sends_every_option(client: DeploymentImageClient, fake_server: FakeServer) -> None:
    change = client.set(
        "default",
        "web",
        "app",
        "nginx:1.27",
        wait=True,
        timeout=timedelta(minutes=2),
        rollback_on_failure=True,
        reason="release 7",
    )
    (request,) = fake_server.calls("SetContainerImage")
    assert isinstance(request, pb.SetContainerImageRequest)
    assert request.wait
    assert request.rollback_on_failure
    assert not request.dry_run
    assert request.timeout.ToTimedelta() == timedelta(minutes=2)
    assert request.reason == "release 7"
    assert change.previous_image == "nginx:1.25"
    assert change.image == "nginx:1.27"
    assert change.changed
    assert change.generation == 7
    assert change.rollout is not None
    assert change.rollout.state is RolloutState.COMPLETE
    assert change.rollout.duration == timedelta(seconds=12)


def test_set_without_wait_has_no_rollout(client: DeploymentImageClient) -> None:
    change = client.set("default", "web", "app", "nginx:1.25")
    assert not change.changed
    assert change.rollout is None


def test_set_dry_run(client: DeploymentImageClient, fake_server: FakeServer) -> None:
    change = client.set("default", "web", "app", "nginx:1.27", dry_run=True)
    assert change.dry_run
    assert fake_server.service.images["default", "web", "app"] == "nginx:1.25"
    (request,) = fake_server.calls("SetContainerImage")
    assert isinstance(request, pb.SetContainerImageRequest)
    assert not request.HasField("timeout")


@pytest.mark.parametrize(
    "state", [State.STATE_FAILED, State.STATE_TIMED_OUT, State.STATE_ROLLED_BACK]
)
def test_failed_rollout_raises_with_the_result(
    client: DeploymentImageClient, fake_server: FakeServer, state: StateValue
) -> None:
    fake_server.service.set_outcome = rollout(
        state,
        1,
        0,
        reason="ImagePullBackOff",
        failed_image="nginx:nope",
        restored_image="nginx:1.25",
    )
    with pytest.raises(RolloutFailed) as raised:
        client.set("default", "web", "app", "nginx:nope", wait=True)
    result = raised.value.result
    assert result.rollout is not None
    assert result.rollout.state.name == pb.Rollout.State.Name(state).removeprefix("STATE_")
    assert result.rollout.reason == "ImagePullBackOff"
    assert "ImagePullBackOff" in str(raised.value)


def test_failed_rollout_returned_without_check(
    client: DeploymentImageClient, fake_server: FakeServer
) -> None:
    fake_server.service.set_outcome = rollout(State.STATE_FAILED, 1, 0)
    change = client.set("default", "web", "app", "nginx:nope", wait=True, check=False)
    assert change.rollout is not None
    assert change.rollout.state is RolloutState.FAILED


def test_waited_set_reports_the_progress_of_this_change(
    client: DeploymentImageClient, fake_server: FakeServer
) -> None:
    # The stream starts with the rollout before the change: never reported.
    fake_server.service.before_set = rollout(State.STATE_PROGRESSING, 2, 2, revision=1)
    fake_server.service.release_set = released = threading.Event()
    seen: list[Rollout] = []

    def progress(rollout: Rollout) -> None:
        seen.append(rollout)
        if len(seen) == 2:
            released.set()

    change = client.set("default", "web", "app", "nginx:1.27", wait=True, progress=progress)
    assert [(r.state, r.updated_replicas) for r in seen] == [
        (RolloutState.PROGRESSING, 1),
        (RolloutState.PROGRESSING, 2),
    ]
    assert change.rollout is not None
    assert change.rollout.state is RolloutState.COMPLETE


def test_progress_is_optional_when_watch_fails(
    client: DeploymentImageClient, fake_server: FakeServer
) -> None:
    fake_server.service.errors["WatchRollout"] = (grpc.StatusCode.UNIMPLEMENTED, "no watch")
    seen: list[Rollout] = []
    change = client.set("default", "web", "app", "nginx:1.27", wait=True, progress=seen.append)
    assert seen == []
    assert change.rollout is not None


def test_list(client: DeploymentImageClient) -> None:
    assert client.list("default", "web") == (
        Container("migrate", "busybox:1.36", init_container=True),
        Container("app", "nginx:1.25"),
        Container("sidecar", "envoy:1.30"),
    )


def test_rollout_status(client: DeploymentImageClient) -> None:
    status = client.rollout_status("default", "web")
    assert status.state is RolloutState.COMPLETE
    assert (status.namespace, status.deployment) == ("default", "web")
    assert status.available_replicas == status.replicas == 3
    assert status.duration is None


def test_watch_streams_until_terminal(client: DeploymentImageClient) -> None:
    states = [(r.state, r.updated_replicas) for r in client.watch("default", "web")]
    assert states == [
        (RolloutState.PROGRESSING, 1),
        (RolloutState.PROGRESSING, 2),
        (RolloutState.COMPLETE, 3),
    ]


def test_watch_error_is_mapped(client: DeploymentImageClient) -> None:
    with pytest.raises(NotFound, match="deployment nope not found"):
        list(client.watch("default", "nope"))


def test_history(client: DeploymentImageClient) -> None:
    newest, oldest = client.history("default", "web")
    assert newest.revision == 2
    assert newest.change_cause.startswith("kubeupdate:")
    assert newest.containers == (Container("app", "nginx:1.25"),)
    assert newest.create_time == datetime.fromtimestamp(1_700_000_000, UTC)
    assert oldest.create_time is None
    assert to_json(newest)["create_time"] == "2023-11-14T22:13:20+00:00"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.OUT_OF_RANGE, InvalidArgument),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition),
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.ABORTED, Conflict),
        (grpc.StatusCode.ALREADY_EXISTS, Conflict),
        (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
        (grpc.StatusCode.UNAVAILABLE, Unavailable),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhausted),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded),
        (grpc.StatusCode.CANCELLED, Cancelled),
        (grpc.StatusCode.UNIMPLEMENTED, Unimplemented),
        (grpc.StatusCode.INTERNAL, ServerError),
        (grpc.StatusCode.UNKNOWN, ServerError),
        (grpc.StatusCode.DATA_LOSS, ServerError),
    ],
)
def test_status_codes_become_exceptions(
    client: DeploymentImageClient,
    fake_server: FakeServer,
    code: grpc.StatusCode,
    error: type[KubeUpdateError],
) -> None:
    fake_server.service.errors["GetContainerImage"] = (code, "a clear sentence")
    with pytest.raises(error, match="a clear sentence") as raised:
        client.get("default", "web", "app")
    assert type(raised.value) is error
    assert raised.value.code == code


def test_the_reason_and_its_metadata_reach_the_exception(
    client: DeploymentImageClient, fake_server: FakeServer
) -> None:
    fake_server.service.errors["GetContainerImage"] = (
        grpc.StatusCode.NOT_FOUND,
        "container nope not found",
        "CONTAINER_NOT_FOUND",
        {"container": "nope"},
    )
    with pytest.raises(NotFound) as raised:
        client.get("default", "web", "nope")
    assert (raised.value.reason, raised.value.metadata) == (
        "CONTAINER_NOT_FOUND",
        {"container": "nope"},
    )


def test_a_status_without_details_has_no_reason(
    client: DeploymentImageClient, fake_server: FakeServer
) -> None:
    fake_server.service.errors["GetContainerImage"] = (grpc.StatusCode.NOT_FOUND, "gone")
    with pytest.raises(NotFound) as raised:
        client.get("default", "web", "app")
    assert (raised.value.reason, raised.value.metadata) == ("", {})


def test_denied_is_permission_denied() -> None:
    assert Denied is PermissionDenied


def test_unreachable_server_is_unavailable() -> None:
    import socket

    # A bound socket that does not listen refuses connections, for as long as it is held.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        with (
            DeploymentImageClient(f"127.0.0.1:{port}", environ={}) as client,
            pytest.raises(Unavailable),
        ):
            client.get("default", "web", "app")
