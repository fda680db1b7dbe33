"""kubectl's rollout status rule, ported: the messages, the errors and the Pod warnings."""

from __future__ import annotations

from typing import Any

import pytest

from kubeupdate.workloads.deployments import REVISION_ANNOTATION, RolloutFailed, rollout_status

Object = dict[str, Any]

WAIT = 'Waiting for deployment "web" rollout to finish: '


def status_case(
    generation: int = 2,
    spec_replicas: int | None = 3,
    annotations: Object | None = None,
    **status: Any,
) -> Object:
    spec = {} if spec_replicas is None else {"replicas": spec_replicas}
    return {
        "metadata": {"name": "web", "generation": generation, "annotations": annotations or {}},
        "spec": spec,
        "status": status,
    }


@pytest.mark.parametrize(
    ("deployment", "expected"),
    [
        (
            status_case(observedGeneration=1, replicas=3, updatedReplicas=3, availableReplicas=3),
            ("Waiting for deployment spec update to be observed...\n", False),
        ),
        (
            status_case(observedGeneration=2, replicas=3, updatedReplicas=1, availableReplicas=3),
            (
                WAIT + "1 out of 3 new replicas have been updated...\n",
                False,
            ),
        ),
        (
            status_case(observedGeneration=2, replicas=4, updatedReplicas=3, availableReplicas=3),
            (
                WAIT + "1 old replicas are pending termination...\n",
                False,
            ),
        ),
        (
            status_case(observedGeneration=2, replicas=3, updatedReplicas=3, availableReplicas=2),
            (
                WAIT + "2 of 3 updated replicas are available...\n",
                False,
            ),
        ),
        (
            status_case(observedGeneration=2, replicas=3, updatedReplicas=3, availableReplicas=3),
            ('deployment "web" successfully rolled out\n', True),
        ),
        (
            status_case(spec_replicas=None, observedGeneration=2),
            ('deployment "web" successfully rolled out\n', True),
        ),
        (
            status_case(generation=3, observedGeneration=4),
            (
                WAIT + "0 out of 3 new replicas have been updated...\n",
                False,
            ),
        ),
    ],
)
def test_rollout_status_messages(deployment: Object, expected: tuple[str, bool]) -> None:
    assert rollout_status(deployment) == expected


def test_rollout_status_errors() -> None:
    timed_out = status_case(
        observedGeneration=2,
        conditions=[
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
        ],
    )
    with pytest.raises(RolloutFailed, match=r'^deployment "web" exceeded its progress deadline$'):
        rollout_status(timed_out)
    # An unobserved generation wins over an old timeout, as in kubectl.
    timed_out["metadata"]["generation"] = 3
    assert not rollout_status(timed_out)[1]
    revised = status_case(annotations={REVISION_ANNOTATION: "4"}, observedGeneration=2)
    with pytest.raises(
        RolloutFailed, match=r"desired revision \(3\) is different from the running revision \(4\)"
    ):
        rollout_status(revised, revision=3)
    assert rollout_status(revised, revision=4)[1] is False


def test_rollout_status_warns_about_unschedulable_pods() -> None:
    pending = status_case(observedGeneration=2, replicas=3, updatedReplicas=3, availableReplicas=1)
    pod = {
        "status": {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available",
                }
            ]
        }
    }
    assert rollout_status(pending, pods=[pod])[0] == (
        WAIT + "1 of 3 updated replicas are available... (Warning: 0/1 nodes are available)\n"
    )


def test_rollout_status_warns_about_a_pod_that_cannot_pull() -> None:
    rolling = status_case(observedGeneration=2, replicas=4, updatedReplicas=1, availableReplicas=3)
    waiting = {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "nginx:1.26-bad"'}
    pod = {"status": {"containerStatuses": [{"name": "app", "state": {"waiting": waiting}}]}}
    assert rollout_status(rolling, pods=[pod])[0] == (
        WAIT + "1 out of 3 new replicas have been updated..."
        ' (Warning: ImagePullBackOff - Back-off pulling image "nginx:1.26-bad")\n'
    )
