"""What the controllers and the kubelet share: the store, their queues and their timers.

Each of them looks only at what :class:`Work` has queued for it (an object a
change touched) or what came due (a timer), and writes only through it, so
the loop in :mod:`devcluster.controllers.manager` knows whether a pass
changed anything.
"""

from __future__ import annotations

import collections
import heapq
from typing import Any, Final

from devcluster import deletion
from devcluster.controllers.events import EventRecorder
from devcluster.controllers.indexes import Ownership, Timers
from devcluster.controllers.objects import parse_time
from devcluster.store import ObjectNotFound, Store

Object = dict[str, Any]

#: What the controllers run, in the order owners come before what they own.
CONTROLLED: Final = ("deployments", "replicasets", "pods")


class Work:
    """The store written through, the work queues, the timers, the ownership index, Events."""

    def __init__(self, store: Store, events: EventRecorder) -> None:
        self.store = store
        self.events = events
        self.owners = Ownership()
        #: (namespace, name) queued for a look, by resource.
        self.queued: dict[str, set[tuple[str, str]]] = {r: set() for r in CONTROLLED}
        #: A Pod's next status change, a ReplicaSet's next availability, a Deployment's
        #: observe delay: due at that time.
        self.due_at = Timers()
        #: Progress deadlines: due once they have passed.
        self.due_after = Timers(strict=True)
        #: Objects each phase looked at, by resource, since the controllers were made.
        self.visits: collections.Counter[str] = collections.Counter()
        #: Whether anything was written since the loop last cleared it.
        self.changed = False
        #: How many more queued objects this reconcile may take (None: no limit).
        self.allowance: int | None = None
        #: Sub-second creation times of Pods (creationTimestamp keeps whole seconds only).
        self.pod_created: dict[str, float] = {}

    def take(self, resource: str) -> list[tuple[str, str]]:
        """Takes from the queue of ``resource`` (all of it, or what the allowance permits)."""
        return self.take_from(self.queued[resource])

    def take_from(self, queue: set[tuple[str, str]]) -> list[tuple[str, str]]:
        """Takes the first entries of ``queue`` in the store's list order, within the allowance;
        the rest stay queued for the next reconcile."""
        if self.allowance is None or self.allowance >= len(queue):
            keys = drain(queue)
        else:
            keys = heapq.nsmallest(max(self.allowance, 0), queue)  # no full sort per chunk
            queue.difference_update(keys)
        if self.allowance is not None:
            self.allowance -= len(keys)
        return keys

    @property
    def exhausted(self) -> bool:
        return self.allowance is not None and self.allowance <= 0

    def created(self, pod: Object) -> float:
        """When a Pod was created, to the sub-second when this process created it."""
        meta = pod["metadata"]
        created = self.pod_created.get(meta["uid"])
        return created if created is not None else parse_time(meta["creationTimestamp"])

    def owned(self, owner: Object, resource: str, *, same_namespace: bool) -> list[Object]:
        """Stored objects of ``resource`` that ``owner`` controls, in the store's list order."""
        namespace = owner["metadata"].get("namespace", "")
        owned: list[Object] = []
        for child_resource, child_namespace, child_name in self.owners.children(
            owner["metadata"]["uid"]
        ):
            if child_resource != resource or (same_namespace and child_namespace != namespace):
                continue
            obj = self.store.get(resource, child_namespace, child_name)
            if obj is not None:
                owned.append(obj)
        return owned

    def update(self, resource: str, obj: Object) -> Object:
        meta = obj["metadata"]
        before = self.store.get(resource, meta.get("namespace", ""), meta["name"])
        stored = self.store.update(resource, obj)
        if stored is not before:
            self.changed = True
        return stored

    def create(self, resource: str, obj: Object) -> Object:
        stored = self.store.create(resource, obj)
        self.changed = True
        return stored

    def delete(self, resource: str, namespace: str, name: str) -> None:
        """Removes an object at once."""
        try:
            self.store.delete(resource, namespace, name)
        except ObjectNotFound:
            return
        self.changed = True  # the store's observer forgets the object's memos

    def delete_gracefully(self, resource: str, obj: Object, now: float) -> None:
        """Deletes as a DELETE without options does: a Pod on a node is marked, not removed."""
        meta = obj["metadata"]
        marked = deletion.graceful(resource, obj, None, now)
        if marked is None:
            self.delete(resource, meta.get("namespace", ""), meta["name"])
        elif marked is not obj:
            self.update(resource, marked)


def drain(queue: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """Empties a queue, in the store's list order (so writes come in the same order)."""
    keys = sorted(queue)
    queue.clear()
    return keys
