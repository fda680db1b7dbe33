"""core/v1 Events as kube-apiserver serves them: what `kubectl describe` and `get events` read."""

from __future__ import annotations

import json
from typing import Any

import pytest
from devcluster.manifests import deployment
from devcluster.timestamps import micro_time_text, time_text
from kubernetes.client.exceptions import ApiException

from devcluster import DevCluster
from tests.devcluster.raw import call

EVENTS = "/api/v1/namespaces/default/events"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def event(name: str, involved: dict[str, Any], reason: str = "Rollout", **fields: Any) -> Any:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": involved,
        "reason": reason,
        "message": f"{reason} happened",
        "type": "Normal",
        "source": {"component": "kubeupdate"},
        "firstTimestamp": "2026-12-03T11:20:58Z",
        "lastTimestamp": "2026-12-03T11:20:58Z",
        "count": 1,
        **fields,
    }


def about(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "kind": obj["kind"],
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
        "apiVersion": obj["apiVersion"],
    }


def test_describe_finds_an_objects_events_by_its_involved_object(
    devcluster: DevCluster, core: Any
) -> None:
    web = devcluster.create(deployment("web"))
    api = devcluster.create(deployment("api"))
    core.create_namespaced_event("default", event("web.1", about(web)))
    core.create_namespaced_event("default", event("api.1", about(api)))
    # The field selector kubectl describe sends (pkg/describe: searchEvents).
    selector = (
        f"involvedObject.name=web,involvedObject.namespace=default,"
        f"involvedObject.kind=Deployment,involvedObject.uid={web['metadata']['uid']}"
    )
    found = core.list_namespaced_event("default", field_selector=selector)
    assert [e.metadata.name for e in found.items if e.source.component == "kubeupdate"] == ["web.1"]
    assert all(e.involved_object.name == "web" for e in found.items)
    by_reason = core.list_namespaced_event(
        "default", field_selector="reason=Rollout,source=kubeupdate"
    )
    assert sorted(e.metadata.name for e in by_reason.items) == ["api.1", "web.1"]


def test_the_controllers_events_are_served_too(devcluster: DevCluster, core: Any) -> None:
    devcluster.create(deployment("web"))
    devcluster.advance(5)
    reasons = {
        e.reason
        for e in core.list_namespaced_event(
            "default", field_selector="involvedObject.kind=Deployment"
        ).items
    }
    assert "ScalingReplicaSet" in reasons


def test_an_event_in_another_namespace_than_its_object_is_refused(
    devcluster: DevCluster, core: Any
) -> None:
    web = devcluster.create(deployment("web"))
    devcluster.create_namespace("team")
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_event(
            "team", {**event("web.1", about(web)), "metadata": {"name": "web.1"}}
        )
    assert exc.value.status == 422
    assert json.loads(exc.value.body or "")["message"] == (
        'Event "web.1" is invalid: involvedObject.namespace: Invalid value: "default":'
        " does not match event.namespace"
    )


def test_events_print_as_kube_apiserver_prints_them(devcluster: DevCluster) -> None:
    web = devcluster.create(deployment("web"))
    now = int(devcluster.clock.now())  # whole seconds: ages print without rounding doubts

    body = event(
        "web.1",
        {**about(web), "fieldPath": "spec.containers{app}"},
        firstTimestamp=time_text(now - 300),
        lastTimestamp=time_text(now - 30),
        count=4,
        message="  rolled out  ",
    )
    call(devcluster, "POST", EVENTS, json.dumps(body).encode(), "application/json")
    newer = event("web.2", about(web), firstTimestamp=None, lastTimestamp=None, count=None)
    newer |= {"eventTime": micro_time_text(now - 10), "source": None}
    newer |= {"reportingComponent": "kubeupdate", "reportingInstance": "replica-a"}
    call(devcluster, "POST", EVENTS, json.dumps(newer).encode(), "application/json")
    answer = call(
        devcluster, "GET", f"{EVENTS}?fieldSelector=involvedObject.name%3Dweb", accept=TABLE
    )
    table = json.loads(answer.body)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Last Seen",
        "Type",
        "Reason",
        "Object",
        "Subobject",
        "Source",
        "Message",
        "First Seen",
        "Count",
        "Name",
    ]
    rows = {row["cells"][-1]: row["cells"] for row in table["rows"]}
    assert rows["web.1"] == [
        "30s",
        "Normal",
        "Rollout",
        "deployment/web",
        "spec.containers{app}",
        "kubeupdate",
        "rolled out",
        "5m",
        4,
        "web.1",
    ]
    assert rows["web.2"][:8] == [
        "10s",
        "Normal",
        "Rollout",
        "deployment/web",
        "",
        "kubeupdate, replica-a",
        "Rollout happened",
        "10s",
    ]
    assert rows["web.2"][8] == 1


def test_event_times_are_stored_in_their_canonical_form(devcluster: DevCluster, core: Any) -> None:
    web = devcluster.create(deployment("web"))
    body = event(
        "web.1",
        about(web),
        firstTimestamp="2026-12-03T12:20:58.9+01:00",
        eventTime="2026-12-03T11:20:58.123456Z",
    )
    call(devcluster, "POST", EVENTS, json.dumps(body).encode(), "application/json")
    stored = devcluster.get("events", "default", "web.1") or {}
    assert stored["firstTimestamp"] == "2026-12-03T11:20:58Z"
    assert stored["eventTime"] == "2026-12-03T11:20:58.123456Z"
    assert "status" not in stored
