"""The devcluster's object store: what etcd is to kube-apiserver.

It knows nothing of HTTP, validation or patches. It keeps objects by
(resource, namespace, name), stamps the metadata the server owns (uid,
creationTimestamp, one global increasing resourceVersion) and remembers a
bounded history of events, so a watch can resume from a resourceVersion or
learn that it is too old (410 Expired).

Objects handed out are shared snapshots: callers must never mutate them
(``copy.deepcopy`` first). Every write stores a new dict, so a snapshot a
watcher holds never changes under it.
"""

from __future__ import annotations

import bisect
import builtins
import collections
import itertools
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Object = dict[str, Any]

#: Resources whose objects live in a namespace; the others are cluster-scoped.
NAMESPACED = frozenset({"deployments", "replicasets", "pods"})


class StoreError(Exception):
    """Base of the store's errors; the server turns them into Status bodies."""


class ObjectNotFound(StoreError):
    pass


class ObjectExists(StoreError):
    pass


@dataclass(frozen=True)
class Event:
    """One change, as a watch reports it."""

    type: str  # ADDED, MODIFIED or DELETED
    resource: str
    object: Object
    resource_version: int


Listener = Callable[[Event], None]


def timestamp(seconds: float) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes it."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """Objects by (resource, namespace, name) with a global resourceVersion."""

    def __init__(self, now: Callable[[], float], history: int = 10_000) -> None:
        self._now = now
        self._lock = threading.RLock()
        self._objects: dict[str, dict[tuple[str, str], Object]] = collections.defaultdict(dict)
        self._history: collections.deque[Event] = collections.deque(maxlen=history)
        # Events at or below this resourceVersion are forgotten (compacted).
        self._compacted = 0
        self._resource_version = 0
        self._listeners: list[Listener] = []
        # Controllers' indexes: told of every change like listeners, but not watches.
        self._observers: list[Listener] = []

    @property
    def resource_version(self) -> int:
        return self._resource_version

    @property
    def oldest_resource_version(self) -> int:
        """The oldest resourceVersion a watch can still resume from."""
        with self._lock:
            oldest_known = self._history[0].resource_version - 1 if self._history else 0
            return max(self._compacted, oldest_known)

    def get(self, resource: str, namespace: str, name: str) -> Object | None:
        """The object, or None. ``namespace`` is "" for cluster-scoped resources."""
        return self._objects[resource].get((namespace, name))

    def list(self, resource: str, namespace: str | None = None) -> list[Object]:
        """Objects of a resource, in one namespace or (None) in all, by namespace and name."""
        with self._lock:
            items = self._objects[resource].items()
            return [obj for (ns, _), obj in sorted(items) if namespace is None or ns == namespace]

    def create(self, resource: str, obj: Object) -> Object:
        meta = obj.get("metadata", {})
        key = (meta.get("namespace", ""), meta["name"])
        with self._lock:
            if key in self._objects[resource]:
                raise ObjectExists(f"{resource} {key[1]!r} already exists")
            stored = dict(obj)
            stored["metadata"] = {
                **meta,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": timestamp(self._now()),
                "resourceVersion": str(self._next_version()),
            }
            if "spec" in obj and resource != "pods":
                stored["metadata"].setdefault("generation", 1)
            self._objects[resource][key] = stored
            self._emit("ADDED", resource, stored)
            return stored

    def update(self, resource: str, obj: Object) -> Object:
        """Stores ``obj`` in place of the existing object of that name.

        The caller has decided everything else (generation, status, checks of
        a resourceVersion precondition). An update that changes nothing is a
        no-op: the resourceVersion stays and no event is sent, as in
        kube-apiserver.
        """
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        with self._lock:
            current = self._objects[resource].get(key)
            if current is None:
                raise ObjectNotFound(f"{resource} {key[1]!r} not found")
            stored = dict(obj)
            stored["metadata"] = {
                **meta,
                "uid": current["metadata"]["uid"],
                "creationTimestamp": current["metadata"]["creationTimestamp"],
                "resourceVersion": current["metadata"]["resourceVersion"],
            }
            if stored == current:
                return current
            stored["metadata"]["resourceVersion"] = str(self._next_version())
            self._objects[resource][key] = stored
            self._emit("MODIFIED", resource, stored)
            return stored

    def delete(self, resource: str, namespace: str, name: str) -> Object:
        with self._lock:
            current = self._objects[resource].pop((namespace, name), None)
            if current is None:
                raise ObjectNotFound(f"{resource} {name!r} not found")
            # The DELETED event carries the object at the deletion's version.
            gone = {
                **current,
                "metadata": {**current["metadata"], "resourceVersion": str(self._next_version())},
            }
            self._emit("DELETED", resource, gone)
            return gone

    def events_since(self, resource_version: int) -> builtins.list[Event] | None:
        """Events after ``resource_version``; None when they are no longer known (410)."""
        with self._lock:
            oldest_known = self._history[0].resource_version if self._history else None
            if resource_version < self._compacted:
                return None
            if oldest_known is not None and resource_version < oldest_known - 1:
                return None
            # History is ordered by resourceVersion: bisect instead of scanning it all.
            start = bisect.bisect_right(
                self._history, resource_version, key=lambda e: e.resource_version
            )
            return list(itertools.islice(self._history, start, None))

    def compact(self) -> None:
        """Forgets the event history, as etcd compaction does; older watches get 410."""
        with self._lock:
            self._history.clear()
            self._compacted = self._resource_version

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def add_observer(self, observer: Listener) -> None:
        """Tells ``observer`` of every change, before the listeners (watches) hear of it.

        For a controller's indexes: unlike a listener it is not counted as an open
        watch, and it runs while the store is locked, so it must be quick and must
        not write to the store.
        """
        with self._lock:
            self._observers.append(observer)

    @property
    def listener_count(self) -> int:
        """How many listeners (open watches) are registered."""
        with self._lock:
            return len(self._listeners)

    def _next_version(self) -> int:
        self._resource_version += 1
        return self._resource_version

    def _emit(self, type_: str, resource: str, obj: Object) -> None:
        event = Event(type_, resource, obj, int(obj["metadata"]["resourceVersion"]))
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].resource_version
        self._history.append(event)
        for observer in self._observers:
            observer(event)
        for listener in list(self._listeners):
            listener(event)
