"""DELETE with propagation policies, finalizers, deletecollection, and garbage collection."""

from __future__ import annotations

import json
from typing import Any

import pytest
from devcluster.manifests import deployment
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devcluster import DevCluster
from tests.devcluster.raw import call

WEB = "/apis/apps/v1/namespaces/default/deployments/web"


def status_of(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.value.body or "")
    return body


def rolled_out(cluster: DevCluster, name: str = "web", replicas: int = 2) -> dict[str, Any]:
    created = cluster.create(deployment(name, replicas=replicas))
    cluster.advance(5)
    return created


def names(cluster: DevCluster, resource: str) -> list[str]:
    return [o["metadata"]["name"] for o in cluster.list(resource, "default")]


def owned_lease(name: str, *owners: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": "default",
            "ownerReferences": [
                {
                    "apiVersion": owner["apiVersion"],
                    "kind": owner["kind"],
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                }
                for owner in owners
            ],
        },
        "spec": {"holderIdentity": "replica-a", "leaseDurationSeconds": 15},
    }


# -- Background, the default ------------------------------------------------------------


def test_background_deletion_takes_replica_sets_then_pods_which_terminate(
    devcluster: DevCluster,
) -> None:
    rolled_out(devcluster)
    answer = call(devcluster, "DELETE", WEB)
    assert json.loads(answer.body)["status"] == "Success"
    assert names(devcluster, "deployments") == []
    assert names(devcluster, "replicasets") == []
    pods = devcluster.list("pods", "default")
    assert len(pods) == 2
    assert all(p["metadata"]["deletionTimestamp"] for p in pods)  # Terminating
    devcluster.advance(5)
    assert names(devcluster, "pods") == []


def test_a_lease_owned_by_a_deployment_is_collected_with_it(devcluster: DevCluster) -> None:
    web = devcluster.create(deployment("web"))
    api = devcluster.create(deployment("api"))
    devcluster.create(owned_lease("rollout-web", web))
    devcluster.create(owned_lease("shared", web, api))
    devcluster.delete("deployments", "default", "web")
    assert names(devcluster, "leases") == ["shared"]
    # Another owner is still there: only the reference to the gone one is dropped.
    shared = devcluster.get("leases", "default", "shared") or {}
    assert [ref["name"] for ref in shared["metadata"]["ownerReferences"]] == ["api"]


def test_an_object_whose_owner_does_not_exist_is_collected(devcluster: DevCluster) -> None:
    ghost = deployment("ghost") | {
        "metadata": {"name": "ghost", "uid": "4a1c1a2e-0000-4000-8000-000000000000"}
    }
    devcluster.create(owned_lease("orphaned", ghost))
    assert devcluster.get("leases", "default", "orphaned") is None


def test_an_owner_of_a_kind_not_served_is_taken_as_present(devcluster: DevCluster) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "uid": "9e0b1c2d-0000-4000-8000-000000000000"},
    }
    devcluster.create(owned_lease("configured", config))
    assert devcluster.get("leases", "default", "configured") is not None


# -- Orphan ---------------------------------------------------------------------------------


