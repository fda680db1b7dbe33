"""The devcluster's object store: what etcd is to kube-apiserver.

It knows nothing of HTTP, validation or patches. It keeps objects by
(resource, namespace, name), stamps the metadata the server owns (uid,
creationTimestamp, one global increasing resourceVersion) and remembers a
bounded history of events, so a watch can resume from a resourceVersion or
learn that it is too old (410 Expired).

Like kube-apiserver's watch cache it indexes what clients select by: labels,
so a label-selector LIST reads the objects that carry the label rather than
every object of the namespace, and listeners by :class:`Interest`, so a write
wakes only the watches that can show it (a thousand open watches on a
thousand Deployments cost a write one delivery, not a thousand).

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

#: Kinds whose strategy starts metadata.generation at 1 (the controllers create
#: ReplicaSets through the store, so the store stamps it).
_WITH_GENERATION = frozenset({"deployments", "replicasets"})


class StoreError(Exception):
    """Base of the store's errors; the server turns them into Status bodies."""


class ObjectNotFound(StoreError):
    pass


class ObjectExists(StoreError):
    pass


@dataclass(frozen=True)
class Event:
    """One change, as a watch reports it; ``previous`` is the object it replaced, if any."""

    type: str  # ADDED, MODIFIED or DELETED
    resource: str
    object: Object
    resource_version: int
    previous: Object | None = None


Listener = Callable[[Event], None]


@dataclass(frozen=True)
class Interest:
    """Which changes a listener is told of: one resource, narrowed to what a watch can show.

    ``namespace`` None means every namespace (and cluster-scoped objects); ``name``
    pins one object; ``label`` one label a watch's selector requires. A change is
    delivered to the interests it can concern (for ``label``: the object's labels
    before or after it), so an open watch costs a write nothing when it cannot
    show it. ``Interest()`` hears everything.
    """

    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    label: tuple[str, str] | None = None


def timestamp(seconds: float) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes it."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def labels_of(obj: Object | None) -> dict[str, str]:
    if obj is None:
        return {}
    labels: dict[str, str] = obj["metadata"].get("labels") or {}
    return labels


class _Objects:
    """The objects of one resource: by namespace and name, with a label index.

    The label index maps (namespace, key) to value to names, so a LIST with
    ``app=web`` reads the few objects carrying that label, not every object.
    """

    def __init__(self) -> None:
        self.by_namespace: dict[str, dict[str, Object]] = {}
        self._labels: dict[tuple[str, str], dict[str, set[str]]] = {}
        # Names in list order, per namespace; dropped when a name comes or goes.
        self._sorted: dict[str, builtins.list[str]] = {}

    def get(self, namespace: str, name: str) -> Object | None:
        return self.by_namespace.get(namespace, {}).get(name)

    def put(self, namespace: str, name: str, obj: Object, previous: Object | None) -> None:
        objects = self.by_namespace.setdefault(namespace, {})
        if previous is None:
            self._sorted.pop(namespace, None)
        objects[name] = obj
        old, new = labels_of(previous), labels_of(obj)
        if old != new:
            self._unindex(namespace, name, old)
            for key, value in new.items():
                self._labels.setdefault((namespace, key), {}).setdefault(value, set()).add(name)

    def pop(self, namespace: str, name: str) -> Object | None:
        objects = self.by_namespace.get(namespace)
        obj = objects.pop(name, None) if objects is not None else None
        if obj is None or objects is None:
            return None
        self._sorted.pop(namespace, None)
        if not objects:
            del self.by_namespace[namespace]
        self._unindex(namespace, name, labels_of(obj))
        return obj

    def _unindex(self, namespace: str, name: str, labels: dict[str, str]) -> None:
        for key, value in labels.items():
            values = self._labels.get((namespace, key))
            if values is None or value not in values:
                continue
            values[value].discard(name)
            if not values[value]:
                del values[value]
                if not values:
                    del self._labels[(namespace, key)]

    def names(self, namespace: str) -> builtins.list[str]:
        names = self._sorted.get(namespace)
        if names is None:
            names = self._sorted[namespace] = sorted(self.by_namespace.get(namespace, {}))
        return names

    def namespaces(self, namespace: str | None) -> builtins.list[str]:
        return sorted(self.by_namespace) if namespace is None else [namespace]

    def labelled(
        self, namespace: str, key: str, values: frozenset[str] | None
    ) -> builtins.list[str]:
        """Names carrying label ``key`` (with one of ``values``, or any value for None), sorted."""
        index = self._labels.get((namespace, key), {})
        chosen = index.values() if values is None else (index.get(v, set()) for v in values)
        return sorted(set().union(*chosen))


