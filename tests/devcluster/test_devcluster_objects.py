"""Deployments, ReplicaSets, Pods and Namespaces through the unchanged kubernetes client."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest
from devcluster.manifests import deployment, namespace
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devcluster import ApiError, DevCluster


def status_of(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.value.body or "")
    return body


def raw(apps: Any, name: str, ns: str = "default") -> dict[str, Any]:
    response = apps.read_namespaced_deployment(name, ns, _preload_content=False)
    data: dict[str, Any] = json.loads(response.data)
    return data


# -- GET / LIST ------------------------------------------------------------------


def test_get_returns_the_created_deployment_with_server_metadata(
    devcluster: DevCluster, apps: Any
) -> None:
    devcluster.create(deployment("web", containers={"app": "nginx:1.25"}))
    got = apps.read_namespaced_deployment("web", "default")
    assert got.metadata.name == "web"
    assert got.metadata.uid
    assert got.metadata.creation_timestamp is not None
    assert got.metadata.generation == 1
    assert int(got.metadata.resource_version) > 0
    assert got.spec.template.spec.containers[0].image == "nginx:1.25"
    # Defaults are filled in as kube-apiserver does.
    assert got.spec.strategy.type == "RollingUpdate"
    assert got.spec.progress_deadline_seconds == 600
    assert got.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"


def test_get_missing_deployment_is_404_with_the_real_status_body(apps: Any) -> None:
    with pytest.raises(ApiException) as exc:
        apps.read_namespaced_deployment("web", "default")
    assert exc.value.status == 404
    assert status_of(exc) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "web" not found',
        "reason": "NotFound",
        "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 404,
    }


def test_get_in_a_missing_namespace_names_the_object(apps: Any) -> None:
    with pytest.raises(ApiException) as exc:
        apps.read_namespaced_deployment("web", "nowhere")
    assert status_of(exc)["message"] == 'deployments.apps "web" not found'


def test_core_resources_have_no_group_in_details(core: Any) -> None:
    with pytest.raises(ApiException) as exc:
        core.read_namespace("nowhere")
    assert status_of(exc)["details"] == {"name": "nowhere", "kind": "namespaces"}
    assert status_of(exc)["message"] == 'namespaces "nowhere" not found'


def test_list_one_namespace_and_all(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create_namespace("team")
    devcluster.create(deployment("a"))
    devcluster.create(deployment("b", namespace="team"))
    assert [d.metadata.name for d in apps.list_namespaced_deployment("default").items] == ["a"]
    everywhere = apps.list_deployment_for_all_namespaces()
    assert sorted(d.metadata.name for d in everywhere.items) == ["a", "b"]
    assert int(everywhere.metadata.resource_version) == devcluster.resource_version


def test_list_items_carry_no_kind(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("a"))
    response = apps.list_namespaced_deployment("default", _preload_content=False)
    body = json.loads(response.data)
    assert body["kind"] == "DeploymentList"
    assert body["apiVersion"] == "apps/v1"
    assert "kind" not in body["items"][0]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", ["a"]),
        ("tier==web", ["a"]),
        ("tier!=web", ["b", "c"]),
        ("tier in (web,db)", ["a", "b"]),
        ("tier notin (web)", ["b", "c"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c"]),
        ("tier=db,app=b", ["b"]),
    ],
)
def test_list_by_label_selector(
    devcluster: DevCluster, apps: Any, selector: str, expected: list[str]
) -> None:
    devcluster.create(deployment("a", labels={"tier": "web"}))
    devcluster.create(deployment("b", labels={"tier": "db"}))
    devcluster.create(deployment("c"))
    found = apps.list_namespaced_deployment("default", label_selector=selector)
    assert [d.metadata.name for d in found.items] == expected


def test_list_by_field_selector(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create_namespace("team")
    devcluster.create(deployment("a"))
    devcluster.create(deployment("b"))
    devcluster.create(deployment("a", namespace="team"))
    by_name = apps.list_deployment_for_all_namespaces(field_selector="metadata.name=a")
    assert sorted(d.metadata.namespace for d in by_name.items) == ["default", "team"]
    by_ns = apps.list_deployment_for_all_namespaces(field_selector="metadata.namespace=team")
    assert [d.metadata.name for d in by_ns.items] == ["a"]
    one = apps.list_namespaced_deployment("default", field_selector="metadata.name=b")
    assert [d.metadata.name for d in one.items] == ["b"]


def test_unknown_field_selector_is_400_in_apimachinerys_words(apps: Any) -> None:
    # apps/v1 registers no field label conversion: DefaultMetaV1FieldSelectorConversion.
    with pytest.raises(ApiException) as exc:
        apps.list_namespaced_deployment("default", field_selector="spec.paused=true")
    assert exc.value.status == 400
    assert status_of(exc) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": '"spec.paused" is not a known field selector: only "metadata.name",'
        ' "metadata.namespace"',
        "reason": "BadRequest",
        "code": 400,
    }


def test_unknown_pod_field_selector_is_400_field_label_not_supported(core: Any) -> None:
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod("default", field_selector="status.ready=true")
    assert exc.value.status == 400
    assert status_of(exc)["message"] == "field label not supported: status.ready"


def test_pods_by_phase_and_node(devcluster: DevCluster, core: Any) -> None:
    devcluster.create(deployment("web", replicas=2))
    devcluster.advance(5)
    waiting = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unscheduled"},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
    }
    core.create_namespaced_pod("default", waiting)
    running = core.list_namespaced_pod("default", field_selector="status.phase=Running")
    assert len(running.items) == 2
    assert all(p.metadata.name.startswith("web-") for p in running.items)
    on_node = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=devcluster")
    assert sorted(p.metadata.name for p in on_node.items) == sorted(
        p.metadata.name for p in running.items
    )
    nowhere = core.list_namespaced_pod(
        "default", field_selector="spec.nodeName=,metadata.name=unscheduled"
    )
    assert [p.metadata.name for p in nowhere.items] == ["unscheduled"]


def test_list_in_a_missing_namespace_is_empty(apps: Any) -> None:
    assert apps.list_namespaced_deployment("nowhere").items == []


def test_replicasets_and_pods_are_listed_by_label(
    devcluster: DevCluster, apps: Any, core: Any
) -> None:
    devcluster.create(deployment("web", replicas=2))
    devcluster.create(deployment("other"))
    devcluster.advance(10)
    rss = apps.list_namespaced_replica_set("default", label_selector="app=web").items
    assert len(rss) == 1
    rs = apps.read_namespaced_replica_set(rss[0].metadata.name, "default")
    assert rs.metadata.owner_references[0].name == "web"
    pods = core.list_namespaced_pod("default", label_selector="app=web").items
    assert len(pods) == 2
    assert all(p.metadata.labels["pod-template-hash"] for p in pods)


def test_namespaces_get_and_list(devcluster: DevCluster, core: Any) -> None:
    devcluster.create_namespace("team")
    assert core.read_namespace("team").status.phase == "Active"
    names = [n.metadata.name for n in core.list_namespace().items]
    assert {"default", "kube-system", "team"} <= set(names)


# -- CREATE ----------------------------------------------------------------------


def test_create_returns_201_and_stores(devcluster: DevCluster, apps: Any) -> None:
    body = deployment("web")
    _, code, _ = apps.create_namespaced_deployment_with_http_info("default", body)
    assert code == 201
    stored = devcluster.get("deployments", "default", "web")
    assert stored is not None
    assert stored["status"] == {} or "observedGeneration" in stored["status"]


def test_create_twice_is_409_already_exists(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web"))
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment("default", deployment("web"))
    assert exc.value.status == 409
    assert status_of(exc)["reason"] == "AlreadyExists"
    assert status_of(exc)["message"] == 'deployments.apps "web" already exists'


def test_create_in_a_missing_namespace_names_the_namespace(apps: Any) -> None:
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment("nowhere", deployment("web", namespace="nowhere"))
    assert exc.value.status == 404
    assert status_of(exc)["message"] == 'namespaces "nowhere" not found'
    assert status_of(exc)["details"] == {"name": "nowhere", "kind": "namespaces"}


def test_python_api_create_refuses_a_missing_namespace(devcluster: DevCluster) -> None:
    with pytest.raises(ApiError) as exc:
        devcluster.create(deployment("web", namespace="nowhere"))
    assert exc.value.code == 404


def test_status_in_a_create_is_ignored(devcluster: DevCluster, apps: Any) -> None:
    body = deployment("web")
    body["status"] = {"replicas": 7, "observedGeneration": 9}
    apps.create_namespaced_deployment("default", body)
    assert (devcluster.get("deployments", "default", "web") or {})["status"] == {}


def test_empty_image_is_422_with_causes(apps: Any) -> None:
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment("default", deployment("web", containers={"app": ""}))
    assert exc.value.status == 422
    assert status_of(exc) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Deployment.apps "web" is invalid: '
        "spec.template.spec.containers[0].image: Required value",
        "reason": "Invalid",
        "details": {
            "name": "web",
            "group": "apps",
            "kind": "Deployment",
            "causes": [
                {
                    "reason": "FieldValueRequired",
                    "message": "Required value",
                    "field": "spec.template.spec.containers[0].image",
                }
            ],
        },
        "code": 422,
    }


def test_invalid_name_is_422(apps: Any) -> None:
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment("default", deployment("Web_1"))
    cause = status_of(exc)["details"]["causes"][0]
    assert cause["reason"] == "FieldValueInvalid"
    assert cause["field"] == "metadata.name"
    assert cause["message"].startswith('Invalid value: "Web_1": a lowercase RFC 1123 subdomain')


def test_several_problems_are_listed_in_brackets(apps: Any) -> None:
    body = deployment("web", containers={"app": "", "App": "x"})
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment("default", body)
    status = status_of(exc)
    assert len(status["details"]["causes"]) == 2
    assert status["message"].startswith('Deployment.apps "web" is invalid: [')


def test_selector_must_match_template_labels(apps: Any) -> None:
    body = deployment("web")
    body["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment("default", body)
    cause = status_of(exc)["details"]["causes"][0]
    assert cause["field"] == "spec.template.metadata.labels"
    assert "`selector` does not match template `labels`" in cause["message"]


def test_dry_run_create_stores_nothing(devcluster: DevCluster, apps: Any) -> None:
    before = devcluster.resource_version
    created = apps.create_namespaced_deployment("default", deployment("web"), dry_run="All")
    assert created.metadata.uid
    assert devcluster.get("deployments", "default", "web") is None
    assert devcluster.resource_version == before


def test_dry_run_create_is_still_validated(apps: Any) -> None:
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment(
            "default", deployment("web", containers={"app": ""}), dry_run="All"
        )
    assert exc.value.status == 422


# -- PUT -------------------------------------------------------------------------


def test_put_with_a_stale_resource_version_is_409(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web"))
    old = raw(apps, "web")
    fresh = raw(apps, "web")
    fresh["metadata"]["labels"]["x"] = "1"
    apps.replace_namespaced_deployment("web", "default", fresh)
    old["metadata"]["labels"]["x"] = "2"
    with pytest.raises(ApiException) as exc:
        apps.replace_namespaced_deployment("web", "default", old)
    assert exc.value.status == 409
    assert status_of(exc) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Operation cannot be fulfilled on deployments.apps "web": the object has been'
        " modified; please apply your changes to the latest version and try again",
        "reason": "Conflict",
        "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 409,
    }


def test_put_without_resource_version_overwrites(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web"))
    body = deployment("web", containers={"app": "nginx:1.26"})
    replaced = apps.replace_namespaced_deployment("web", "default", body)
    assert replaced.spec.template.spec.containers[0].image == "nginx:1.26"
    assert replaced.metadata.generation == 2


def test_put_of_a_missing_object_is_404(apps: Any) -> None:
    with pytest.raises(ApiException) as exc:
        apps.replace_namespaced_deployment("web", "default", deployment("web"))
    assert exc.value.status == 404


def test_generation_counts_spec_and_annotation_changes_only(
    devcluster: DevCluster, apps: Any
) -> None:
    devcluster.create(deployment("web"))
    body = raw(apps, "web")
    body["metadata"]["labels"]["team"] = "a"
    assert apps.replace_namespaced_deployment("web", "default", body).metadata.generation == 1
    body = raw(apps, "web")
    body["metadata"]["annotations"] = {"kubernetes.io/change-cause": "x"}
    assert apps.replace_namespaced_deployment("web", "default", body).metadata.generation == 2
    body = raw(apps, "web")
    body["spec"]["replicas"] = 3
    assert apps.replace_namespaced_deployment("web", "default", body).metadata.generation == 3


def test_noop_put_keeps_the_resource_version(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web"))
    body = raw(apps, "web")
    again = apps.replace_namespaced_deployment("web", "default", body)
    assert again.metadata.resource_version == body["metadata"]["resourceVersion"]


def test_status_written_through_the_main_endpoint_is_ignored(
    devcluster: DevCluster, apps: Any
) -> None:
    devcluster.create(deployment("web"))
    body = raw(apps, "web")
    body["status"] = {"replicas": 42}
    apps.replace_namespaced_deployment("web", "default", body)
    assert raw(apps, "web").get("status", {}).get("replicas") != 42


def test_status_endpoint_writes_only_status(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web"))
    body = raw(apps, "web")
    body["status"] = {"replicas": 42}
    body["spec"]["replicas"] = 5
    apps.replace_namespaced_deployment_status("web", "default", body)
    after = raw(apps, "web")
    assert after["status"]["replicas"] == 42
    assert after["spec"]["replicas"] == 1
    assert after["metadata"]["generation"] == 1
    assert apps.read_namespaced_deployment_status("web", "default").status.replicas == 42


def test_put_changing_the_selector_is_422(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web"))
    body = raw(apps, "web")
    body["spec"]["selector"]["matchLabels"]["extra"] = "x"
    body["spec"]["template"]["metadata"]["labels"]["extra"] = "x"
    with pytest.raises(ApiException) as exc:
        apps.replace_namespaced_deployment("web", "default", body)
    assert status_of(exc)["details"]["causes"][0]["message"].endswith("field is immutable")


def test_dry_run_put_changes_nothing(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web"))
    before = devcluster.resource_version
    body = deployment("web", containers={"app": "nginx:1.26"})
    answer = apps.replace_namespaced_deployment("web", "default", body, dry_run="All")
    assert answer.spec.template.spec.containers[0].image == "nginx:1.26"
    assert raw(apps, "web")["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert devcluster.resource_version == before


# -- PATCH -----------------------------------------------------------------------


def test_strategic_merge_patch_keeps_other_containers(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web", containers={"app": "nginx:1.25", "side": "busybox"}))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}}
    patched = apps.patch_namespaced_deployment("web", "default", patch)
    images = [(c.name, c.image) for c in patched.spec.template.spec.containers]
    assert images == [("app", "nginx:2"), ("side", "busybox")]
    assert patched.metadata.generation == 2


def test_json_patch_with_a_failed_test_is_422(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web"))
    ops = [
        {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "nope"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "x:1"},
    ]
    with pytest.raises(ApiException) as exc:
        patch_raw(apps, "web", ops, "application/json-patch+json")
    assert exc.value.status == 422
    # NewGenericServerResponse(422, ..., false) in the patch handler: the library's words
    # ("test failed") are dropped, no causes, and an empty details object.
    assert status_of(exc) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "the server rejected our request due to an error in our request",
        "reason": "Invalid",
        "details": {},
        "code": 422,
    }
    got = devcluster.get("deployments", "default", "web") or {}
    assert got["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"


def patch_raw(apps: Any, name: str, body: Any, content_type: str) -> Any:
    response = apps.patch_namespaced_deployment(
        name, "default", body, _content_type=content_type, _preload_content=False
    )
    return json.loads(response.data)


def test_json_patch_replaces_the_image(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web"))
    ops = [
        {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "app"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:2"},
    ]
    patched = patch_raw(apps, "web", ops, "application/json-patch+json")
    assert patched["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"


def test_merge_patch_replaces_lists_whole(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web", containers={"app": "nginx:1.25", "side": "busybox"}))
    body = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}}
    patched = patch_raw(apps, "web", body, "application/merge-patch+json")
    assert [c["name"] for c in patched["spec"]["template"]["spec"]["containers"]] == ["app"]


def test_unknown_patch_type_is_415(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web"))
    with pytest.raises(ApiException) as exc:
        patch_raw(apps, "web", {"spec": {}}, "application/json")
    assert exc.value.status == 415
    assert status_of(exc) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "the body of the request was in an unknown format - accepted media types"
        " include: application/json-patch+json, application/merge-patch+json,"
        " application/apply-patch+yaml, application/strategic-merge-patch+json",
        "reason": "UnsupportedMediaType",
        "code": 415,
    }


def test_patch_with_a_stale_resource_version_is_409(devcluster: DevCluster, apps: Any) -> None:
    created = devcluster.create(deployment("web"))
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 2}})
    stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}}
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment("web", "default", {**stale, "spec": {"replicas": 3}})
    assert exc.value.status == 409
    assert status_of(exc)["reason"] == "Conflict"


def test_patch_with_the_current_resource_version_applies(devcluster: DevCluster, apps: Any) -> None:
    created = devcluster.create(deployment("web"))
    current = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}}
    patched = apps.patch_namespaced_deployment(
        "web", "default", {**current, "spec": {"replicas": 3}}
    )
    assert patched.spec.replicas == 3


def test_noop_patch_keeps_the_resource_version(devcluster: DevCluster, apps: Any) -> None:
    created = devcluster.create(deployment("web"))
    rv = created["metadata"]["resourceVersion"]
    patched = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 1}})
    assert patched.metadata.resource_version == rv
    assert devcluster.resource_version == int(rv)


def test_dry_run_patch_changes_nothing(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web"))
    before = devcluster.resource_version
    answer = apps.patch_namespaced_deployment(
        "web", "default", {"spec": {"replicas": 4}}, dry_run="All"
    )
    assert answer.spec.replicas == 4
    assert (devcluster.get("deployments", "default", "web") or {})["spec"]["replicas"] == 1
    assert devcluster.resource_version == before


def test_patch_making_the_image_empty_is_422(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web"))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": ""}]}}}}
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment("web", "default", patch)
    assert exc.value.status == 422
    assert status_of(exc)["details"]["causes"][0]["field"] == (
        "spec.template.spec.containers[0].image"
    )


def test_patch_of_status_through_main_endpoint_is_ignored(
    devcluster: DevCluster, apps: Any
) -> None:
    created = devcluster.create(deployment("web"))
    patched = apps.patch_namespaced_deployment("web", "default", {"status": {"replicas": 9}})
    assert patched.metadata.resource_version == created["metadata"]["resourceVersion"]
    status = apps.patch_namespaced_deployment_status("web", "default", {"status": {"replicas": 9}})
    assert status.status.replicas == 9


# -- DELETE ----------------------------------------------------------------------


def test_delete_answers_success_and_collects_owned_objects(
    devcluster: DevCluster, apps: Any, core: Any
) -> None:
    devcluster.create(deployment("web", replicas=2))
    devcluster.advance(5)
    assert core.list_namespaced_pod("default").items
    status = apps.delete_namespaced_deployment("web", "default")
    assert status["kind"] == "Status"
    assert status["status"] == "Success"
    assert status["details"]["name"] == "web"
    assert devcluster.get("deployments", "default", "web") is None
    assert apps.list_namespaced_replica_set("default").items == []
    # The garbage collector deletes the Pods as any client would: they terminate first.
    pods = core.list_namespaced_pod("default").items
    assert len(pods) == 2
    assert all(pod.metadata.deletion_timestamp is not None for pod in pods)
    devcluster.advance(5)
    assert core.list_namespaced_pod("default").items == []


def test_delete_missing_is_404(apps: Any) -> None:
    with pytest.raises(ApiException) as exc:
        apps.delete_namespaced_deployment("web", "default")
    assert exc.value.status == 404


def test_delete_with_a_wrong_precondition_is_409(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web"))
    options = client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version="1"))
    with pytest.raises(ApiException) as exc:
        apps.delete_namespaced_deployment("web", "default", body=options)
    assert exc.value.status == 409
    assert devcluster.get("deployments", "default", "web") is not None


def test_namespace_create_and_delete(devcluster: DevCluster, core: Any) -> None:
    core.create_namespace(namespace("team"))
    devcluster.create(deployment("web", namespace="team"))
    core.delete_namespace("team")
    assert devcluster.get("namespaces", "", "team") is None
    assert devcluster.get("deployments", "team", "web") is None


def test_list_as_table_for_kubectl(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web", containers={"app": "nginx:1.25", "side": "busybox"}))
    response = apps.list_namespaced_deployment(
        "default",
        _preload_content=False,
        _headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
    )
    table = json.loads(response.data)
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]][:5] == [
        "Name",
        "Ready",
        "Up-to-date",
        "Available",
        "Age",
    ]
    assert table["rows"][0]["cells"][:2] == ["web", "0/1"]
    assert table["rows"][0]["cells"][6] == "nginx:1.25,busybox"
    assert table["rows"][0]["object"]["metadata"]["namespace"] == "default"


def test_scale_subresource(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("web"))
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert (scale.spec.replicas, scale.status.selector) == (1, "app=web")
    scaled = apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
    assert scaled.spec.replicas == 4
    got = devcluster.get("deployments", "default", "web") or {}
    assert (got["spec"]["replicas"], got["metadata"]["generation"]) == (4, 2)
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": -1}})
    assert status_of(exc)["message"] == (
        'Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1:'
        " must be greater than or equal to 0"
    )


def test_delete_of_a_subresource_is_refused(devcluster: DevCluster) -> None:
    devcluster.create(deployment("web"))
    request = urllib.request.Request(  # noqa: S310
        f"{devcluster.url}/apis/apps/v1/namespaces/default/deployments/web/status",
        method="DELETE",
        headers={"Authorization": f"Bearer {devcluster.token}"},
    )
    context = ssl.create_default_context(cafile=str(devcluster.ca_path))
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(request, context=context)  # noqa: S310
    assert exc.value.code == 405
    assert devcluster.get("deployments", "default", "web") is not None
