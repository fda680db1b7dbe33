"""coordination.k8s.io/v1 Leases: the compare-and-swap a guardian's take-over needs (issue 12)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection.leaderelectionrecord import LeaderElectionRecord
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from devcluster import DevCluster
from tests.devcluster.conftest import api_client_for
from tests.devcluster.raw import call

LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
RENEWED = "2026-12-03T11:20:58.123456Z"


@pytest.fixture
def coordination(api_client: client.ApiClient) -> Any:
    return client.CoordinationV1Api(api_client)


def lease(name: str = "rollout-web", holder: str = "replica-a", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "annotations": {"kubeupdate.dev/intent": "{}"}},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "acquireTime": RENEWED,
            "renewTime": RENEWED,
            "leaseTransitions": 0,
            **spec,
        },
    }


def status_of(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.value.body or "")
    return body


def raw(coordination: Any, name: str = "rollout-web") -> dict[str, Any]:
    response = coordination.read_namespaced_lease(name, "default", _preload_content=False)
    data: dict[str, Any] = json.loads(response.data)
    return data


def test_a_created_lease_reads_back_as_kube_apiserver_stores_it(
    devcluster: DevCluster, coordination: Any
) -> None:
    sent = lease(renewTime="2026-12-03T13:20:58.000001+02:00")
    answer = call(devcluster, "POST", LEASES, json.dumps(sent).encode(), "application/json")
    assert answer.status == 201
    got = raw(coordination)
    assert got["spec"] == {
        "holderIdentity": "replica-a",
        "leaseDurationSeconds": 15,
        "acquireTime": RENEWED,
        "renewTime": "2026-12-03T11:20:58.000001Z",  # MicroTime: UTC, six digits
        "leaseTransitions": 0,
    }
    assert got["metadata"]["annotations"] == {"kubeupdate.dev/intent": "{}"}
    # A Lease has neither status nor generation.
    assert "status" not in got
    assert "generation" not in got["metadata"]
    assert got["metadata"]["resourceVersion"]


def test_an_update_with_the_current_resource_version_takes_over(
    devcluster: DevCluster, coordination: Any
) -> None:
    coordination.create_namespaced_lease("default", lease())
    current = coordination.read_namespaced_lease("rollout-web", "default")
    current.spec.holder_identity = "replica-b"
    current.spec.lease_transitions = 1
    updated = coordination.replace_namespaced_lease("rollout-web", "default", current)
    assert updated.spec.holder_identity == "replica-b"
    assert updated.spec.lease_transitions == 1
    assert updated.metadata.resource_version != current.metadata.resource_version


def test_of_two_replicas_taking_over_from_the_same_read_exactly_one_wins(
    devcluster: DevCluster, coordination: Any
) -> None:
    coordination.create_namespaced_lease("default", lease())
    seen = raw(coordination)
    outcomes = []
    for replica in ("replica-b", "replica-c"):
        body = {**seen, "spec": {**seen["spec"], "holderIdentity": replica}}
        answer = call(
            devcluster,
            "PUT",
            f"{LEASES}/rollout-web",
            json.dumps(body).encode(),
            "application/json",
        )
        outcomes.append((replica, answer.status, json.loads(answer.body)))
    assert [status for _, status, _ in outcomes] == [200, 409]
    assert outcomes[1][2] == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Operation cannot be fulfilled on leases.coordination.k8s.io "rollout-web":'
        " the object has been modified; please apply your changes to the latest version and"
        " try again",
        "reason": "Conflict",
        "details": {"name": "rollout-web", "group": "coordination.k8s.io", "kind": "leases"},
        "code": 409,
    }
    assert raw(coordination)["spec"]["holderIdentity"] == "replica-b"


def test_an_update_without_a_resource_version_is_refused(
    devcluster: DevCluster, coordination: Any
) -> None:
    coordination.create_namespaced_lease("default", lease())
    before = devcluster.resource_version
    with pytest.raises(ApiException) as exc:
        coordination.replace_namespaced_lease("rollout-web", "default", lease(holder="thief"))
    assert exc.value.status == 422
    assert status_of(exc) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'leases.coordination.k8s.io "rollout-web" is invalid: metadata.resourceVersion:'
        " Invalid value: 0: must be specified for an update",
        "reason": "Invalid",
        "details": {
            "name": "rollout-web",
            "group": "coordination.k8s.io",
            "kind": "leases",
            "causes": [
                {
                    "reason": "FieldValueInvalid",
                    "message": "Invalid value: 0: must be specified for an update",
                    "field": "metadata.resourceVersion",
                }
            ],
        },
        "code": 422,
    }
    assert devcluster.resource_version == before


def test_an_update_naming_another_objects_uid_is_a_conflict(
    devcluster: DevCluster, coordination: Any
) -> None:
    coordination.create_namespaced_lease("default", lease())
    seen = raw(coordination)
    stale = {**seen, "metadata": {**seen["metadata"], "uid": "0000-gone"}}
    with pytest.raises(ApiException) as exc:
        coordination.replace_namespaced_lease("rollout-web", "default", stale)
    assert exc.value.status == 409
    assert status_of(exc)["message"] == (
        'Operation cannot be fulfilled on leases.coordination.k8s.io "rollout-web": Precondition'
        f" failed: UID in precondition: 0000-gone, UID in object meta: {seen['metadata']['uid']}"
    )


def test_a_put_of_a_missing_lease_creates_it(devcluster: DevCluster) -> None:
    body = json.dumps(lease()).encode()
    answer = call(devcluster, "PUT", f"{LEASES}/rollout-web", body, "application/json")
    assert answer.status == 201
    assert devcluster.get("leases", "default", "rollout-web") is not None


def test_a_patch_applies_to_the_latest_lease_unless_it_pins_a_stale_version(
    devcluster: DevCluster, coordination: Any
) -> None:
    created = coordination.create_namespaced_lease("default", lease())
    renewed = "2026-12-03T11:21:03.000000Z"
    patched = coordination.patch_namespaced_lease(
        "rollout-web", "default", {"spec": {"renewTime": renewed}}
    )
    assert patched.spec.holder_identity == "replica-a"
    with pytest.raises(ApiException) as exc:
        coordination.patch_namespaced_lease(
            "rollout-web",
            "default",
            {
                "metadata": {"resourceVersion": created.metadata.resource_version},
                "spec": {"holderIdentity": "replica-b"},
            },
        )
    assert exc.value.status == 409
    assert raw(coordination)["spec"]["holderIdentity"] == "replica-a"


@pytest.mark.parametrize(
    ("spec", "code", "message"),
    [
        (
            {"renewTime": "2026-12-03T11:20:58Z"},
            400,
            'Lease in version "v1" cannot be handled as a Lease: parsing time'
            ' "2026-12-03T11:20:58Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "Z"'
            ' as ".000000"',
        ),
        (
            {"leaseDurationSeconds": "15"},
            400,
            'Lease in version "v1" cannot be handled as a Lease: json: cannot unmarshal string'
            " into Go struct field LeaseSpec.spec.leaseDurationSeconds of type int32",
        ),
        (
            {"leaseDurationSeconds": 0},
            422,
            'Lease.coordination.k8s.io "rollout-web" is invalid: spec.leaseDurationSeconds:'
            " Invalid value: 0: must be greater than 0",
        ),
        (
            {"leaseTransitions": -1},
            422,
            'Lease.coordination.k8s.io "rollout-web" is invalid: spec.leaseTransitions:'
            " Invalid value: -1: must be greater than or equal to 0",
        ),
    ],
)
def test_a_lease_go_would_not_decode_or_validate_is_refused_and_nothing_stored(
    devcluster: DevCluster, coordination: Any, spec: dict[str, Any], code: int, message: str
) -> None:
    before = devcluster.resource_version
    answer = call(
        devcluster, "POST", LEASES, json.dumps(lease(**spec)).encode(), "application/json"
    )
    assert answer.status == code
    assert json.loads(answer.body)["message"] == message
    assert devcluster.resource_version == before


def test_delete_answers_a_status_and_watch_reports_every_change(
    devcluster: DevCluster, coordination: Any
) -> None:
    coordination.create_namespaced_lease("default", lease())
    listed = coordination.list_namespaced_lease("default")
    start = listed.metadata.resource_version
    coordination.patch_namespaced_lease("rollout-web", "default", {"spec": {"holderIdentity": "b"}})
    gone = coordination.delete_namespaced_lease("rollout-web", "default")
    assert (gone["kind"], gone["status"], gone["details"]["kind"]) == (
        "Status",
        "Success",
        "leases",
    )
    response = coordination.list_namespaced_lease(
        "default",
        watch=True,
        resource_version=start,
        timeout_seconds=1,
        _preload_content=False,
    )
    events = [json.loads(line) for line in response.data.decode().splitlines()]
    assert [(e["type"], e["object"]["spec"]["holderIdentity"]) for e in events] == [
        ("MODIFIED", "b"),
        ("DELETED", "b"),
    ]


def lease_lock(api: client.ApiClient, identity: str) -> Any:
    lock = LeaseLock("rollout-web", "default", identity)  # type: ignore[no-untyped-call]
    lock.api_instance = client.CoordinationV1Api(api)
    return lock


def election_record(holder: str, acquired: str, renewed: str) -> Any:
    # The times are str(datetime), as leaderelection.py writes them.
    return LeaderElectionRecord(holder, "15", acquired, renewed)  # type: ignore[no-untyped-call]


def test_the_kubernetes_clients_lease_lock_elects_and_hands_over(devcluster: DevCluster) -> None:
    # kubernetes.leaderelection's LeaseLock, as the kubernetes package's own leader election
    # uses it: create, read, update through the read object.
    acquired = "2026-12-03 11:20:58.500000+00:00"
    later = "2026-12-03 11:21:18.250000+00:00"
    with api_client_for(devcluster) as api:
        first, second = lease_lock(api, "replica-a"), lease_lock(api, "replica-b")
        assert first.create(
            "rollout-web", "default", election_record("replica-a", acquired, acquired)
        )
        found, seen = second.get("rollout-web", "default")
        assert found
        assert seen.holder_identity == "replica-a"
        assert second.update("rollout-web", "default", election_record("replica-b", later, later))
        # replica-a still holds the version it created: its renewal must lose.
        renewal = election_record("replica-a", acquired, "2026-12-03 11:21:19.75+00:00")
        assert not first.update("rollout-web", "default", renewal)
    assert [e.status for e in devcluster.journal if e.method == "PUT"] == [200, 409]
    stored = devcluster.get("leases", "default", "rollout-web") or {}
    assert stored["spec"]["holderIdentity"] == "replica-b"
    assert stored["spec"]["renewTime"] == "2026-12-03T11:21:18.250000Z"