def test_orphan_deletion_leaves_replica_sets_and_pods_without_the_reference(
    devcluster: DevCluster, apps: Any
) -> None:
    web = rolled_out(devcluster)
    (rs,) = devcluster.list("replicasets", "default")
    answer = apps.delete_namespaced_deployment(
        "web", "default", body=client.V1DeleteOptions(propagation_policy="Orphan")
    )
    # Not deleted at once: the answer is the Deployment, kept until the orphaning is done.
    assert answer["metadata"]["finalizers"] == ["orphan"]
    assert answer["metadata"]["deletionTimestamp"]
    assert answer["metadata"]["generation"] == web["metadata"]["generation"] + 1
    assert names(devcluster, "deployments") == []
    (left,) = devcluster.list("replicasets", "default")
    assert left["metadata"]["uid"] == rs["metadata"]["uid"]
    assert "ownerReferences" not in left["metadata"]
    pods = devcluster.list("pods", "default")
    assert len(pods) == 2
    assert all(p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"] for p in pods)
    devcluster.advance(30)
    assert len(devcluster.list("pods", "default")) == 2  # nobody deletes them


# -- Foreground -----------------------------------------------------------------------------


def test_foreground_deletion_keeps_the_owner_until_its_dependents_are_gone(
    devcluster: DevCluster,
) -> None:
    rolled_out(devcluster)
    start = devcluster.resource_version
    answer = call(devcluster, "DELETE", f"{WEB}?propagationPolicy=Foreground")
    kept = json.loads(answer.body)
    assert answer.status == 200
    assert kept["kind"] == "Deployment"
    assert kept["metadata"]["finalizers"] == ["foregroundDeletion"]
    # The ReplicaSet has Pods of its own: it goes in foreground too, and waits for them.
    (rs,) = devcluster.list("replicasets", "default")
    assert rs["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert devcluster.get("deployments", "default", "web") is not None
    pods = devcluster.list("pods", "default")
    assert len(pods) == 2
    assert all(p["metadata"]["deletionTimestamp"] for p in pods)
    devcluster.advance(5)  # the Pods terminate: no new one replaces them
    assert names(devcluster, "pods") == []
    assert names(devcluster, "replicasets") == []
    assert names(devcluster, "deployments") == []
    watch = call(
        devcluster,
        "GET",
        f"/apis/apps/v1/namespaces/default/deployments?watch=1&resourceVersion={start}"
        "&timeoutSeconds=1",
    )
    events = [json.loads(line) for line in watch.body.splitlines()]
    assert [e["type"] for e in events][-1] == "DELETED"


def test_a_dependent_that_does_not_block_does_not_hold_its_owner(devcluster: DevCluster) -> None:
    web = devcluster.create(deployment("web", replicas=0))
    devcluster.create(owned_lease("rollout-web", web))  # no blockOwnerDeletion
    devcluster.delete("deployments", "default", "web", propagation="Foreground")
    assert devcluster.get("deployments", "default", "web") is None
    assert devcluster.get("leases", "default", "rollout-web") is None


# -- finalizers -----------------------------------------------------------------------------


def test_a_finalizer_keeps_a_deleted_object_until_it_is_removed(devcluster: DevCluster) -> None:
    lease = owned_lease("guarded") | {}
    lease["metadata"] = {"name": "guarded", "finalizers": ["kubeupdate.dev/verdict"]}
    devcluster.create(lease)
    kept = devcluster.delete("leases", "default", "guarded")
    assert kept["metadata"]["deletionTimestamp"]
    assert kept["metadata"]["deletionGracePeriodSeconds"] == 0
    # A second DELETE changes nothing; an update may not move the deletion.
    assert devcluster.delete("leases", "default", "guarded")["metadata"] == kept["metadata"]
    patch = json.dumps({"metadata": {"finalizers": None}}).encode()
    devcluster.patch("leases", "default", "guarded", patch, "application/merge-patch+json")
    assert devcluster.get("leases", "default", "guarded") is None


def test_an_update_may_not_set_a_deletion_timestamp(devcluster: DevCluster) -> None:
    devcluster.create(deployment("web"))
    patch = {"metadata": {"deletionTimestamp": "2026-12-03T11:20:58Z"}}
    answer = call(
        devcluster, "PATCH", WEB, json.dumps(patch).encode(), "application/merge-patch+json"
    )
    assert answer.status == 422
    assert json.loads(answer.body)["message"] == (
        'Deployment.apps "web" is invalid: metadata.deletionTimestamp: Invalid value:'
        ' "2026-12-03T11:20:58Z": field is immutable'
    )


# -- options and preconditions --------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"propagationPolicy": "Sometimes"},
            'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value:'
            ' "Sometimes": supported values: "Foreground", "Background", "Orphan", "nil"',
        ),
        (
            {"propagationPolicy": "Orphan", "orphanDependents": True},
            'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value:'
            ' "Orphan": orphanDependents and deletionPropagation cannot be both set',
        ),
    ],
)
def test_invalid_delete_options_are_422_and_delete_nothing(
    devcluster: DevCluster, body: dict[str, Any], message: str
) -> None:
    devcluster.create(deployment("web"))
    answer = call(devcluster, "DELETE", WEB, json.dumps(body).encode(), "application/json")
    assert answer.status == 422
    status = json.loads(answer.body)
    assert status["message"] == message
    assert (status["details"]["group"], status["details"]["kind"]) == (
        "meta.k8s.io",
        "DeleteOptions",
    )
    assert devcluster.get("deployments", "default", "web") is not None


@pytest.mark.parametrize(
    ("precondition", "field", "why"),
    [
        ("uid", "UID", "The object might have been deleted and then recreated"),
        ("resourceVersion", "ResourceVersion", "The object might have been modified"),
    ],
)
def test_a_failed_delete_precondition_is_409_in_before_deletes_words(
    devcluster: DevCluster, apps: Any, precondition: str, field: str, why: str
) -> None:
    web = devcluster.create(deployment("web"))
    stored = web["metadata"]["uid" if precondition == "uid" else "resourceVersion"]
    options = {"preconditions": {precondition: "1"}}
    with pytest.raises(ApiException) as exc:
        apps.delete_namespaced_deployment("web", "default", body=options)
    assert exc.value.status == 409
    assert status_of(exc) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'Operation cannot be fulfilled on Deployment.apps "web": the {field} in the'
        f" precondition (1) does not match the {field} in record ({stored}). {why}",
        "reason": "Conflict",
        "details": {"name": "web", "group": "apps", "kind": "Deployment"},
        "code": 409,
    }


# -- deletecollection -----------------------------------------------------------------------


def test_deletecollection_deletes_what_the_selectors_select(
    devcluster: DevCluster, apps: Any
) -> None:
    for name, tier in (("web", "front"), ("api", "back"), ("db", "back")):
        devcluster.create(deployment(name, labels={"tier": tier}))
    answer = call(
        devcluster,
        "DELETE",
        "/apis/apps/v1/namespaces/default/deployments?labelSelector=tier%3Dback",
    )
    listed = json.loads(answer.body)
    assert answer.status == 200
    assert listed["kind"] == "DeploymentList"
    assert [d["metadata"]["name"] for d in listed["items"]] == ["api", "db"]
    assert names(devcluster, "deployments") == ["web"]
    apps.delete_collection_namespaced_deployment("default", field_selector="metadata.name=web")
    assert names(devcluster, "deployments") == []


def test_deletecollection_of_pods_terminates_them(devcluster: DevCluster, core: Any) -> None:
    rolled_out(devcluster, replicas=3)
    before = set(names(devcluster, "pods"))
    core.delete_collection_namespaced_pod("default", label_selector="app=web")
    pods = {p["metadata"]["name"]: p for p in devcluster.list("pods", "default")}
    assert all(pods[name]["metadata"].get("deletionTimestamp") for name in before)
    # The ReplicaSet replaces them at once, as on a cluster.
    assert len(set(pods) - before) == 3


def test_deletecollection_of_namespaces_is_not_allowed(devcluster: DevCluster) -> None:
    answer = call(devcluster, "DELETE", "/api/v1/namespaces")
    assert answer.status == 405
    assert devcluster.get("namespaces", "", "default") is not None
