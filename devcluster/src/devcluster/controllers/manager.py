"""The loop that runs the controllers and the kubelet, as kube-controller-manager runs its own.

:class:`RolloutController` watches the store (an observer: every write,
whoever made it), keeps the ownership index current, queues what each change
touches, and on ``reconcile`` runs, until nothing changes: the kubelet, the
ReplicaSet controller, the deployment controller. It also expires Events an
hour after their last write. Deleting what lost its owner is the garbage
collector's work (:mod:`devcluster.garbage`), as in kube-controller-manager.
"""

from __future__ import annotations

import collections
import logging
import random
from typing import Final

from devcluster.clock import SimulatedClock
from devcluster.controllers.catalog import ImageCatalog, StaticCatalog
from devcluster.controllers.deployment import DeploymentController
from devcluster.controllers.events import EventRecorder
from devcluster.controllers.failures import FailureRules
from devcluster.controllers.kubelet import Kubelet
from devcluster.controllers.objects import controller_of
from devcluster.controllers.replicaset import ReplicaSetController
from devcluster.controllers.work import CONTROLLED, Work
from devcluster.store import Event, Store

log = logging.getLogger(__name__)

# How long after a deadline next_wakeup asks for a reconcile (the deadline check is strict).
_TICK: Final = 0.001
# A reconcile repeats its passes until nothing changes; this bounds a bug, not a rollout.
_MAX_PASSES: Final = 200


