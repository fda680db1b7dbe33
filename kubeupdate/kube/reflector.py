"""Keeping a local copy of a few objects current: list, then watch.

A :class:`Reflector` is a small cousin of client-go's: it lists the selected
objects, watches from the list's resourceVersion, and

- when the watch ends (the server's ``timeoutSeconds``) or its connection
  drops, watches again from the last resourceVersion it saw, so no event is
  missed and none is replayed;
- when the API server answers 410 Expired (the history was compacted), lists
  again and carries on from the new list;
- when the API server cannot be reached or answers an error that waiting can
  fix (timeouts, 5xx, 429), tries again after a jittered back-off that doubles
  up to :data:`MAX_BACKOFF`, for as long as it runs: a kube-apiserver being
  restarted refuses connections for seconds or minutes, and every informer
  must carry on once it is back, as client-go's reflector does.

What it lists and watches goes to a :class:`Mirror` (an
:class:`~kubeupdate.kube.informers.Informer` keeps the objects and wakes
their readers). Only errors that waiting cannot fix (403, 404 of the
namespace, an answer that is not a watch) end :meth:`run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Protocol

from kubeupdate.kube import errors
from kubeupdate.kube.api import JsonObject, Resource, WatchApi, WatchEvent

log = logging.getLogger(__name__)

DEFAULT_WATCH_SECONDS = 300
#: Seconds of the first back-off after a failure; it doubles with each failure in a row.
DEFAULT_BACKOFF = 0.1
#: The longest back-off, in seconds, however long the API server stays away.
MAX_BACKOFF = 2.0

#: What waiting can fix: the attempt is made again after a back-off.
_PASSING = (errors.ConnectionFailed, errors.Timeout, errors.ServerError, errors.TooManyRequests)


class Mirror(Protocol):
    """Where a reflector puts what it lists and watches."""

    def replace(self, objects: list[JsonObject]) -> None:
        """A list answered: these are all the selected objects now."""
        ...

    def apply(self, event: WatchEvent) -> None:
        """One ADDED, MODIFIED or DELETED event (never a BOOKMARK)."""
        ...


class Reflector:
    """Mirrors the objects of one resource, in one namespace or in all (``None``), that
    match the selectors."""

    def __init__(
        self,
        api: WatchApi,
        resource: Resource,
        namespace: str | None,
        mirror: Mirror,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        watch_seconds: int = DEFAULT_WATCH_SECONDS,
        backoff: float = DEFAULT_BACKOFF,
    ) -> None:
        self._api = api
        self._mirror = mirror
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self._watch_seconds = watch_seconds
        self._backoff = backoff
        #: Lists made (more than one means a 410 or a failure forced a re-list).
        self.lists = 0
        #: Watch requests made.
        self.watches = 0
        self._resource_version: str | None = None

    @property
    def resource_version(self) -> str | None:
        """Where the watch resumes from: the last list's, event's or bookmark's version."""
        return self._resource_version

    async def run(self) -> None:
        """List and watch until cancelled; raises only what retrying cannot fix."""
        failures = 0  # attempts in a row that failed: how long to back off
        expired_last = False
        while True:
            try:
                if self._resource_version is None:
                    await self._list()
                started = time.monotonic()
                if await self._watch() or time.monotonic() - started >= 0.5:
                    failures = 0  # the server ended the watch in time; watch again
                    expired_last = False
                    continue
                # Ended at once with nothing in it: back off as after a failure, so a
                # misbehaving server is not hammered.
                raise errors.ConnectionFailed("the API server ended the watch at once")
            except errors.Expired:
                log.info("%s: resourceVersion expired (410); listing again", self._describe())
                self._resource_version = None
                failures += 1
                if not expired_last:
                    expired_last = True
                    continue  # the first re-list goes at once
                delay = self._delay(failures)  # a fresh list expired at once: back off
            except _PASSING as exc:
                failures += 1
                delay = self._delay(failures)
                if isinstance(exc, errors.TooManyRequests) and exc.retry_after is not None:
                    delay = exc.retry_after
                log.info("%s: %s; watching again in %.2fs", self._describe(), exc, delay)
            await asyncio.sleep(delay)

    def _delay(self, failures: int) -> float:
        """Full jitter: replicas that lost the API server together do not return together."""
        doublings = min(failures - 1, 30)  # an outage of hours must not overflow a float
        return random.uniform(0, min(MAX_BACKOFF, self._backoff * 2**doublings))

    async def _list(self) -> None:
        self.lists += 1
        listed = await self._api.list_objects(
            self.resource,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        items = [
            item
            for item in listed.get("items") or []
            if isinstance(item, dict) and isinstance(item.get("metadata"), dict)
        ]
        self._resource_version = str((listed.get("metadata") or {}).get("resourceVersion", ""))
        self._mirror.replace(items)

    async def _watch(self) -> int:
        """Watch until the server ends it; the number of events received."""
        assert self._resource_version is not None
        received = 0
        self.watches += 1
        events = self._api.watch(
            self.resource,
            self.namespace,
            resource_version=self._resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=self._watch_seconds,
        )
        # aclosing: leaving early (cancellation) closes the connection now, not at GC.
        async with contextlib.aclosing(events):
            async for event in events:
                received += 1
                metadata = event.object.get("metadata") or {}
                version = metadata.get("resourceVersion")
                if version:
                    self._resource_version = str(version)
                if event.type != "BOOKMARK":  # a bookmark only moves the version on
                    self._mirror.apply(event)
        return received

    def _describe(self) -> str:
        selectors = ",".join(s for s in (self.label_selector, self.field_selector) if s)
        where = "all namespaces" if self.namespace is None else self.namespace
        return f"watch of {self.resource.plural} in {where} ({selectors or 'all'})"
