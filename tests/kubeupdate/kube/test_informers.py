"""Shared informers against the devcluster: one list+watch for many readers.

Bare Pods (no controller owns them, so the devcluster's controllers leave them
alone) and Namespaces make exactly one watch event each, which lets a test
count wake-ups exactly. The devcluster's journal records every list and
watch the informers send.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack, asynccontextmanager
from typing import Any

import pytest
from devcluster.journal import Entry

from devcluster import DevCluster, faults
from kubeupdate.kube import errors
from kubeupdate.kube.api import PODS, Resource
from kubeupdate.kube.client import KubeClient
from kubeupdate.kube.credentials import Credentials
from kubeupdate.kube.informers import EVERYTHING, Informers, Label, Name, Owner, Reader

NS = "team"
PODS_PATH = f"/api/v1/namespaces/{NS}/pods"
NAMESPACES = Resource("v1", "namespaces", namespaced=False)


@asynccontextmanager
async def informers(cluster: DevCluster, **options: Any) -> AsyncIterator[Informers]:
    async with KubeClient(Credentials.from_kubeconfig(cluster.kubeconfig_path)) as client:
        shared = Informers(client, **options)
        try:
            yield shared
        finally:
            await shared.close()


class Wakes:
    """A wake callback that counts."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded, generously) for something another task or thread makes true."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def pod(name: str, *, owner: str = "", labels: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": NS, "labels": labels or {}}
    if owner:
        # Not a controller reference: the devcluster's garbage collector leaves it be.
        metadata["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": owner}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
    }


def lists_and_watches(cluster: DevCluster, path: str) -> tuple[list[Entry], list[Entry]]:
    entries = [e for e in cluster.journal if e.method == "GET" and e.path == path]
    watches = [e for e in entries if e.query.get("watch") == "true"]
    return [e for e in entries if e.query.get("watch") != "true"], watches


async def synced(reader: Reader) -> None:
    await eventually(lambda: reader.synced, f"{reader.key.describe()} listed")


async def test_readers_of_one_namespace_share_one_list_and_one_watch(
    devcluster: DevCluster,
) -> None:
    devcluster.create_namespace(NS)
    devcluster.create(pod("before"))
    async with informers(devcluster) as shared:
        with ExitStack() as stack:
            readers = [stack.enter_context(shared.read(PODS, NS, wake=Wakes())) for _ in range(200)]
            await synced(readers[0])
            await eventually(lambda: devcluster.open_watches == 1, "the watch reached the server")

            devcluster.create(pod("after"))
            await eventually(lambda: readers[-1].get("after") is not None, "the new Pod seen")

            assert {p["metadata"]["name"] for p in readers[0].objects()} == {"before", "after"}
            assert shared.open_watches == 1
            assert shared.readers == 200
            assert devcluster.open_watches == 1
            lists, _ = lists_and_watches(devcluster, PODS_PATH)
            assert len(lists) == 1
            assert shared.lists == 1


async def test_the_watch_asks_for_bookmarks(devcluster: DevCluster) -> None:
    devcluster.create_namespace(NS)
    async with informers(devcluster, watch_seconds=1) as shared:
        with shared.read(PODS, NS, wake=Wakes()) as reader:
            await synced(reader)
            # The journal records a watch when it ends: after watch_seconds.
            await eventually(lambda: bool(lists_and_watches(devcluster, PODS_PATH)[1]), "watched")

    _, watches = lists_and_watches(devcluster, PODS_PATH)
    assert watches[0].query["allowWatchBookmarks"] == "true"


async def test_bookmarks_move_a_quiet_watch_past_changes_elsewhere() -> None:
    with DevCluster(bookmark_interval=0.05) as cluster:
        cluster.create_namespace(NS)
        async with informers(cluster) as shared:
            with shared.read(PODS, NS, wake=Wakes()) as reader:
                await synced(reader)
                cluster.create_namespace("elsewhere")  # no event for this watch
                elsewhere = cluster.resource_version

                await eventually(
                    lambda: int(reader.resource_version or 0) >= elsewhere,
                    "a bookmark carried the watch past the other namespace's change",
                )