class RolloutController:
    """Drives every Deployment toward its goal at the time ``clock.now()`` says.

    Call ``reconcile`` after every API write and whenever ``next_wakeup()`` comes
    due (or periodically); it is idempotent. It must run on the thread that owns
    the store.

    Like kube-controller-manager, it never scans the store for work: a store
    observer indexes ownership and queues what each change touches (the object,
    and the ReplicaSet or Deployment that controls it), and timers hold when each
    object's next change is due. A reconcile visits only what is queued or due,
    so its cost does not grow with the objects stored; ``visits`` counts what it
    looked at.

    Timings (simulated seconds): a Pod's containers start ``ready_after`` after
    it was created (see :mod:`devcluster.controllers.kubelet` for what images
    do); a new generation is acted on ``observe_delay`` after the first
    reconcile that saw it (0 acts at once). Images exist as ``catalog`` says
    (the shipped catalogue by default) unless ``rules`` say they fail;
    ``record_events=False`` writes no Events.
    """

    def __init__(
        self,
        store: Store,
        clock: SimulatedClock,
        rules: FailureRules | None = None,
        *,
        catalog: ImageCatalog | None = None,
        ready_after: float = 1.0,
        observe_delay: float = 0.1,
        seed: int | None = None,
        record_events: bool = True,
    ) -> None:
        self._store = store
        self._clock = clock
        self.events = EventRecorder(store, enabled=record_events)
        self._work = Work(store, self.events)
        self.kubelet = Kubelet(
            self._work,
            rules if rules is not None else FailureRules(),
            catalog if catalog is not None else StaticCatalog.default(),
            self.events,
            ready_after,
        )
        self.replica_sets = ReplicaSetController(self._work, random.Random(seed))
        self.deployments = DeploymentController(self._work, observe_delay)
        self._settings = self._current_settings()
        store.add_observer(self._observe)
        # Objects stored before this controller existed: index them and look at each once.
        for resource in CONTROLLED:
            for obj in store.list(resource):
                self._observe(Event("ADDED", resource, obj, 0))

    @property
    def rules(self) -> FailureRules:
        return self.kubelet.rules

    @property
    def catalog(self) -> ImageCatalog:
        return self.kubelet.catalog

    @property
    def ready_after(self) -> float:
        return self.kubelet.ready_after

    @property
    def observe_delay(self) -> float:
        return self.deployments.observe_delay

    @property
    def visits(self) -> collections.Counter[str]:
        """Objects each phase looked at, by resource, since the controller was made."""
        return self._work.visits

    # --- the loop ----------------------------------------------------------

    def reconcile(self, budget: int | None = None) -> bool:
        """Runs the controllers on what is queued or due; True when work is left.

        Without ``budget`` it runs until nothing changes. With one, it stops once it
        has taken about ``budget`` objects from its queues, so that a caller on an
        event loop can let other tasks run and call again: nothing is lost between
        calls, the rest stays queued.
        """
        now = self._clock.now()
        work = self._work
        if self._settings != self._current_settings():
            # Rules or timings changed: every memo may be stale.
            self._settings = self._current_settings()
            self._queue_everything()
        for timers in (work.due_at, work.due_after):
            for resource, namespace, name in timers.due(now):
                work.queued[resource].add((namespace, name))
        self.events.expire(now)
        work.allowance = budget
        try:
            for _ in range(_MAX_PASSES):
                work.changed = False
                self.kubelet.run(now)
                self.replica_sets.run(now)
                self.deployments.run(now)
                if work.exhausted:
                    return self._has_work()
                if not work.changed and not self._has_work():
                    return False
        except BaseException:
            # The queues may have lost work mid-pass: the next reconcile looks at everything.
            self._queue_everything()
            raise
        finally:
            work.allowance = None
        log.warning("rollout controller: no steady state after %d passes", _MAX_PASSES)
        return False

    def next_wakeup(self) -> float | None:
        """The earliest simulated time at which ``reconcile`` has something new to do."""
        now = self._clock.now()
        work = self._work
        # Written since the last reconcile (or rules changed): reconcile at once.
        if self._settings != self._current_settings():
            return now
        if self._has_work():
            return now
        # Events expire at the first reconcile after their time (advance() reconciles at
        # least every simulated second), so they do not call for a wakeup of their own.
        at, after = work.due_at.next(), work.due_after.next()
        times = [t for t in (at, None if after is None else after + _TICK) if t is not None]
        return min(times) if times else None

    def _has_work(self) -> bool:
        """Whether anything is queued (written, or left by a reconcile that ran out of budget)."""
        return any(self._work.queued.values())

    def _current_settings(self) -> tuple[object, ...]:
        return (
            self.rules,
            self.rules.generation,
            self.catalog,
            self.catalog.generation,
            self.ready_after,
            self.observe_delay,
        )

    def _queue_everything(self) -> None:
        for resource in CONTROLLED:
            for obj in self._store.list(resource):
                meta = obj["metadata"]
                self._work.queued[resource].add((meta.get("namespace", ""), meta["name"]))

    def _observe(self, event: Event) -> None:
        """Store observer: keeps the indexes current and queues what the change touches."""
        work = self._work
        resource = event.resource
        if resource == "events":
            meta = event.object["metadata"]
            if event.type == "DELETED":
                self.events.forgotten(meta["namespace"], meta["name"])
            else:
                self.events.written(meta["namespace"], meta["name"], self._clock.now())
            return
        if resource not in work.queued:
            return
        meta = event.object["metadata"]
        uid = meta["uid"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        key = (resource, namespace, name)
        owners: list[str | None]
        if event.type == "DELETED":
            owners = [work.owners.deleted(key, uid)]
            work.queued[resource].discard((namespace, name))
            work.due_at.discard(key)
            work.due_after.discard(key)
            work.pod_created.pop(uid, None)
            self.kubelet.forget(uid)
            self.deployments.forget(uid)
        else:
            owner = controller_of(event.object)
            owner_uid = owner["uid"] if owner is not None else None
            owners = [work.owners.stored(key, uid, owner_uid), owner_uid]
            work.queued[resource].add((namespace, name))
        # A change to a Pod concerns its ReplicaSet; one to a ReplicaSet, its Deployment.
        for owner_uid in owners:
            owner_key = work.owners.key_of(owner_uid) if owner_uid is not None else None
            if owner_key is not None:
                work.queued[owner_key[0]].add(owner_key[1:])
