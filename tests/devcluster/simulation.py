"""A simulated cluster for the controller and kubelet tests: a Store, a stopped clock.

No HTTP: "API writes" here do what the server does (bump generation on spec
or annotation changes), then time moves only by ``clock.advance``. Tests read
the status fields the controllers write (what kubectl and kubeupdate judge a
rollout by), never a client's verdict: the emulator stands on its own.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devcluster.clock import SimulatedClock
from devcluster.controllers import (
    CHANGE_CAUSE_ANNOTATION,
    REVISION_ANNOTATION,
    RolloutController,
)
from devcluster.garbage import GarbageCollector
from devcluster.registry import Registry
from devcluster.store import Event, Store

Object = dict[str, Any]

START = 1_700_000_000.0
NS = "default"
STEP = 0.25


@dataclass
class Cluster:
    store: Store
    clock: SimulatedClock
    controller: RolloutController
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        registry = Registry(self.store, self.clock.now, after_write=lambda: None)
        self.garbage = GarbageCollector(self.store, registry)

    def reconcile(self) -> None:
        """What kube-controller-manager does at this instant: collect garbage, run controllers."""
        self.garbage.collect()
        self.controller.reconcile()
        while self.garbage.has_work:
            self.garbage.collect()
            self.controller.reconcile()

    def create(self, deployment: Object) -> None:
        self.store.create("deployments", deployment)
        self.reconcile()

    def change(self, name: str, edit: Callable[[Object], None]) -> None:
        """An API write as the server makes it: a new generation when spec or annotations change."""
        current = self.store.get("deployments", NS, name)
        assert current is not None
        changed = copy.deepcopy(current)
        edit(changed)
        if changed["spec"] != current["spec"] or changed["metadata"].get("annotations") != current[
            "metadata"
        ].get("annotations"):
            changed["metadata"]["generation"] = current["metadata"]["generation"] + 1
        self.store.update("deployments", changed)
        self.reconcile()

    def deployment(self, name: str = "web") -> Object:
        found = self.store.get("deployments", NS, name)
        assert found is not None
        return found

    def replica_sets(self) -> list[Object]:
        return sorted(self.store.list("replicasets", NS), key=revision)

    def pods(self, rs: Object | None = None) -> list[Object]:
        """Every stored Pod (of ``rs``), Terminating ones too."""
        pods = self.store.list("pods", NS)
        if rs is None:
            return pods
        return [
            p for p in pods if p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        ]

    def active_pods(self, rs: Object | None = None) -> list[Object]:
        """The Pods not being deleted: what ``spec.replicas`` and maxSurge count."""
        return [p for p in self.pods(rs) if not p["metadata"].get("deletionTimestamp")]

    def tick(self, seconds: float = STEP) -> None:
        self.clock.advance(seconds)
        self.reconcile()

    def run(self, seconds: float, step: float = STEP) -> None:
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            self.tick(min(step, end - self.clock.now()))

    def run_until_done(self, name: str = "web", limit: float = 60.0) -> float:
        """Simulated seconds until the status says rolled out; fails past ``limit``."""
        begin = self.clock.now()
        while not rolled_out(self.deployment(name)):
            assert self.clock.now() - begin <= limit, self.deployment(name).get("status")
            self.tick()
        return self.clock.now() - begin


def simulated_cluster(**options: Any) -> Cluster:
    """A cluster at START with the clock stopped; ``options`` go to the RolloutController."""
    clock = SimulatedClock(speed=0, start=START)
    store = Store(clock.now)
    result = Cluster(store, clock, RolloutController(store, clock, seed=7, **options))
    store.add_listener(result.events.append)
    return result


def make_deployment(
    name: str = "web", image: str = "nginx:1.25", replicas: int = 3, **spec: Any
) -> Object:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": NS,
            "annotations": {CHANGE_CAUSE_ANNOTATION: f"image {image}"},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
            **spec,
        },
    }


@dataclass(frozen=True)
class Progress:
    """A rollout as the Deployment's status counts it (zero counts are omitted, as in Go)."""

    updated: int
    old: int
    available: int


def progress(deployment: Object) -> Progress:
    status = deployment.get("status") or {}
    updated = status.get("updatedReplicas", 0)
    return Progress(
        updated, status.get("replicas", 0) - updated, status.get("availableReplicas", 0)
    )


def rolled_out(deployment: Object) -> bool:
    """The generation is observed, and every wanted replica is updated and available."""
    wanted = deployment["spec"].get("replicas", 1)
    observed = (deployment.get("status") or {}).get("observedGeneration", 0)
    return observed >= deployment["metadata"]["generation"] and progress(deployment) == Progress(
        wanted, 0, wanted
    )


def set_image(image: str) -> Callable[[Object], None]:
    def edit(deployment: Object) -> None:
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] = image
        deployment["metadata"]["annotations"][CHANGE_CAUSE_ANNOTATION] = f"image {image}"

    return edit


def revision(rs: Object) -> int:
    return int(rs["metadata"]["annotations"][REVISION_ANNOTATION])


def condition(obj: Object, type_: str) -> Object:
    found: list[Object] = [c for c in obj["status"]["conditions"] if c["type"] == type_]
    assert len(found) == 1, obj["status"]
    return found[0]


def ready(pod: Object) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def waiting_reason(pod: Object) -> str | None:
    state = pod["status"]["containerStatuses"][0]["state"]
    return state.get("waiting", {}).get("reason")  # type: ignore[no-any-return]


def progressing_reasons(events: list[Event], name: str = "web") -> list[str]:
    """Progressing reasons in the order a watch on the Deployment saw them, repeats folded."""
    reasons: list[str] = []
    for event in events:
        if event.resource != "deployments" or event.object["metadata"]["name"] != name:
            continue
        for c in event.object.get("status", {}).get("conditions", []):
            if c["type"] == "Progressing" and (not reasons or reasons[-1] != c["reason"]):
                reasons.append(c["reason"])
    return reasons


def history(cluster: Cluster) -> list[tuple[int, str | None]]:
    """What ``kubectl rollout history`` lists: revision and change-cause of each ReplicaSet."""
    return [
        (revision(rs), rs["metadata"]["annotations"].get(CHANGE_CAUSE_ANNOTATION))
        for rs in cluster.replica_sets()
    ]
