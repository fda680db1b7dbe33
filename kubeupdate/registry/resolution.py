"""Tag → digest resolution, shared by concurrent checks and kept for a short time.

Fifty CI jobs deploying ``acme/web:1.4.2`` at once must not send fifty
requests to the registry (Docker Hub counts them). Two mechanisms:

- *single flight*: while a resolution of one reference is under way, every
  other caller waits for the same answer (success or error) instead of asking
  again;
- a *short cache*: a successful resolution is kept ``ttl`` seconds (default
  10). A tag is a moving pointer, so the cache stays short; a push seen 10 s
  late is the price of not hammering the registry. Errors are not cached.

Manifests and blobs fetched *by digest* never change (the digest is their
hash), so they are kept in bounded LRUs without a time limit.

The shared request runs with the client's own per-call timeout, not with the
deadline of whichever caller came first; each caller stops waiting at its own
deadline, and the request goes on for the others.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from kubeupdate.registry import errors
from kubeupdate.registry.client import FetchedManifest, RegistryClient
from kubeupdate.registry.endpoints import ImageLocation
from kubeupdate.registry.manifests import Descriptor

DEFAULT_TTL: Final = 10.0

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class Resolution:
    """What a reference pointed to when it was resolved."""

    location: ImageLocation
    digest: str
    media_type: str


class SingleFlight(Generic[K, V]):
    """Runs one coroutine per key at a time; concurrent callers share its outcome."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    def __len__(self) -> int:
        return len(self._running)

    async def run(self, key: K, work: Callable[[], Awaitable[V]], deadline: float | None) -> V:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        # Shielded: a caller that gives up (deadline, cancellation) leaves the
        # request running for the others.
        if deadline is None:
            return await asyncio.shield(task)
        remaining = deadline - time.monotonic()
        try:
            async with asyncio.timeout(max(0.0, remaining)):
                return await asyncio.shield(task)
        except TimeoutError as exc:
            raise errors.Timeout("no time left to wait for the registry's answer") from exc

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning when all waiters left


class Resolver:
    """Reads through one client with coalescing and caching.

    Pointers (tags, the signature and referrers tags, the referrers list) are
    kept ``ttl`` seconds; content addressed by digest (manifests, blobs) is
    kept in bounded LRUs.
    """

    def __init__(
        self,
        client: RegistryClient,
        *,
        ttl: float = DEFAULT_TTL,
        manifests_kept: int = 256,
        blobs_kept: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._resolved: dict[tuple[str, str, str], tuple[float, Resolution]] = {}
        self._resolving: SingleFlight[tuple[str, str, str], Resolution] = SingleFlight()
        self._referrers: dict[tuple[str, str, str], tuple[float, list[Descriptor] | None]] = {}
        self._listing: SingleFlight[tuple[str, str, str], list[Descriptor] | None] = SingleFlight()
        self._manifests: _Lru[FetchedManifest] = _Lru(manifests_kept)
        self._fetching: SingleFlight[tuple[str, str, str], FetchedManifest] = SingleFlight()
        self._blobs: _Lru[bytes] = _Lru(blobs_kept)
        self._downloading: SingleFlight[tuple[str, str, str], bytes] = SingleFlight()

    async def resolve(
        self, location: ImageLocation, *, deadline: float | None = None
    ) -> Resolution:
        """The digest the reference points to now (or at most ``ttl`` seconds ago)."""
        key = (location.registry, location.repository, location.reference)
        cached = self._resolved.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        return await self._resolving.run(key, lambda: self._resolve_now(location), deadline)

    async def manifest(
        self, location: ImageLocation, digest: str, *, deadline: float | None = None
    ) -> FetchedManifest:
        """The manifest or index with this digest, fetched once and kept."""
        key = (location.registry, location.repository, digest)
        fetched = self._manifests.get(key)
        if fetched is not None:
            return fetched
        return await self._fetching.run(key, lambda: self._fetch_now(location, digest), deadline)

    async def blob(
        self, location: ImageLocation, digest: str, *, deadline: float | None = None
    ) -> bytes:
        """A (small) blob with this digest: an image config, a signature payload, a bundle."""
        key = (location.registry, location.repository, digest)
        data = self._blobs.get(key)
        if data is not None:
            return data

        async def download() -> bytes:
            data = await self._client.get_blob(location, digest)
            self._blobs.put(key, data)
            return data

        return await self._downloading.run(key, download, deadline)

    async def referrers(
        self,
        location: ImageLocation,
        digest: str,
        artifact_type: str,
        *,
        deadline: float | None = None,
    ) -> list[Descriptor] | None:
        """The referrers of a digest (None: the registry has no referrers API)."""
        key = (location.registry, location.repository, digest)
        cached = self._referrers.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]

        async def ask() -> list[Descriptor] | None:
            found = await self._client.get_referrers(location, digest, artifact_type=artifact_type)
            self._referrers[key] = (self._clock() + self._ttl, found)
            return found

        return await self._listing.run(key, ask, deadline)

    async def _resolve_now(self, location: ImageLocation) -> Resolution:
        head = await self._client.head_manifest(location, location.reference)
        if head.digest is not None and head.media_type:
            resolution = Resolution(location, head.digest, head.media_type)
        else:
            # Some registries omit Docker-Content-Digest on HEAD: the body tells.
            fetched = await self._client.get_manifest(location, location.reference)
            self._manifests.put((location.registry, location.repository, fetched.digest), fetched)
            resolution = Resolution(location, fetched.digest, fetched.media_type)
        if location.digest is not None and resolution.digest != location.digest:
            raise errors.ProtocolError(
                f"registry {location.registry} answered for {location} with another digest "
                f"({resolution.digest})"
            )
        key = (location.registry, location.repository, location.reference)
        self._resolved[key] = (self._clock() + self._ttl, resolution)
        self._expire()
        return resolution

    async def _fetch_now(self, location: ImageLocation, digest: str) -> FetchedManifest:
        fetched = await self._client.get_manifest(location, digest)
        self._manifests.put((location.registry, location.repository, fetched.digest), fetched)
        return fetched

    def _expire(self) -> None:
        # Bounded without a timer: expired entries go whenever a new one comes.
        now = self._clock()
        for key in [k for k, (until, _) in self._resolved.items() if until <= now]:
            del self._resolved[key]
        for key in [k for k, (until, _) in self._referrers.items() if until <= now]:
            del self._referrers[key]


class _Lru(Generic[V]):
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, str, str], V] = OrderedDict()

    def get(self, key: tuple[str, str, str]) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: tuple[str, str, str], value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)