class Store:
    """Objects by (resource, namespace, name) with a global resourceVersion."""

    def __init__(self, now: Callable[[], float], history: int = 10_000) -> None:
        self._now = now
        self._lock = threading.RLock()
        self._objects: dict[str, _Objects] = collections.defaultdict(_Objects)
        self._history: collections.deque[Event] = collections.deque(maxlen=history)
        # Events at or below this resourceVersion are forgotten (compacted).
        self._compacted = 0
        self._resource_version = 0
        self._listeners: dict[Interest, dict[Listener, None]] = {}
        self._interests: dict[Listener, Interest] = {}
        # Controllers' indexes: told of every change like listeners, but not watches.
        self._observers: builtins.list[Listener] = []
        #: Objects reads have looked at, and events handed to listeners, since the start:
        #: what an index saves shows here (tests compare them; nothing is timed).
        self.examined = 0
        self.deliveries = 0

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
        return self._objects[resource].get(namespace, name)

    def list(self, resource: str, namespace: str | None = None) -> builtins.list[Object]:
        """Objects of a resource, in one namespace or (None) in all, by namespace and name."""
        with self._lock:
            objects = self._objects[resource]
            found: builtins.list[Object] = []
            for ns in objects.namespaces(namespace):
                in_namespace = objects.by_namespace.get(ns, {})
                found.extend(in_namespace[name] for name in objects.names(ns))
            self.examined += len(found)
            return found

    def select(
        self, resource: str, namespace: str | None, key: str, values: frozenset[str] | None
    ) -> builtins.list[Object]:
        """Objects whose label ``key`` has one of ``values`` (any value: None), from the index.

        In list order, like :meth:`list`; the cost follows what matches, not what is stored.
        """
        with self._lock:
            objects = self._objects[resource]
            found: builtins.list[Object] = []
            for ns in objects.namespaces(namespace):
                in_namespace = objects.by_namespace.get(ns, {})
                found.extend(in_namespace[name] for name in objects.labelled(ns, key, values))
            self.examined += len(found)
            return found

    def create(self, resource: str, obj: Object) -> Object:
        meta = obj.get("metadata", {})
        namespace, name = meta.get("namespace", ""), meta["name"]
        with self._lock:
            if self._objects[resource].get(namespace, name) is not None:
                raise ObjectExists(f"{resource} {name!r} already exists")
            stored = dict(obj)
            stored["metadata"] = {
                **meta,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": timestamp(self._now()),
                "resourceVersion": str(self._next_version()),
            }
            if resource in _WITH_GENERATION:
                stored["metadata"].setdefault("generation", 1)
            self._objects[resource].put(namespace, name, stored, None)
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
        namespace, name = meta.get("namespace", ""), meta["name"]
        with self._lock:
            current = self._objects[resource].get(namespace, name)
            if current is None:
                raise ObjectNotFound(f"{resource} {name!r} not found")
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
            self._objects[resource].put(namespace, name, stored, current)
            self._emit("MODIFIED", resource, stored, current)
            return stored

    def delete(self, resource: str, namespace: str, name: str) -> Object:
        with self._lock:
            current = self._objects[resource].pop(namespace, name)
            if current is None:
                raise ObjectNotFound(f"{resource} {name!r} not found")
            # The DELETED event carries the object at the deletion's version.
            gone = {
                **current,
                "metadata": {**current["metadata"], "resourceVersion": str(self._next_version())},
            }
            self._emit("DELETED", resource, gone, current)
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

    def add_listener(self, listener: Listener, interest: Interest | None = None) -> None:
        """Tells ``listener`` of the changes ``interest`` covers (all of them by default)."""
        interest = interest if interest is not None else Interest()
        with self._lock:
            self._listeners.setdefault(interest, {})[listener] = None
            self._interests[listener] = interest

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            interest = self._interests.pop(listener, None)
            if interest is None:
                return
            listeners = self._listeners[interest]
            del listeners[listener]
            if not listeners:
                del self._listeners[interest]

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
            return len(self._interests)

    def _next_version(self) -> int:
        self._resource_version += 1
        return self._resource_version

    def _emit(self, type_: str, resource: str, obj: Object, previous: Object | None = None) -> None:
        event = Event(type_, resource, obj, int(obj["metadata"]["resourceVersion"]), previous)
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].resource_version
        self._history.append(event)
        for observer in self._observers:
            observer(event)
        if not self._listeners:
            return
        told: dict[Listener, None] = {}
        for interest in self._concerned(event):
            told.update(self._listeners.get(interest, {}))
        self.deliveries += len(told)
        for listener in told:
            listener(event)

    @staticmethod
    def _concerned(event: Event) -> set[Interest]:
        """The interests a change can matter to."""
        meta = event.object["metadata"]
        resource, name = event.resource, meta["name"]
        labels = {*labels_of(event.object).items(), *labels_of(event.previous).items()}
        concerned = {Interest()}
        for namespace in (None, meta.get("namespace", "")):
            concerned.add(Interest(resource, namespace))
            concerned.add(Interest(resource, namespace, name=name))
            concerned.update(Interest(resource, namespace, label=label) for label in labels)
        return concerned