async def test_the_watch_stops_when_the_last_reader_leaves(devcluster: DevCluster) -> None:
    devcluster.create_namespace(NS)
    async with informers(devcluster, linger=0) as shared:
        with shared.read(PODS, NS, wake=Wakes()) as first:
            with shared.read(PODS, NS, wake=Wakes()):
                await synced(first)
                await eventually(lambda: devcluster.open_watches == 1, "watching")
            assert shared.open_watches == 1  # one reader is left

        await eventually(lambda: shared.open_watches == 0, "the informer stopped")
        await eventually(lambda: devcluster.open_watches == 0, "the server saw the watch end")


async def test_a_reader_back_within_the_linger_finds_the_cache_warm(
    devcluster: DevCluster,
) -> None:
    devcluster.create_namespace(NS)
    devcluster.create(pod("p"))
    async with informers(devcluster, linger=3600) as shared:
        with shared.read(PODS, NS, wake=Wakes()) as reader:
            await synced(reader)
        with shared.read(PODS, NS, wake=Wakes()) as again:
            assert again.synced
            assert again.get("p") is not None

        assert shared.open_watches == 1  # lingering
    lists, _ = lists_and_watches(devcluster, PODS_PATH)
    assert len(lists) == 1


async def test_a_reader_wakes_only_for_the_objects_it_follows(devcluster: DevCluster) -> None:
    # Namespaces: cluster-scoped, one event each, nothing else touches them.
    async with informers(devcluster) as shared:
        by_name, by_label, everything = Wakes(), Wakes(), Wakes()
        with (
            shared.read(NAMESPACES, None, wake=by_name) as named,
            shared.read(NAMESPACES, None, wake=by_label) as labelled,
            shared.read(NAMESPACES, None, wake=everything) as all_of_them,
        ):
            await synced(named)
            named.follow(Name("", "mine"))
            labelled.follow(Label("team", "blue"))
            all_of_them.follow(EVERYTHING)
            after_list = (by_name.count, by_label.count, everything.count)

            for other in ("other-1", "other-2", "other-3"):
                devcluster.create_namespace(other)
            devcluster.create(
                {"kind": "Namespace", "metadata": {"name": "blue", "labels": {"team": "blue"}}}
            )
            devcluster.create_namespace("mine")
            # One watch delivers events in order: once "mine" is seen, all others were too.
            await eventually(lambda: named.get("mine") is not None, "mine seen")

            assert by_name.count - after_list[0] == 1
            assert by_label.count - after_list[1] == 1
            assert everything.count - after_list[2] == 5
            assert [n["metadata"]["name"] for n in labelled.labelled("team", "blue")] == ["blue"]


async def test_owners_and_labels_index_the_cache_and_follow_changes(
    devcluster: DevCluster,
) -> None:
    devcluster.create_namespace(NS)
    devcluster.create(pod("a-1", owner="uid-a", labels={"hash": "1"}))
    async with informers(devcluster) as shared:
        wakes = Wakes()
        with shared.read(PODS, NS, wake=wakes) as pods:
            await synced(pods)
            pods.follow(Owner("uid-a"))
            before = wakes.count

            devcluster.create(pod("b-1", owner="uid-b", labels={"hash": "2"}))
            devcluster.create(pod("a-2", owner="uid-a", labels={"hash": "1"}))
            await eventually(lambda: len(pods.owned_by("uid-a")) == 2, "a-2 seen")
            assert wakes.count - before == 1  # b-1 did not wake it

            # A change that takes an object away from what it follows wakes it too.
            devcluster.delete("pods", NS, "a-1")
            await eventually(lambda: len(pods.owned_by("uid-a")) == 1, "a-1 gone")
            assert wakes.count - before == 2

            assert [p["metadata"]["name"] for p in pods.owned_by("uid-b")] == ["b-1"]
            assert [p["metadata"]["name"] for p in pods.labelled("hash", "1")] == ["a-2"]
            pods.unfollow(Owner("uid-a"))
            devcluster.create(pod("a-3", owner="uid-a"))
            await eventually(lambda: len(pods.owned_by("uid-a")) == 2, "a-3 seen")
            assert wakes.count - before == 2


