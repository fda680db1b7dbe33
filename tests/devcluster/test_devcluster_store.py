"""The store's indexes: what a LIST reads and which watches a write wakes, at scale (issue 16)."""

from __future__ import annotations

from typing import Any

import pytest
from devcluster.resources import PODS, REPLICASETS
from devcluster.selectors import Selection
from devcluster.store import Event, Interest, Store

from devcluster import DevCluster

APPS = 1000
NS = "scale"


def labelled(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, "labels": labels}, "spec": {}}


@pytest.fixture(scope="module")
def crowded() -> Store:
    """One namespace with 1,000 Deployments, a ReplicaSet each and three Pods per ReplicaSet."""
    store = Store(lambda: 0.0)
    for i in range(APPS):
        app = {"app": f"web-{i}"}
        store.create("deployments", labelled(f"web-{i}", app))
        store.create("replicasets", labelled(f"web-{i}-5d9f", {**app, "pod-template-hash": "5d9f"}))
        for p in range(3):
            pod = labelled(f"web-{i}-5d9f-{p}", {**app, "pod-template-hash": "5d9f"})
            store.create("pods", pod)
    return store


def test_a_label_list_reads_only_the_objects_that_carry_the_label(crowded: Store) -> None:
    before = crowded.examined
    pods = crowded.select("pods", NS, "app", frozenset({"web-17"}))
    assert [p["metadata"]["name"] for p in pods] == [f"web-17-5d9f-{p}" for p in range(3)]
    assert crowded.examined - before == 3  # not 3,000


def test_a_selector_with_several_requirements_starts_from_the_narrowest(crowded: Store) -> None:
    selection = Selection(PODS, "pod-template-hash=5d9f,app=web-400", None)
    assert selection.label_hint() == ("pod-template-hash", frozenset({"5d9f"}))
    narrow = Selection(REPLICASETS, "app in (web-1,web-2)", None).label_hint()
    assert narrow is not None
    before = crowded.examined
    found = crowded.select("replicasets", NS, *narrow)
    assert [r["metadata"]["name"] for r in found] == ["web-1-5d9f", "web-2-5d9f"]
    assert crowded.examined - before == 2


def test_the_index_follows_label_changes_and_deletions() -> None:
    store = Store(lambda: 0.0)
    store.create("pods", labelled("a", {"app": "web"}))
    store.create("pods", labelled("b", {"app": "web"}))
    moved = store.get("pods", NS, "a") or {}
    store.update("pods", {**moved, "metadata": {**moved["metadata"], "labels": {"app": "api"}}})
    store.delete("pods", NS, "b")
    assert store.select("pods", NS, "app", frozenset({"web"})) == []
    assert [p["metadata"]["name"] for p in store.select("pods", NS, "app", None)] == ["a"]
    assert store.select("pods", "elsewhere", "app", None) == []


def test_a_write_reaches_only_the_watches_that_can_show_it(crowded: Store) -> None:
    heard: list[str] = []
    listeners = []
    for i in range(200):

        def listener(event: Event, i: int = i) -> None:
            heard.append(f"web-{i}")

        listeners.append(listener)
        crowded.add_listener(listener, Interest("pods", NS, label=("app", f"web-{i}")))
    try:
        before = crowded.deliveries
        pod = crowded.get("pods", NS, "web-7-5d9f-0") or {}
        crowded.update("pods", {**pod, "status": {"phase": "Running"}})
        assert heard == ["web-7"]
        assert crowded.deliveries - before == 1  # not 200
    finally:
        for listener in listeners:
            crowded.remove_listener(listener)
    assert crowded.listener_count == 0


def test_a_watch_hears_an_object_leave_its_label() -> None:
    store = Store(lambda: 0.0)
    store.create("pods", labelled("a", {"app": "web"}))
    heard: list[tuple[str, dict[str, str]]] = []

    def listener(event: Event) -> None:
        heard.append((event.type, event.object["metadata"]["labels"]))

    store.add_listener(listener, Interest("pods", NS, label=("app", "web")))
    pod = store.get("pods", NS, "a") or {}
    store.update("pods", {**pod, "metadata": {**pod["metadata"], "labels": {"app": "api"}}})
    store.update("pods", {**pod, "metadata": {**pod["metadata"], "labels": {"app": "db"}}})
    # The first change takes it out of the selection (the server reports DELETED); the
    # second cannot concern the watch.
    assert heard == [("MODIFIED", {"app": "api"})]


def test_label_lists_through_the_server_use_the_index(devcluster: DevCluster, apps: Any) -> None:
    for i in range(20):
        devcluster.create(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": f"web-{i}", "labels": {"app": f"web-{i}"}},
                "spec": {
                    "selector": {"matchLabels": {"app": f"web-{i}"}},
                    "template": {
                        "metadata": {"labels": {"app": f"web-{i}"}},
                        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
                    },
                },
            }
        )
    before = devcluster.store.examined
    found = apps.list_namespaced_deployment("default", label_selector="app=web-3")
    assert [d.metadata.name for d in found.items] == ["web-3"]
    assert devcluster.store.examined - before == 1
