"""A waited set whose replica hands the rollout over, or whose connection is lost.

The fake service answers the waited set as the real one does when its replica
shuts down (UNAVAILABLE, reason ROLLOUT_HANDED_OVER, the guarded rollout in
the metadata) or when the connection breaks (gRPC's own UNAVAILABLE); the
client must follow the rollout to its verdict within the same budget.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from kubeupdate.client import (
    DeadlineExceeded,
    DeploymentImageClient,
    NotFound,
    RolloutFailed,
    RolloutState,
    Unavailable,
)
from kubeupdate.client.cli import ExitCode, main
from kubeupdate.client.handovers import HandOver, may_have_written
from kubeupdate.v1 import deployment_image_service_pb2 as pb

from tests.clients.conftest import FakeServer, GitHubStack, State, rollout

ROLLOUT_ID = "kubeupdate-0123456789abcdef"
FOLLOW = f"/rollout/default/web/guarded/{ROLLOUT_ID}?wait=true"
HANDED_OVER = (
    grpc.StatusCode.UNAVAILABLE,
    "The image was changed to nginx:1.26-bad; this replica is shutting down and another one "
    f"follows the rollout (and rolls it back if it fails). Follow it: GET {FOLLOW}",
    "ROLLOUT_HANDED_OVER",
    {
        "rollout_id": ROLLOUT_ID,
        "namespace": "default",
        "deployment": "web",
        "container": "app",
        "image": "nginx:1.26-bad",
        "previous_image": "nginx:1.25",
        "follow": FOLLOW,
    },
)
# What gRPC itself says when the server's process dies during the call.
SOCKET_CLOSED = (grpc.StatusCode.UNAVAILABLE, "Stream removed (Socket closed)")


def guarded(
    closed: bool, state: pb.Rollout.State.ValueType, **fields: str
) -> pb.GetGuardedRolloutResponse:
    change = pb.SetContainerImageResponse(
        namespace="default",
        deployment="web",
        container="app",
        image="nginx:1.25" if state == State.STATE_ROLLED_BACK else "nginx:1.26-bad",
        previous_image="nginx:1.25",
        changed=True,
        generation=8,
        rollout=rollout(state, 3, 3, **fields),
    )
    return pb.GetGuardedRolloutResponse(
        id=ROLLOUT_ID, closed=closed, holder="" if closed else "kubeupdate-7d9f-x2", change=change
    )


ROLLED_BACK = guarded(
    True,
    State.STATE_ROLLED_BACK,
    reason="ProgressDeadlineExceeded",
    failed_image="nginx:1.26-bad",
    restored_image="nginx:1.25",
)
STILL_FOLLOWED = guarded(False, State.STATE_PROGRESSING, message="1 of 3 updated replicas")


@pytest.fixture
def client(fake_server: FakeServer) -> Iterator[DeploymentImageClient]:
    with DeploymentImageClient(fake_server.target, token="s3cret", environ={}) as client:
        yield client


def test_a_handed_over_set_ends_with_the_verdict_of_the_replica_that_took_it_over(
    client: DeploymentImageClient, fake_server: FakeServer
) -> None:
    fake_server.service.set_interrupted = HANDED_OVER
    fake_server.service.guarded = [STILL_FOLLOWED, ROLLED_BACK]
    notices: list[str] = []

    with pytest.raises(RolloutFailed) as failed:
        client.set(
            "default",
            "web",
            "app",
            "nginx:1.26-bad",
            wait=True,
            timeout=60,
            rollback_on_failure=True,
            notify=notices.append,
        )

    result = failed.value.result
    assert result.rollout is not None
    assert result.rollout.state is RolloutState.ROLLED_BACK
    assert (result.image, result.rollout.failed_image) == ("nginx:1.25", "nginx:1.26-bad")
    assert result.rollout_id == ROLLOUT_ID
    # Asked while the record was open, then again: same id, waiting, within the budget.
    asks = fake_server.calls("GetGuardedRollout")
    assert len(asks) == 2
    for ask in asks:
        assert isinstance(ask, pb.GetGuardedRolloutRequest)
        assert (ask.namespace, ask.deployment, ask.id, ask.wait) == (
            "default",
            "web",
            ROLLOUT_ID,
            True,
        )
        assert 0 < ask.timeout.ToTimedelta().total_seconds() <= 60 + 30
    assert fake_server.service.metadata[-1]["authorization"] == "Bearer s3cret"
    assert len(notices) == 1, notices
    assert ROLLOUT_ID in notices[0]


def test_the_cli_exits_with_the_taken_over_verdict_and_says_it_was_handed_over(
    fake_server: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_server.service.set_interrupted = HANDED_OVER
    fake_server.service.guarded = [ROLLED_BACK]

    code = main(
        [
            "--server",
            fake_server.target,
            "--json",
            "set",
            "default/web/app",
            "nginx:1.26-bad",
            "--wait",
            "--rollback-on-failure",
        ]
    )

    out, err = capsys.readouterr()
    assert code == ExitCode.ROLLOUT_FAILED
    assert f"handed the rollout over; following guarded rollout {ROLLOUT_ID}" in err
    assert '"rollout_id": "kubeupdate-0123456789abcdef"' in out
    assert '"state": "ROLLED_BACK"' in out


def test_a_verdict_not_reached_within_the_budget_is_a_deadline_naming_the_rollout(
    fake_server: FakeServer,
) -> None:
    fake_server.service.set_interrupted = HANDED_OVER
    fake_server.service.guarded = [STILL_FOLLOWED]
    # A budget of a fraction of a second: the wait's plus the call's.
    with (
        DeploymentImageClient(fake_server.target, environ={}, timeout=0.2) as client,
        pytest.raises(DeadlineExceeded) as ended,
    ):
        client.set("default", "web", "app", "nginx:1.26-bad", wait=True, timeout=0.1)

    assert ended.value.metadata["rollout_id"] == ROLLOUT_ID
    assert FOLLOW in ended.value.message
    assert "kubeupdate-7d9f-x2 still follows" in ended.value.message
    assert fake_server.calls("GetGuardedRollout")


def test_an_expired_record_falls_back_to_the_deployment_and_says_what_cannot_be_confirmed(
    client: DeploymentImageClient, fake_server: FakeServer
) -> None:
    fake_server.service.set_interrupted = HANDED_OVER
    fake_server.service.errors["GetGuardedRollout"] = (
        grpc.StatusCode.NOT_FOUND,
        "no guarded rollout",
        "GUARDED_ROLLOUT_NOT_FOUND",
        {},
    )

    change = client.set("default", "web", "app", "nginx:1.26-bad", wait=True)

    # The fake applied the image and its watch ends COMPLETE.
    assert change.rollout is not None
    assert change.rollout.state is RolloutState.COMPLETE
    assert change.image == "nginx:1.26-bad"
    assert change.previous_image == "nginx:1.25"
    assert "a rollback by another replica cannot be confirmed" in change.rollout.message
    assert fake_server.calls("WatchRollout")
    assert fake_server.calls("GetContainerImage")


def test_a_lost_connection_watches_the_deployment_and_fails_when_the_image_is_not_running(
    client: DeploymentImageClient, fake_server: FakeServer
) -> None:
    fake_server.service.set_interrupted = SOCKET_CLOSED
    fake_server.service.image_after_interruption = "nginx:1.25"  # as if rolled back meanwhile
    notices: list[str] = []

    with pytest.raises(RolloutFailed) as failed:
        client.set("default", "web", "app", "nginx:1.26-bad", wait=True, notify=notices.append)

    result = failed.value.result
    assert result.rollout is not None
    assert result.rollout.state is RolloutState.FAILED
    assert result.image == "nginx:1.25"
    assert "runs nginx:1.25, not nginx:1.26-bad" in result.rollout.message
    assert "a rollback by another replica cannot be confirmed" in result.rollout.message
    assert not fake_server.calls("GetGuardedRollout")  # no id to ask about
    assert "Socket closed" in notices[0]


def test_a_lost_connection_with_the_image_running_ends_with_the_deployments_verdict(
    client: DeploymentImageClient, fake_server: FakeServer
) -> None:
    fake_server.service.set_interrupted = SOCKET_CLOSED

    change = client.set("default", "web", "app", "nginx:1.26", wait=True)

    assert change.rollout is not None
    assert change.rollout.state is RolloutState.COMPLETE
    assert change.image == "nginx:1.26"


def test_a_write_that_never_reached_a_server_is_not_followed(fake_server: FakeServer) -> None:
    with (
        DeploymentImageClient("127.0.0.1:1", environ={}, timeout=5) as client,
        pytest.raises(Unavailable) as unreachable,
    ):
        client.set("default", "web", "app", "nginx:1.26", wait=True)
    assert unreachable.value.reason == "UNREACHABLE"
    assert not may_have_written(unreachable.value)


def test_other_errors_are_not_hand_overs(client: DeploymentImageClient) -> None:
    with pytest.raises(NotFound) as missing:
        client.set("default", "web", "nope", "nginx:1.26", wait=True)
    assert HandOver.from_error(missing.value) is None
    assert not may_have_written(missing.value)


def test_guarded_rollout_asks_the_real_service_and_names_an_unknown_id(
    github_stack: GitHubStack,
) -> None:
    target = github_stack.stack.grpc_target
    with (
        DeploymentImageClient(target, token=github_stack.secret, environ={}) as client,
        pytest.raises(NotFound) as missing,
    ):
        client.guarded_rollout("default", "web", ROLLOUT_ID, wait=True, timeout=5)
    assert missing.value.reason == "GUARDED_ROLLOUT_NOT_FOUND"