async def test_a_label_selector_makes_an_informer_of_its_own(devcluster: DevCluster) -> None:
    devcluster.create_namespace(NS)
    devcluster.create(pod("guarded", labels={"guarded": "yes"}))
    devcluster.create(pod("plain"))
    async with informers(devcluster) as shared:
        with (
            shared.read(PODS, None, wake=Wakes(), label_selector="guarded=yes") as selected,
            shared.read(PODS, NS, wake=Wakes()) as every_pod,
        ):
            await synced(selected)
            await synced(every_pod)
            assert [p["metadata"]["name"] for p in selected.objects()] == ["guarded"]
            assert selected.get("guarded", NS) is not None
            assert len(every_pod.objects()) == 2
            assert shared.open_watches == 2

    lists, _ = lists_and_watches(devcluster, "/api/v1/pods")
    assert [e.query.get("labelSelector") for e in lists] == ["guarded=yes"]


async def test_after_410_the_informer_lists_again_once_for_every_reader() -> None:
    # No bookmarks: they would move the watch past the compaction before it restarts.
    with DevCluster(bookmark_interval=3600) as cluster:
        cluster.create_namespace(NS)
        async with informers(cluster, watch_seconds=1) as shared:
            with ExitStack() as stack:
                readers = [
                    stack.enter_context(shared.read(PODS, NS, wake=Wakes())) for _ in range(50)
                ]
                await synced(readers[0])
                cluster.create_namespace("elsewhere")  # history moves on without this namespace
                cluster.compact()
                # The watch ends after watch_seconds; resuming from its version gets 410.
                await eventually(
                    lambda: len(lists_and_watches(cluster, PODS_PATH)[0]) == 2, "listed again"
                )
                cluster.create(pod("after-compaction"))

                await eventually(
                    lambda: all(r.get("after-compaction") is not None for r in readers),
                    "every reader sees the Pod",
                )
                assert all(r.error is None for r in readers)

    lists, _ = lists_and_watches(cluster, PODS_PATH)
    assert len(lists) == 2


async def test_a_broken_informer_tells_its_readers(devcluster: DevCluster) -> None:
    devcluster.create_namespace(NS)
    devcluster.faults.add("GET", PODS_PATH, faults.forbidden(), count=None)
    async with informers(devcluster, retry_broken_after=3600) as shared:
        first, second = Wakes(), Wakes()
        with shared.read(PODS, NS, wake=first) as one, shared.read(PODS, NS, wake=second) as two:
            await eventually(lambda: one.error is not None, "the informer broke")

            assert isinstance(one.error, errors.Forbidden)
            assert two.error is one.error
            assert first.count == second.count == 1
            with pytest.raises(errors.Forbidden):
                two.check()
            assert shared.open_watches == 0
            # A reader arriving now learns it at once, without asking Kubernetes again.
            with shared.read(PODS, NS, wake=Wakes()) as late:
                assert isinstance(late.error, errors.Forbidden)

    lists, watches = lists_and_watches(devcluster, PODS_PATH)
    assert (len(lists), len(watches)) == (1, 0)


async def test_a_broken_informer_is_tried_again_by_a_later_reader(devcluster: DevCluster) -> None:
    devcluster.create_namespace(NS)
    devcluster.create(pod("p"))
    devcluster.faults.add("GET", PODS_PATH, faults.forbidden(), count=1)
    async with informers(devcluster, retry_broken_after=0) as shared:
        with shared.read(PODS, NS, wake=Wakes()) as broken:
            await eventually(lambda: broken.error is not None, "the informer broke")
            with shared.read(PODS, NS, wake=Wakes()) as fresh:
                await synced(fresh)
                assert fresh.error is None
                assert fresh.get("p") is not None
                assert broken.error is not None  # its informer stays broken for it
