"""Events: what the controllers, the scheduler and the kubelet tell ``kubectl describe``.

:class:`EventRecorder` writes core/v1 Event objects through the store, as
client-go's event recorder does in each component:

- one Event per happening, named ``<object>.<hex nanoseconds>``, in the
  object's namespace, with ``involvedObject``, ``source``, ``reason``,
  ``message``, ``type`` (Normal or Warning), ``firstTimestamp`` /
  ``lastTimestamp`` / ``count`` and ``reportingComponent`` /
  ``reportingInstance``;
- the same happening again (same source, object, type, reason and message)
  updates that Event: ``count`` grows and ``lastTimestamp`` moves, as the
  recorder's correlator does (it remembers the last 4096 of them);
- its spam filter drops what one source says about one object beyond 25
  Events at once, then one per 5 minutes (a crash-looping Pod's counts then
  grow slowly, as on a cluster);
- the scheduler's ``Scheduled`` Event is written as events.k8s.io/v1 events
  read through core/v1 look: ``eventTime``, ``action``, an empty ``source``
  and no first/last timestamps.

Events live :data:`TTL` after their last write, as kube-apiserver's
``--event-ttl`` (1 h) keeps them, whoever wrote them: the controller manager
reports every stored Event to :meth:`EventRecorder.written` and calls
:meth:`EventRecorder.expire` on every reconcile.
Not simulated: the correlator's "combined from similar events" aggregation.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from devcluster.controllers.indexes import Timers
from devcluster.store import ObjectNotFound, Store, timestamp

Object = dict[str, Any]

NORMAL: Final = "Normal"
WARNING: Final = "Warning"
#: kube-apiserver's default --event-ttl.
TTL: Final = 3600.0
#: client-go's correlator cache size.
_REMEMBERED: Final = 4096
#: client-go's spam filter: a token bucket per source and object.
_SPAM_BURST: Final = 25
_SPAM_REFILL_SECONDS: Final = 300.0
_RESOURCE: Final = "events"


@dataclass(frozen=True)
class Source:
    """Who reports: ``source.component`` / ``reportingComponent`` and the host or instance."""

    component: str
    host: str = ""


DEPLOYMENT_CONTROLLER: Final = Source("deployment-controller")
REPLICASET_CONTROLLER: Final = Source("replicaset-controller")


def reference(obj: Object, field_path: str = "") -> Object:
    """The ``involvedObject`` of an Event about ``obj`` (a container's: with ``fieldPath``)."""
    meta = obj["metadata"]
    ref: Object = {
        "kind": obj.get("kind", ""),
        "namespace": meta.get("namespace", ""),
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "apiVersion": obj.get("apiVersion", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if field_path:
        ref["fieldPath"] = field_path
    return ref


def micro_time(seconds: float) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventRecorder:
    """Writes Events through the store and expires them; ``enabled=False`` writes none."""

    def __init__(self, store: Store, *, enabled: bool = True, ttl: float = TTL) -> None:
        self._store = store
        self.enabled = enabled
        self.ttl = ttl
        # Aggregation key -> (namespace, name) of the Event it was written as.
        self._written: collections.OrderedDict[tuple[str, ...], tuple[str, str]] = (
            collections.OrderedDict()
        )
        self._expiry = Timers()
        # Spam key -> (tokens left, when counted): the spam filter's buckets.
        self._buckets: collections.OrderedDict[tuple[str, ...], tuple[float, float]] = (
            collections.OrderedDict()
        )
        self._last_nanos = 0
        #: Events written (created or counted again) since the recorder was made.
        self.writes = 0

    # --- recording ---------------------------------------------------------------

    def record(
        self,
        obj: Object,
        type_: str,
        reason: str,
        message: str,
        source: Source,
        at: float,
        *,
        field_path: str = "",
    ) -> None:
        """An Event about ``obj`` at simulated time ``at`` (repeats are counted)."""
        if not self.enabled:
            return
        involved = reference(obj, field_path)
        if not self._spam_allows(source, involved, at):
            return
        key = (
            source.component,
            source.host,
            *(str(involved.get(k, "")) for k in ("kind", "namespace", "name", "fieldPath")),
            str(involved["uid"]),
            str(involved["apiVersion"]),
            type_,
            reason,
            message,
        )
        when = timestamp(at)
        place = self._written.get(key)
        if place is not None:
            self._written.move_to_end(key)
            stored = self._store.get(_RESOURCE, *place)
            if stored is not None:
                counted = {**stored, "count": int(stored.get("count") or 1) + 1}
                counted["lastTimestamp"] = when
                self._store.update(_RESOURCE, counted)
                self.writes += 1
                return
        event: Object = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": self._name(involved["name"], at), "namespace": _home(involved)},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": {"component": source.component}
            | ({"host": source.host} if source.host else {}),
            "firstTimestamp": when,
            "lastTimestamp": when,
            "count": 1,
            "type": type_,
            "eventTime": None,
            "reportingComponent": source.component,
            "reportingInstance": source.host,
        }
        self._create(key, event)

    def record_scheduled(self, pod: Object, node: str, at: float) -> None:
        """The scheduler's ``Scheduled`` (an events.k8s.io/v1 Event, read as core/v1)."""
        if not self.enabled:
            return
        meta = pod["metadata"]
        involved = reference(pod)
        event: Object = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": self._name(meta["name"], at), "namespace": _home(involved)},
            "involvedObject": involved,
            "reason": "Scheduled",
            "message": f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
            "source": {},
            "firstTimestamp": None,
            "lastTimestamp": None,
            "type": NORMAL,
            "eventTime": micro_time(at),
            "action": "Binding",
            "reportingComponent": "default-scheduler",
            "reportingInstance": f"default-scheduler-{node}",
        }
        self._create(None, event)

    def _create(self, key: tuple[str, ...] | None, event: Object) -> None:
        meta = event["metadata"]
        self._store.create(_RESOURCE, event)
        self.writes += 1
        if key is not None:
            self._written[key] = (meta["namespace"], meta["name"])
            if len(self._written) > _REMEMBERED:
                self._written.popitem(last=False)

    def _spam_allows(self, source: Source, involved: Object, at: float) -> bool:
        """The spam filter: 25 Events per source and object at once, then one per 5 min."""
        key = (
            source.component,
            source.host,
            *(str(involved.get(k, "")) for k in ("kind", "namespace", "name", "uid", "apiVersion")),
        )
        tokens, counted = self._buckets.get(key, (float(_SPAM_BURST), at))
        tokens = min(float(_SPAM_BURST), tokens + max(at - counted, 0.0) / _SPAM_REFILL_SECONDS)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, max(at, counted))
        self._buckets.move_to_end(key)
        if len(self._buckets) > _REMEMBERED:
            self._buckets.popitem(last=False)
        return allowed

    def _name(self, involved_name: str, at: float) -> str:
        # Nanoseconds as the recorder's clock gives them; never twice the same.
        nanos = max(int(at * 1e9), self._last_nanos + 1)
        self._last_nanos = nanos
        return f"{involved_name}.{nanos:x}"

    # --- time to live ------------------------------------------------------------

    def written(self, namespace: str, name: str, at: float) -> None:
        """A stored Event was created or changed at ``at``: it lives until ``at + ttl``."""
        self._expiry.set((_RESOURCE, namespace, name), at + self.ttl)

    def forgotten(self, namespace: str, name: str) -> None:
        """A stored Event was deleted."""
        self._expiry.discard((_RESOURCE, namespace, name))

    def expire(self, now: float) -> int:
        """Deletes the Events whose time has come; how many."""
        expired = 0
        for _, namespace, name in self._expiry.due(now):
            try:
                self._store.delete(_RESOURCE, namespace, name)
            except ObjectNotFound:
                continue
            expired += 1
        return expired


def _home(involved: Object) -> str:
    """An Event lives in its object's namespace (``default`` for cluster-scoped objects)."""
    return str(involved.get("namespace") or "default")
