"""``DevCluster``: a devcluster in a background thread, driven from tests or the CLI.

The server runs on its own event loop in its own thread so synchronous
clients (the ``kubernetes`` package, kubectl in a subprocess) work from the
test thread. Every method that touches the store is marshalled onto that
loop; only the loop thread ever reads or writes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from devcluster.admin import Admin
from devcluster.clock import SimulatedClock
from devcluster.controllers import FailureRules, ImageCatalog, RolloutController, StaticCatalog
from devcluster.credentials import (
    Pki,
    Tokens,
    development_pki,
    kubeconfig,
    server_ssl_context,
    write_kubeconfig,
    write_private,
)
from devcluster.faults import Faults
from devcluster.garbage import GarbageCollector
from devcluster.journal import Journal
from devcluster.registry import Registry
from devcluster.resources import BY_KIND, BY_NAME, NAMESPACES, ResourceType
from devcluster.selectors import Selection
from devcluster.server import ApiServer
from devcluster.store import Object, Store

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Namespaces every cluster has from the start.
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
#: How often (real seconds) controllers run when the clock moves by itself.
TICK_SECONDS = 0.05
#: ``advance`` never moves the clock more than this at once, so controllers see each step.
MAX_STEP_SECONDS = 1.0
#: Objects the controllers look at before the server's loop gets a turn (a few ms of work).
RECONCILE_CHUNK = 25
_CALL_TIMEOUT = 60.0


@dataclass
class ControllerStats:
    """How long the controllers held the server's event loop: the devcluster's own share.

    Wall time (what a client waits, machine load included) and the loop thread's CPU
    time (the work itself), in total and for the longest chunk.
    """

    busy_seconds: float = 0.0
    busy_cpu_seconds: float = 0.0
    longest_block_seconds: float = 0.0
    chunks: int = 0

    def count(self, wall: float, cpu: float) -> None:
        self.busy_seconds += wall
        self.busy_cpu_seconds += cpu
        self.longest_block_seconds = max(self.longest_block_seconds, wall)
        self.chunks += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "busySeconds": self.busy_seconds,
            "busyCpuSeconds": self.busy_cpu_seconds,
            "longestBlockSeconds": self.longest_block_seconds,
            "chunks": self.chunks,
        }


class DevCluster:
    """A Kubernetes API emulator on loopback.

    ``speed`` is simulated seconds per real second. It defaults to 0: time
    stands still and only :meth:`advance` moves it, so tests are deterministic
    (the CLI runs at 1.0). With ``tls`` (the default) it serves HTTPS with
    its own CA and requires its bearer token; without, plain HTTP and no
    authentication. ``seed`` objects (Namespaces first, then the rest) are
    created at start, creating the namespaces they need, and their rollouts
    are run to completion. Images exist as ``image_catalog`` says (the shipped
    catalogue by default) unless ``failure_rules`` mark them to fail;
    ``record_events=False`` writes no Events.
    """

    def __init__(
        self,
        tls: bool = True,
        speed: float = 0.0,
        seed: Iterable[Object] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        failure_rules: FailureRules | None = None,
        image_catalog: ImageCatalog | None = None,
        record_events: bool = True,
        bookmark_interval: float = 1.0,
        history: int = 10_000,
    ) -> None:
        self.tls = tls
        self.host = host
        self.port = port
        self.clock = SimulatedClock(speed=speed)
        self.store = Store(self.clock.now, history=history)
        self.rules = failure_rules if failure_rules is not None else FailureRules()
        self.catalog = image_catalog if image_catalog is not None else StaticCatalog.default()
        self.controller = RolloutController(
            self.store, self.clock, self.rules, catalog=self.catalog, record_events=record_events
        )
        self.faults = Faults()
        self.journal = Journal()
        self._tokens = Tokens() if tls else None
        self.registry = Registry(self.store, self.clock.now, self._reconcile)
        self.garbage = GarbageCollector(self.store, self.registry)
        self._server = ApiServer(
            self.registry,
            self.clock,
            self.faults,
            self.journal,
            self._tokens,
            bookmark_interval=bookmark_interval,
            admin=Admin(self),
        )
        self._seed = list(seed or [])
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._draining: asyncio.Task[None] | None = None
        self._advancing = asyncio.Lock()
        self._stats = ControllerStats()
        self._directory: Path | None = None
        self._incluster_dirs: list[Path] = []
        self._reconciling = False

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> DevCluster:
        if self._loop is not None:
            raise RuntimeError("the devcluster is already running")
        self._directory = Path(tempfile.mkdtemp(prefix="devcluster-"))
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="devcluster", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), loop).result(_CALL_TIMEOUT)
            self._write_kubeconfig()
        except BaseException:
            self.stop()
            raise
        return self

    async def _start(self) -> None:
        assert self._directory is not None
        self._advancing = asyncio.Lock()
        for name in BUILTIN_NAMESPACES:
            self._create_namespace(name)
        await self._load_seed()
        ssl_context = server_ssl_context(self._pki(), self._directory) if self.tls else None
        if self.tls:
            (self._directory / "ca.crt").write_bytes(self._pki().ca_pem)
        self._runner = web.AppRunner(
            self._server.application(),
            handler_cancellation=True,  # a watch whose client left must end at once
            access_log=None,
            shutdown_timeout=0.5,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ssl_context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._server.server_address = f"{self.host}:{self.port}"
        self._ticker = asyncio.create_task(self._tick())

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._stop(), loop).result(_CALL_TIMEOUT)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(_CALL_TIMEOUT)
        # Now that the loop has stopped, no watch handler can still add or end one.
        self._server.end_watches()
        if loop is not None:
            loop.close()
        self._loop = None
        self._thread = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    async def _stop(self) -> None:
        for task in (self._ticker, self._draining):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._runner is not None:
            await self._runner.cleanup()

    def __enter__(self) -> DevCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where and how to connect ------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def token(self) -> str | None:
        """The bearer token clients must send (None without TLS: no authentication)."""
        return self._tokens.current if self._tokens else None

    @property
    def kubeconfig_path(self) -> Path:
        return self._path("kubeconfig")

    @property
    def ca_path(self) -> Path | None:
        return self._path("ca.crt") if self.tls else None

    def _pki(self) -> Pki:
        # The shared certificate covers loopback; another address gets its own.
        if self.host in ("127.0.0.1", "::1", "localhost"):
            return development_pki()
        return development_pki((self.host,))

    def kubeconfig(self) -> dict[str, Any]:
        ca = self._pki().ca_pem if self.tls else None
        return kubeconfig(self.url, ca, self.token)

    def write_kubeconfig(self, path: Path) -> None:
        """Writes a kubeconfig for this cluster (context ``devcluster``) to ``path``."""
        write_kubeconfig(path, self.kubeconfig())

    def _write_kubeconfig(self) -> None:
        self.write_kubeconfig(self.kubeconfig_path)

    def _path(self, name: str) -> Path:
        if self._directory is None:
            raise RuntimeError("the devcluster is not running")
        return self._directory / name

    @property
    def incluster_environ(self) -> dict[str, str]:
        """The environment a Pod sees: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT."""
        return {"KUBERNETES_SERVICE_HOST": self.host, "KUBERNETES_SERVICE_PORT": str(self.port)}

    def write_incluster_files(self, directory: Path | str, namespace: str = "default") -> None:
        """Writes ``token``, ``ca.crt`` and ``namespace`` as a service account mount holds them."""
        if not self.tls:
            raise RuntimeError("in-cluster credentials need TLS (the client only speaks HTTPS)")
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        write_private(target / "token", (self.token or "").encode())
        (target / "ca.crt").write_bytes(self._pki().ca_pem)
        (target / "namespace").write_text(namespace)
        if target not in self._incluster_dirs:
            self._incluster_dirs.append(target)

    def rotate_token(self, revoke_old: bool = True) -> str:
        """Issues a new token and rewrites the kubeconfig and in-cluster token files."""
        if self._tokens is None:
            raise RuntimeError("a devcluster without TLS has no tokens")
        token = self._tokens.rotate(revoke_old)
        if self._directory is not None:
            self._write_kubeconfig()
        for directory in self._incluster_dirs:
            write_private(directory / "token", token.encode())
        return token

    # -- objects -----------------------------------------------------------------

    def create(self, obj: Object, dry_run: bool = False) -> Object:
        """Creates an object of any served kind, validated as over HTTP (raises ApiError)."""
        resource = _resource_of(obj)
        namespace = (obj.get("metadata") or {}).get("namespace") or "default"
        return self._copy(
            lambda: self.registry.create(
                resource, namespace if resource.namespaced else "", obj, dry_run
            )
        )

    def create_namespace(self, name: str) -> Object:
        return self._copy(lambda: self._create_namespace(name))

    def get(self, resource: str, namespace: str, name: str) -> Object | None:
        """The stored object (``namespace`` "" for namespaces), or None."""
        return self._copy(lambda: self.store.get(resource, namespace, name))

    def list(
        self, resource: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Object]:
        selection = Selection(BY_NAME[resource], label_selector, None)
        return self._copy(lambda: self.registry.list(BY_NAME[resource], namespace, selection)[0])

    def delete(
        self, resource: str, namespace: str, name: str, propagation: str | None = None
    ) -> Object:
        """Deletes as a DELETE does (``propagation``: Background, Foreground or Orphan).

        Answers the object as removed, or as it stays while finalizers or a grace
        period run.
        """
        return self._copy(
            lambda: (
                self.registry.delete(
                    BY_NAME[resource], namespace, name, propagation=propagation
                ).object
            )
        )

    def patch(
        self, resource: str, namespace: str, name: str, body: bytes, content_type: str
    ) -> Object:
        return self._copy(
            lambda: self.registry.patch(BY_NAME[resource], namespace, name, body, content_type)
        )

    def compact(self) -> None:
        """Forgets the event history: watches from an older resourceVersion get 410 Expired."""
        self._call(self.store.compact)

    @property
    def open_watches(self) -> int:
        """Watches currently streaming (each registers one store listener)."""
        return self._call(lambda: self.store.listener_count)

    @property
    def resource_version(self) -> int:
        return self._call(lambda: self.store.resource_version)

    # -- time --------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Moves simulated time forward, letting controllers act at each step on the way.

        The server keeps answering meanwhile (watches see each step as it happens).
        Call it from any thread but the devcluster's own (there, await ``advance_async``).
        """
        if seconds < 0:
            raise ValueError("the clock cannot go backwards")
        loop = self._loop
        if loop is None:
            raise RuntimeError("the devcluster is not running; call start() first")
        if threading.current_thread() is self._thread:
            raise RuntimeError("on the devcluster's own loop, await advance_async() instead")
        asyncio.run_coroutine_threadsafe(self.advance_async(seconds), loop).result()

    async def advance_async(self, seconds: float) -> None:
        """``advance`` on the devcluster's loop; one advance at a time."""
        if seconds < 0:
            raise ValueError("the clock cannot go backwards")
        async with self._advancing:
            target = self.clock.now() + seconds
            await self._catch_up()
            while (now := self.clock.now()) < target:
                step = target - now
                wakeup = self.controller.next_wakeup()
                if wakeup is not None and wakeup > now:
                    step = min(step, wakeup - now)
                self.clock.advance(min(step, MAX_STEP_SECONDS))
                await self._catch_up()
                await asyncio.sleep(0)  # even a quiet step lets the server answer

    def set_speed(self, speed: float) -> None:
        """Simulated seconds per real second from now on (0 stops the clock)."""
        self.clock.set_speed(speed)

    @property
    def controller_stats(self) -> dict[str, Any]:
        """What the controllers cost the server's loop: busy time, longest block, visits."""
        return self._call(self.stats)

    def stats(self) -> dict[str, Any]:
        """``controller_stats``, on the devcluster's own loop (the admin API's ``/stats``)."""
        return self._stats.as_dict() | {"visits": dict(self.controller.visits)}

    def _reconcile(self) -> None:
        """After an API write: one bounded chunk at once, the rest soon, in the background."""
        if self._reconciling:  # a write made while a chunk runs (the Python API's)
            return
        idle = self._draining is None or self._draining.done()
        if self._run_chunk() and self._loop is not None and idle:
            self._draining = self._loop.create_task(self._catch_up())

    async def _catch_up(self) -> None:
        """Runs the controllers until nothing is left at this instant, yielding between chunks."""
        more = self._run_chunk()
        while more:
            await asyncio.sleep(0)  # the server answers (and watches write) between chunks
            more = self._run_chunk()

    def _run_chunk(self) -> bool:
        """One chunk of controller work; True when more is left."""
        if self._reconciling:
            return False
        self._reconciling = True
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            # The garbage collector first: what it deletes, the controllers then see gone.
            self.garbage.collect(budget=RECONCILE_CHUNK)
            more = self.controller.reconcile(budget=RECONCILE_CHUNK)
            return more or self.garbage.has_work
        except Exception:
            log.exception("the rollout controller failed")
            return False
        finally:
            self._stats.count(time.perf_counter() - started, time.thread_time() - cpu)
            self._reconciling = False

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            if self.clock.speed > 0:
                await self._catch_up()

    # -- seeding -----------------------------------------------------------------

    def _create_namespace(self, name: str) -> Object:
        existing = self.store.get(NAMESPACES.name, "", name)
        if existing is not None:
            return existing
        return self.registry.create(NAMESPACES, "", {"metadata": {"name": name}})

    async def _load_seed(self) -> None:
        if not self._seed:
            return
        ordered = sorted(self._seed, key=lambda o: o.get("kind") != "Namespace")
        for obj in ordered:
            resource = _resource_of(obj)
            if resource is NAMESPACES:
                self._create_namespace(obj["metadata"]["name"])
                continue
            namespace = (obj.get("metadata") or {}).get("namespace") or "default"
            self._create_namespace(namespace)
            self.registry.create(resource, namespace, obj)
        self._seed = []  # a restarted cluster keeps its objects; seeding again would clash
        await self._settle()

    async def _settle(self, limit: float = 120.0) -> None:
        """Runs seeded rollouts until nothing is due soon (failing ones may stay unfinished)."""
        start = self.clock.now()
        while self.clock.now() - start < limit:
            wakeup = self.controller.next_wakeup()
            if wakeup is None:
                break
            # A failing rollout's next event is its progress deadline: leave it progressing.
            if wakeup - self.clock.now() > 60:
                break
            await self.advance_async(max(wakeup - self.clock.now(), 0.01))

    # -- marshalling -------------------------------------------------------------

    def _copy(self, function: Callable[[], T]) -> T:
        """``_call`` for results that are stored snapshots: the caller gets its own copy."""
        return copy.deepcopy(self._call(function))

    def _call(self, function: Callable[[], T]) -> T:
        loop = self._loop
        if loop is None:
            raise RuntimeError("the devcluster is not running; call start() first")
        if threading.current_thread() is self._thread:
            return function()

        async def run() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(_CALL_TIMEOUT)


def _resource_of(obj: Object) -> ResourceType:
    kind = obj.get("kind")
    resource = BY_KIND.get(kind) if isinstance(kind, str) else None
    if resource is None:
        raise ValueError(f"the devcluster does not serve kind {kind!r}")
    return resource
