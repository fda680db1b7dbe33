"""Shared watches: one list+watch per (resource, namespace, label selector), any number of readers.

A small cousin of client-go's shared informers. Waits, rollout streams and
the guardian of durable rollouts all need to hear about the same few kinds of
objects in the same namespaces; one watch per reader would make the load on
the API server grow with the number of readers. Here it grows with the
number of (resource, namespace) pairs in use::

    informers = Informers(client)
    changed = asyncio.Event()
    with informers.read(PODS, "prod", wake=changed.set) as pods:
        pods.follow(Owner(replica_set_uid))
        await changed.wait()
        pods.check()  # raises what broke the informer for good (e.g. 403)
        running = pods.owned_by(replica_set_uid)

- An :class:`Informer` is started by its first reader and stopped ``linger``
  seconds after its last reader left; a reader that comes back within the
  linger finds its cache warm.
- It keeps one :class:`~kubeupdate.kube.reflector.Reflector` running: a list,
  then a watch with bookmarks, resumed after a dropped connection, and one
  re-list after 410 Expired for every reader at once.
- Its cache is indexed by name, by owner uid and by label. A reader follows
  what concerns it (:class:`Name`, :class:`Owner`, :class:`Label`, or
  :data:`EVERYTHING`) and is woken only by events about such objects (as
  they were before the event or after it), by each list, and when the
  informer breaks.
- An API server out of reach (restarting, overloaded) only delays the informer:
  its reflector tries again until it is back, and readers wait, bounded by
  their own deadlines. When the reflector gives up (a 403 or a 404 that
  waiting cannot fix), the informer is broken: its readers are woken and
  see :attr:`Reader.error`. A reader that arrives ``retry_broken_after``
  seconds later gets a new informer, which tries again.

A cache may lag behind a write its reader has just made: compare what the
write returned (``metadata.generation`` of the object) with what the cache
holds before trusting it. Cached objects are shared by every reader: read
them, never change them.

Use on the objects of a guardian (per namespace, or ``namespace=None`` for
all namespaces, with a label selector at the informer level)::

    with informers.read(LEASES, None, wake=changed.set,
                        label_selector="kubeupdate.io/guarded") as leases:
        leases.follow(EVERYTHING)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from kubeupdate.kube import errors
from kubeupdate.kube.api import JsonObject, Resource, WatchApi, WatchEvent
from kubeupdate.kube.reflector import DEFAULT_BACKOFF, DEFAULT_WATCH_SECONDS, Reflector

log = logging.getLogger(__name__)

#: Seconds an informer outlives its last reader.
DEFAULT_LINGER = 5.0
#: Seconds a broken informer keeps answering its error before a new one tries again.
DEFAULT_RETRY_BROKEN_AFTER = 5.0

K = TypeVar("K")
V = TypeVar("V")

#: (namespace, name) of an object; namespace "" for cluster-scoped objects.
ObjectKey = tuple[str, str]


@dataclass(frozen=True)
class Name:
    """Follow the object with this name (namespace "" when cluster-scoped)."""

    namespace: str
    name: str


@dataclass(frozen=True)
class Owner:
    """Follow the objects that name this uid in their ``ownerReferences``."""

    uid: str


@dataclass(frozen=True)
class Label:
    """Follow the objects that carry this label with this value."""

    key: str
    value: str


@dataclass(frozen=True)
class Everything:
    """Follow every object of the informer."""


EVERYTHING = Everything()

Interest = Name | Owner | Label | Everything


@dataclass(frozen=True)
class InformerKey:
    """What one informer lists and watches; ``namespace`` None means all namespaces."""

    resource: Resource
    namespace: str | None
    label_selector: str | None = None

    def describe(self) -> str:
        where = "all namespaces" if self.namespace is None else f"namespace {self.namespace}"
        selector = f" ({self.label_selector})" if self.label_selector else ""
        return f"{self.resource.plural} in {where}{selector}"


class Informer:
    """One reflector's objects, indexed, and the readers to wake when they change."""

    def __init__(
        self, api: WatchApi, key: InformerKey, *, watch_seconds: int, backoff: float
    ) -> None:
        self.key = key
        #: True once the first list has filled the cache.
        self.synced = False
        #: What broke the informer for good; None while it runs.
        self.error: Exception | None = None
        self.broken_at: float | None = None
        self._objects: dict[ObjectKey, JsonObject] = {}
        self._owned: defaultdict[str, set[ObjectKey]] = defaultdict(set)
        self._labelled: defaultdict[tuple[str, str], set[ObjectKey]] = defaultdict(set)
        # Who follows what, one index per kind of interest: an event looks up plain
        # strings and tuples, never builds an Interest.
        self._by_name: defaultdict[ObjectKey, set[Reader]] = defaultdict(set)
        self._by_owner: defaultdict[str, set[Reader]] = defaultdict(set)
        self._by_label: defaultdict[tuple[str, str], set[Reader]] = defaultdict(set)
        self._following_everything: set[Reader] = set()
        self.readers: set[Reader] = set()
        self.reflector = Reflector(
            api,
            key.resource,
            key.namespace,
            self,
            label_selector=key.label_selector,
            watch_seconds=watch_seconds,
            backoff=backoff,
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Listing or watching now (started, not stopped, not broken)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"informer {self.key.describe()}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # Returns once the watch's connection is closed.
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        try:
            await self.reflector.run()
        except errors.KubeError as exc:
            log.warning("shared watch of %s stopped: %s", self.key.describe(), exc)
            self._break(exc)
        except Exception as exc:
            log.exception("shared watch of %s failed", self.key.describe())
            self._break(exc)

    def _break(self, exc: Exception) -> None:
        self.error = exc
        self.broken_at = time.monotonic()
        self._wake(self.readers)

    # -- what the reflector delivers (kubeupdate.kube.reflector.Mirror) -------------------

    def replace(self, objects: list[JsonObject]) -> None:
        self._objects.clear()
        self._owned.clear()
        self._labelled.clear()
        for obj in objects:
            self._store(_slim(obj))
        self.synced = True
        self._wake(self.readers)  # a (re-)list may have changed anything

    def apply(self, event: WatchEvent) -> None:
        obj = _slim(event.object)
        key = _key(obj)
        old = self._objects.get(key)
        if old is not None:
            self._unindex(key, old)
        if event.type == "DELETED":
            self._objects.pop(key, None)
        else:
            self._store(obj)
        woken = self._followers_of(obj)
        if old is not None:
            woken |= self._followers_of(old)
        self._wake(woken)

    def _store(self, obj: JsonObject) -> None:
        key = _key(obj)
        self._objects[key] = obj
        for uid in _owner_uids(obj):
            self._owned[uid].add(key)
        for label in _labels(obj):
            self._labelled[label].add(key)

    def _unindex(self, key: ObjectKey, obj: JsonObject) -> None:
        for uid in _owner_uids(obj):
            _discard(self._owned, uid, key)
        for label in _labels(obj):
            _discard(self._labelled, label, key)

    def _followers_of(self, obj: JsonObject) -> set[Reader]:
        found = set(self._following_everything)
        found |= self._by_name.get(_key(obj), set())
        for uid in _owner_uids(obj):
            found |= self._by_owner.get(uid, set())
        for label in _labels(obj):
            found |= self._by_label.get(label, set())
        return found

    def follow(self, reader: Reader, interest: Interest) -> None:
        match interest:
            case Name(namespace, name):
                self._by_name[namespace, name].add(reader)
            case Owner(uid):
                self._by_owner[uid].add(reader)
            case Label(key, value):
                self._by_label[key, value].add(reader)
            case Everything():
                self._following_everything.add(reader)

    def unfollow(self, reader: Reader, interest: Interest) -> None:
        match interest:
            case Name(namespace, name):
                _discard(self._by_name, (namespace, name), reader)
            case Owner(uid):
                _discard(self._by_owner, uid, reader)
            case Label(key, value):
                _discard(self._by_label, (key, value), reader)
            case Everything():
                self._following_everything.discard(reader)

    @staticmethod
    def _wake(readers: set[Reader]) -> None:
        for reader in readers:
            reader.wake()

    # -- what readers see -------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> JsonObject | None:
        return self._objects.get((namespace, name))

    def owned_by(self, uid: str) -> list[JsonObject]:
        return [self._objects[key] for key in self._owned.get(uid, ())]

    def labelled(self, key: str, value: str) -> list[JsonObject]:
        return [self._objects[k] for k in self._labelled.get((key, value), ())]

    def objects(self) -> list[JsonObject]:
        return list(self._objects.values())


class Reader:
    """One reader of an informer: what wakes it, and read access to the cache.

    Made by :meth:`Informers.read`; closed when that context ends.
    """

    def __init__(self, informer: Informer, wake: Callable[[], None]) -> None:
        self._informer = informer
        #: Called (synchronously, on the event loop) when something it follows changed.
        self.wake = wake
        self._interests: set[Interest] = set()
        informer.readers.add(self)

    def follow(self, interest: Interest) -> None:
        """Be woken by changes of these objects too."""
        self._interests.add(interest)
        self._informer.follow(self, interest)

    def unfollow(self, interest: Interest) -> None:
        if interest in self._interests:
            self._interests.discard(interest)
            self._informer.unfollow(self, interest)

    def close(self) -> None:
        for interest in list(self._interests):
            self.unfollow(interest)
        self._informer.readers.discard(self)

    @property
    def key(self) -> InformerKey:
        return self._informer.key

    @property
    def synced(self) -> bool:
        """The cache holds a complete list (it may still lag behind a write just made)."""
        return self._informer.synced

    @property
    def error(self) -> Exception | None:
        """What broke the informer for good (None while it works)."""
        return self._informer.error

    @property
    def resource_version(self) -> str | None:
        """How far the cache has come: the last list's, event's or bookmark's version."""
        return self._informer.reflector.resource_version

    def check(self) -> None:
        """Raise what broke the informer, if anything did."""
        if self._informer.error is not None:
            raise self._informer.error

    def get(self, name: str, namespace: str | None = None) -> JsonObject | None:
        """The object named ``name``; its namespace defaults to the informer's."""
        if namespace is None:
            namespace = self._informer.key.namespace or ""
        return self._informer.get(namespace, name)

    def owned_by(self, uid: str) -> list[JsonObject]:
        """The objects that name ``uid`` in their ownerReferences."""
        return self._informer.owned_by(uid)

    def labelled(self, key: str, value: str) -> list[JsonObject]:
        return self._informer.labelled(key, value)

    def objects(self) -> list[JsonObject]:
        return self._informer.objects()


class Informers:
    """The shared informers of one Kubernetes client (one per :class:`InformerKey`)."""

    def __init__(
        self,
        api: WatchApi,
        *,
        linger: float = DEFAULT_LINGER,
        retry_broken_after: float = DEFAULT_RETRY_BROKEN_AFTER,
        watch_seconds: int = DEFAULT_WATCH_SECONDS,
        backoff: float = DEFAULT_BACKOFF,
    ) -> None:
        self._api = api
        self._backoff = backoff
        self._linger = linger
        self._retry_broken_after = retry_broken_after
        self._watch_seconds = watch_seconds
        self._informers: dict[InformerKey, Informer] = {}
        self._stop_timers: dict[InformerKey, asyncio.TimerHandle] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        # Requests of informers no longer kept, so the totals never go down.
        self._retired_lists = 0
        self._retired_watches = 0

    @contextlib.contextmanager
    def read(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        wake: Callable[[], None],
        label_selector: str | None = None,
    ) -> Iterator[Reader]:
        """A reader of the shared informer for these; ``wake`` is called when it should look.

        The informer starts now if none runs; the reader follows nothing
        until told (:meth:`Reader.follow`), except lists and breakage.
        """
        informer = self._informer(InformerKey(resource, namespace, label_selector))
        reader = Reader(informer, wake)
        try:
            yield reader
        finally:
            reader.close()
            self._left(informer)

    def _informer(self, key: InformerKey) -> Informer:
        timer = self._stop_timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        informer = self._informers.get(key)
        if informer is not None and self._retry_due(informer):
            self._retire(informer)
            informer = None
        if informer is None:
            informer = Informer(
                self._api, key, watch_seconds=self._watch_seconds, backoff=self._backoff
            )
            self._informers[key] = informer
            informer.start()
        return informer

    def _retry_due(self, informer: Informer) -> bool:
        broken_at = informer.broken_at
        return broken_at is not None and time.monotonic() - broken_at >= self._retry_broken_after

    def _left(self, informer: Informer) -> None:
        if informer.readers or self._informers.get(informer.key) is not informer:
            return
        loop = asyncio.get_running_loop()
        self._stop_timers[informer.key] = loop.call_later(
            self._linger, self._stop_unused, informer.key
        )

    def _stop_unused(self, key: InformerKey) -> None:
        self._stop_timers.pop(key, None)
        informer = self._informers.get(key)
        if informer is not None and not informer.readers:
            self._retire(informer)

    def _retire(self, informer: Informer) -> None:
        del self._informers[informer.key]
        self._retired_lists += informer.reflector.lists
        self._retired_watches += informer.reflector.watches
        task = asyncio.create_task(informer.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        """Stop every informer (their readers see no more changes)."""
        for timer in self._stop_timers.values():
            timer.cancel()
        self._stop_timers.clear()
        for informer in list(self._informers.values()):
            self._retire(informer)
        await asyncio.gather(*self._stopping, return_exceptions=True)

    # -- figures (metrics, tests, the benchmark) ----------------------------------------------

    @property
    def open_watches(self) -> int:
        """Informers listing or watching now: one Kubernetes watch connection each."""
        return sum(1 for informer in self._informers.values() if informer.running)

    @property
    def readers(self) -> int:
        return sum(len(informer.readers) for informer in self._informers.values())

    @property
    def lists(self) -> int:
        """Lists sent since the start, by all informers."""
        live = sum(i.reflector.lists for i in self._informers.values())
        return self._retired_lists + live

    @property
    def watches(self) -> int:
        """Watch requests sent since the start, by all informers."""
        live = sum(i.reflector.watches for i in self._informers.values())
        return self._retired_watches + live


def _key(obj: JsonObject) -> ObjectKey:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _owner_uids(obj: JsonObject) -> list[str]:
    references = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [str(ref["uid"]) for ref in references if isinstance(ref, dict) and ref.get("uid")]


def _labels(obj: JsonObject) -> list[tuple[str, str]]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return [(str(k), str(v)) for k, v in labels.items()] if isinstance(labels, dict) else []


def _slim(obj: JsonObject) -> JsonObject:
    """The object as cached: without managedFields, often half of an object and never read."""
    metadata = obj.get("metadata")
    if isinstance(metadata, dict) and "managedFields" in metadata:
        del metadata["managedFields"]
    return obj


def _discard(index: dict[K, set[V]], key: K, value: V) -> None:
    """Remove ``value`` from ``index[key]``, and the key once its set is empty."""
    found = index.get(key)
    if found is not None:
        found.discard(value)
        if not found:
            del index[key]
