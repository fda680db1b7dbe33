"""Every rollout state of the contract has a name in the client, and says whether it failed."""

from __future__ import annotations

from kubeupdate.client.results import RolloutState
from kubeupdate.v1 import deployment_image_service_pb2 as pb


def test_every_state_of_the_contract_is_known_to_the_client() -> None:
    for value in pb.Rollout.State.values():
        name = pb.Rollout.State.Name(value).removeprefix("STATE_")
        assert RolloutState(value).name == name


def test_a_release_that_does_not_run_counts_as_failed() -> None:
    failed = {state for state in RolloutState if state.failed}

    assert failed == {
        RolloutState.FAILED,
        RolloutState.TIMED_OUT,
        RolloutState.ROLLED_BACK,
        RolloutState.PAUSED,
    }
