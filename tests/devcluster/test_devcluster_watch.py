"""WATCH through the kubernetes client's Watch helper and a raw stream."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

import pytest
from devcluster.manifests import deployment
from devcluster.server import ApiServer
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from devcluster import DevCluster


def new_watch() -> Any:
    return watch.Watch()  # type: ignore[no-untyped-call]


def first_lines(apps: Any, count: int, **query: Any) -> list[dict[str, Any]]:
    """The first ``count`` events of a watch, read from the raw stream, which is then closed."""
    response = apps.list_namespaced_deployment(
        "default", watch=True, _preload_content=False, **query
    )
    lines: list[dict[str, Any]] = []
    buffer = b""
    try:
        while len(lines) < count:
            chunk = response.read1(65536) if hasattr(response, "read1") else response.read(1)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer and len(lines) < count:
                line, buffer = buffer.split(b"\n", 1)
                lines.append(json.loads(line))
    finally:
        response.close()
    return lines


def all_lines(apps: Any, **query: Any) -> list[dict[str, Any]]:
    """Every event of a watch the server ends by itself (410 or timeoutSeconds)."""
    response = apps.list_namespaced_deployment(
        "default", watch=True, _preload_content=False, **query
    )
    return [json.loads(line) for line in response.data.decode().splitlines() if line]


def names(lines: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(x["type"], x["object"]["metadata"].get("name", "")) for x in lines]


def test_watch_without_resource_version_starts_with_added(
    devcluster: DevCluster, apps: Any
) -> None:
    devcluster.create(deployment("a"))
    devcluster.create(deployment("b"))
    assert names(first_lines(apps, 2)) == [("ADDED", "a"), ("ADDED", "b")]


def test_watch_from_a_resource_version_replays_what_came_after(
    devcluster: DevCluster, apps: Any
) -> None:
    a = devcluster.create(deployment("a"))
    devcluster.create(deployment("b"))
    devcluster.patch(
        "deployments", "default", "a", b'{"spec":{"replicas":2}}', "application/merge-patch+json"
    )
    devcluster.delete("deployments", "default", "b")
    # The controller writes status too: read until b's deletion shows up.
    lines = []
    for count in range(3, 12):
        lines = first_lines(apps, count, resource_version=a["metadata"]["resourceVersion"])
        if names(lines)[-1] == ("DELETED", "b"):
            break
    kinds = names(lines)
    assert kinds[0] == ("ADDED", "b")
    assert ("MODIFIED", "a") in kinds
    assert kinds[-1] == ("DELETED", "b")
    versions = [int(line["object"]["metadata"]["resourceVersion"]) for line in lines]
    assert versions == sorted(versions)


def test_watch_from_a_compacted_version_is_410_expired(devcluster: DevCluster, apps: Any) -> None:
    first = devcluster.create(deployment("a"))
    devcluster.create(deployment("b"))
    devcluster.compact()
    lines = all_lines(apps, resource_version=first["metadata"]["resourceVersion"])
    assert len(lines) == 1
    assert lines[0]["type"] == "ERROR"
    status = lines[0]["object"]
    assert status["code"] == 410
    assert status["reason"] == "Expired"
    rv = first["metadata"]["resourceVersion"]
    assert status["message"].startswith(f"too old resource version: {rv} (")
    assert status["kind"] == "Status"


def test_the_client_watch_raises_410_for_an_expired_version(
    devcluster: DevCluster, apps: Any
) -> None:
    first = devcluster.create(deployment("a"))
    devcluster.create(deployment("b"))
    devcluster.compact()
    stream = new_watch().stream(
        apps.list_namespaced_deployment,
        "default",
        resource_version=first["metadata"]["resourceVersion"],
    )
    with pytest.raises(ApiException) as exc:
        next(stream)
    assert exc.value.status == 410


def test_history_is_bounded_and_old_versions_expire() -> None:
    with DevCluster(tls=False, history=3) as cluster:
        first = cluster.create(deployment("a", replicas=0))
        for replicas in range(1, 6):
            body = json.dumps({"spec": {"replicas": replicas}}).encode()
            cluster.patch("deployments", "default", "a", body, "application/merge-patch+json")
        url = f"{cluster.url}/apis/apps/v1/namespaces/default/deployments?watch=1&resourceVersion="
        with urllib.request.urlopen(url + first["metadata"]["resourceVersion"]) as response:  # noqa: S310
            lines = [json.loads(line) for line in response.read().splitlines()]
    assert lines[0]["type"] == "ERROR"
    assert lines[0]["object"]["code"] == 410


def test_watch_sees_changes_as_they_happen(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("a"))
    seen: list[tuple[str, str]] = []
    stream = new_watch()
    for event in stream.stream(apps.list_namespaced_deployment, "default", timeout_seconds=30):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 1:
            devcluster.create(deployment("b"))
        elif len(seen) == 2:
            devcluster.delete("deployments", "default", "b")
        elif event["type"] == "DELETED":
            stream.stop()
    assert seen[:2] == [("ADDED", "a"), ("ADDED", "b")]
    assert seen[-1] == ("DELETED", "b")


def test_label_selector_applies_to_events(devcluster: DevCluster, apps: Any) -> None:
    start = devcluster.resource_version
    devcluster.create(deployment("a", labels={"tier": "web"}))
    devcluster.create(deployment("b", labels={"tier": "db"}))
    # a leaves the selection: its watcher sees it DELETED.
    devcluster.patch(
        "deployments",
        "default",
        "a",
        b'{"metadata":{"labels":{"tier":"db"}}}',
        "application/merge-patch+json",
    )
    lines = first_lines(apps, 2, resource_version=str(start), label_selector="tier=web")
    assert names(lines) == [
        ("ADDED", "a"),
        ("DELETED", "a"),
    ]


def test_field_selector_applies_to_events(devcluster: DevCluster, apps: Any) -> None:
    start = devcluster.resource_version
    devcluster.create(deployment("a"))
    devcluster.create(deployment("b"))
    devcluster.create(deployment("c"))
    devcluster.delete("deployments", "default", "b")
    lines = first_lines(apps, 2, field_selector="metadata.name=b", resource_version=str(start))
    assert names(lines) == [("ADDED", "b"), ("DELETED", "b")]


def test_timeout_seconds_ends_the_stream(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("a"))
    lines = all_lines(apps, timeout_seconds=1)
    assert names(lines) == [("ADDED", "a")]


def test_bookmarks_carry_only_the_resource_version() -> None:
    with DevCluster(tls=False, bookmark_interval=0.01) as cluster:
        url = (
            f"{cluster.url}/apis/apps/v1/namespaces/default/deployments"
            "?watch=true&allowWatchBookmarks=true&timeoutSeconds=1"
        )
        with urllib.request.urlopen(url) as response:  # noqa: S310
            first = json.loads(response.readline())
    assert first == {
        "type": "BOOKMARK",
        "object": {
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {"resourceVersion": str(cluster_rv(first))},
        },
    }


def cluster_rv(event: dict[str, Any]) -> int:
    return int(event["object"]["metadata"]["resourceVersion"])


def test_watch_list_ends_its_initial_events_with_a_bookmark(
    devcluster: DevCluster, apps: Any
) -> None:
    devcluster.create(deployment("a"))
    lines = first_lines(
        apps,
        2,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        allow_watch_bookmarks=True,
    )
    assert [x["type"] for x in lines] == ["ADDED", "BOOKMARK"]
    mark = lines[1]["object"]["metadata"]
    assert mark["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(mark["resourceVersion"]) == devcluster.resource_version


def test_a_gone_watcher_is_forgotten(devcluster: DevCluster, apps: Any) -> None:
    response = apps.list_namespaced_deployment(
        "default", watch=True, _preload_content=False, timeout_seconds=60
    )
    assert devcluster.open_watches == 1
    response.close()
    # The server learns of the closed connection asynchronously; poll briefly.
    for _ in range(300):
        if devcluster.open_watches == 0:
            break
        time.sleep(0.01)
    assert devcluster.open_watches == 0


def test_watch_as_table_sends_one_row_tables(devcluster: DevCluster, apps: Any) -> None:
    devcluster.create(deployment("a"))
    response = apps.list_namespaced_deployment(
        "default",
        watch=True,
        _preload_content=False,
        _headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    )
    try:
        event = json.loads(response.readline())
    finally:
        response.close()
    assert event["type"] == "ADDED"
    assert event["object"]["kind"] == "Table"
    assert event["object"]["rows"][0]["cells"][0] == "a"


def test_a_restart_ends_the_watches_of_the_server_that_stopped(
    devcluster: DevCluster, apps: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store outlives a stop; the watches of the stopped server must not stay in it
    (a write would hand their events to a closed event loop, and fail), even when their
    handlers are too slow to end before the server's loop stops (a loaded machine)."""
    stream = ApiServer._stream

    async def slow_to_end(*args: Any) -> None:
        try:
            await stream(*args)
        except asyncio.CancelledError:
            await asyncio.sleep(5)  # longer than the server's shutdown allows
            raise

    monkeypatch.setattr(ApiServer, "_stream", slow_to_end)
    watches = [
        apps.list_namespaced_deployment(
            "default", watch=True, _preload_content=False, timeout_seconds=60
        )
        for _ in range(3)
    ]
    assert devcluster.open_watches == 3
    try:
        devcluster.stop()
        devcluster.start()
        assert devcluster.open_watches == 0
        devcluster.create(deployment("after-the-restart"))  # no watch of the old server hears it
        devcluster.advance(60)
        assert devcluster.get("deployments", "default", "after-the-restart") is not None
    finally:
        for response in watches:
            response.close()
