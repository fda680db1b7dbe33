"""The garbage collector: kube-controller-manager's deletion of dependents by ownerReference.

Any object may name owners in ``metadata.ownerReferences`` (a ReplicaSet its
Deployment, a Pod its ReplicaSet, a Lease the Deployment whose rollout it
guards). What :class:`GarbageCollector` does, as ``pkg/controller/garbagecollector``
does it, for every kind the devcluster serves:

- an object whose owners are all gone (dangling references: no object with
  that uid in its namespace) is deleted, with the propagation its own
  finalizers ask for, background otherwise; so deleting a Deployment
  (background, the default) takes its ReplicaSets, then their Pods, which
  terminate gracefully;
- an owner deleted with ``propagationPolicy=Orphan`` is kept with the
  ``orphan`` finalizer until its dependents' references to it are removed;
  then the finalizer goes, and the owner with it;
- an owner deleted with ``Foreground`` is kept (``deletionTimestamp``,
  ``foregroundDeletion`` finalizer) while its dependents are deleted, in
  foreground too when they have dependents of their own; it goes once no
  dependent whose reference says ``blockOwnerDeletion: true`` is left;
- a dependent that still has another owner only loses its references to the
  gone (or foreground-deleting) ones.

References to kinds the devcluster does not serve cannot be resolved and are
taken as present, as the real collector leaves an object whose owner's kind it
cannot map. Not simulated: the absent-owner cache, cycle breaking between
foreground deletions, and namespace deletion (the namespace controller's work:
the registry deletes a namespace's objects at once).

It is a client of the API like the real one: it deletes and updates through
the :class:`~devcluster.registry.Registry`, so finalizers, graceful deletion of
Pods and watches behave as for any client. A store observer keeps its
ownership index and queues (quick, no writes); :meth:`collect` does the work.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any, Final

from devcluster.registry import Registry
from devcluster.resources import BY_KIND, BY_NAME, ResourceType
from devcluster.statuses import ApiError
from devcluster.store import Event, Store

log = logging.getLogger(__name__)

Object = dict[str, Any]
#: (resource, namespace, name): how the store names an object.
Key = tuple[str, str, str]

ORPHAN: Final = "orphan"
FOREGROUND: Final = "foregroundDeletion"


def _finalizers(obj: Object) -> list[str]:
    finalizers: list[str] = obj["metadata"].get("finalizers") or []
    return finalizers


def _references(obj: Object | None) -> list[Object]:
    if obj is None:
        return []
    refs: list[Object] = obj["metadata"].get("ownerReferences") or []
    return refs


def _deleting_dependents(obj: Object) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp")) and FOREGROUND in _finalizers(obj)


class GarbageCollector:
    """Deletes dependents whose owners are gone, and finishes Orphan and Foreground deletions."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self._store = store
        self._registry = registry
        self._keys: dict[str, Key] = {}  # uid -> the stored object
        self._dependents: dict[str, dict[Key, None]] = {}  # owner uid -> its dependents
        # Work, in arrival order: dependents to look at, owners whose deletion waits on us.
        self._attempts: dict[Key, None] = {}
        self._owners: dict[Key, None] = {}
        #: Objects looked at since the start (tests compare it; nothing is timed).
        self.visits = 0
        store.add_observer(self._observe)
        for resource in BY_NAME:
            for obj in store.list(resource):
                self._observe(Event("ADDED", resource, obj, 0))

    @property
    def has_work(self) -> bool:
        return bool(self._attempts or self._owners)

    # -- the store observer: index and queue, never write ----------------------------

    def _observe(self, event: Event) -> None:
        resource = event.resource
        if resource not in BY_NAME:
            return
        obj, meta = event.object, event.object["metadata"]
        key: Key = (resource, meta.get("namespace", ""), meta["name"])
        uid = meta.get("uid", "")
        for ref in _references(event.previous):
            self._unlink(ref.get("uid", ""), key)
        if event.type == "DELETED":
            self._keys.pop(uid, None)
            # Its dependents may now be garbage; a foreground owner may be free to go.
            self._attempts.update(dict.fromkeys(self._dependents.get(uid, {})))
            for ref in _references(obj):
                self._unlink(ref.get("uid", ""), key)
                owner = self._keys.get(ref.get("uid", ""))
                if owner is not None:
                    self._owners[owner] = None
            self._attempts.pop(key, None)
            self._owners.pop(key, None)
            return
        self._keys[uid] = key
        for ref in _references(obj):
            self._dependents.setdefault(ref.get("uid", ""), {})[key] = None
        if meta.get("deletionTimestamp") and {ORPHAN, FOREGROUND} & set(_finalizers(obj)):
            self._owners[key] = None
        elif _references(obj) and (
            event.type == "ADDED" or _references(obj) != _references(event.previous)
        ):
            self._attempts[key] = None  # an owner it names may be absent

    def _unlink(self, owner_uid: str, key: Key) -> None:
        dependents = self._dependents.get(owner_uid)
        if dependents is not None:
            dependents.pop(key, None)
            if not dependents:
                del self._dependents[owner_uid]

    # -- the work --------------------------------------------------------------------

    def collect(self, budget: int | None = None) -> bool:
        """Processes queued work (about ``budget`` objects, or all); True when work is left."""
        done = 0
        while self.has_work and (budget is None or done < budget):
            done += 1
            self.visits += 1
            if self._owners:
                key = next(iter(self._owners))
                del self._owners[key]
                self._guarded(self._finish_deletion, key)
            else:
                key = next(iter(self._attempts))
                del self._attempts[key]
                self._guarded(self._attempt_to_delete, key)
        return self.has_work

    def _guarded(self, step: Callable[[Key], None], key: Key) -> None:
        try:
            step(key)
        except ApiError as exc:  # gone meanwhile, or refused: the next change retries
            log.debug("garbage collection of %s: %s", key, exc)

    def _get(self, key: Key) -> Object | None:
        return self._store.get(*key)

    def _finish_deletion(self, key: Key) -> None:
        """An owner being deleted with the orphan or foregroundDeletion finalizer."""
        obj = self._get(key)
        if obj is None or not obj["metadata"].get("deletionTimestamp"):
            return
        uid = obj["metadata"]["uid"]
        finalizers = _finalizers(obj)
        if ORPHAN in finalizers:
            for dependent in list(self._dependents.get(uid, {})):
                self._drop_references(dependent, {uid})
            self._remove_finalizer(key, ORPHAN)
        elif FOREGROUND in finalizers:
            blocking = [
                dependent
                for dependent in self._dependents.get(uid, {})
                if any(
                    ref.get("uid") == uid and ref.get("blockOwnerDeletion")
                    for ref in _references(self._get(dependent))
                )
            ]
            if not blocking:
                self._remove_finalizer(key, FOREGROUND)
                return
            for dependent in self._dependents.get(uid, {}):
                self._attempts[dependent] = None

    def _attempt_to_delete(self, key: Key) -> None:
        """A dependent: deleted when no owner it names is left (attemptToDeleteItem)."""
        obj = self._get(key)
        if obj is None:
            return
        if obj["metadata"].get("deletionTimestamp"):
            if _deleting_dependents(obj):
                self._owners[key] = None
            return  # being deleted already: a one-way trip
        refs = _references(obj)
        if not refs:
            return
        solid, dangling, waiting = self._classify(key, refs)
        if solid:
            if dangling or waiting:
                self._drop_references(key, dangling | waiting)
            return
        if waiting and self._dependents.get(obj["metadata"]["uid"]):
            policy = "Foreground"
        elif ORPHAN in _finalizers(obj):
            policy = "Orphan"
        elif FOREGROUND in _finalizers(obj):
            policy = "Foreground"
        else:
            policy = "Background"
        resource = BY_NAME[key[0]]
        self._registry.delete(resource, key[1], key[2], propagation=policy)

    def _classify(self, key: Key, refs: list[Object]) -> tuple[set[str], set[str], set[str]]:
        """The owner uids that are present, gone (dangling), and deleting their dependents."""
        solid: set[str] = set()
        dangling: set[str] = set()
        waiting: set[str] = set()
        for ref in refs:
            uid = str(ref.get("uid", ""))
            owner_resource = self._served(ref)
            if owner_resource is None:
                solid.add(uid)  # a kind we cannot look up: assume it is there
                continue
            owner_key = self._keys.get(uid)
            owner = self._get(owner_key) if owner_key is not None else None
            namespace = key[1] if owner_resource.namespaced else ""
            if (
                owner is None
                or owner_key is None
                or owner_key[0] != owner_resource.name
                or owner_key[1] != namespace
            ):
                dangling.add(uid)
            elif _deleting_dependents(owner):
                waiting.add(uid)
            else:
                solid.add(uid)
        return solid, dangling, waiting

    @staticmethod
    def _served(ref: Object) -> ResourceType | None:
        resource = BY_KIND.get(str(ref.get("kind", "")))
        if resource is None or resource.api_version != ref.get("apiVersion"):
            return None
        return resource

    def _drop_references(self, key: Key, uids: set[str]) -> None:
        obj = self._get(key)
        if obj is None:
            return
        kept = [ref for ref in _references(obj) if ref.get("uid") not in uids]
        if len(kept) == len(_references(obj)):
            return
        changed = copy.deepcopy(obj)
        if kept:
            changed["metadata"]["ownerReferences"] = kept
        else:
            del changed["metadata"]["ownerReferences"]
        self._update(key, changed)

    def _remove_finalizer(self, key: Key, finalizer: str) -> None:
        obj = self._get(key)
        if obj is None or finalizer not in _finalizers(obj):
            return
        changed = copy.deepcopy(obj)
        remaining = [f for f in _finalizers(obj) if f != finalizer]
        if remaining:
            changed["metadata"]["finalizers"] = remaining
        else:
            del changed["metadata"]["finalizers"]
        self._update(key, changed)  # the last finalizer gone: the registry deletes it

    def _update(self, key: Key, obj: Object) -> None:
        resource = BY_NAME[key[0]]
        self._registry.update(resource, key[1], key[2], obj, check_resource_version=False)
