"""The whole stack on loopback for tests: devcluster → gRPC service → REST gateway.

Each server is real and listens on a port 0 socket; the service and gateway run
in a background thread's event loop (as ``kubeupdate serve`` runs them), so the
tests can use plain blocking HTTP and gRPC clients. The ``stack`` fixture in
tests/conftest.py builds one per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import grpc
from devcluster.manifests import load_manifests

from devcluster import DevCluster
from gateway.settings import GatewaySettings
from kubeupdate.auth.config import AuthConfig
from kubeupdate.demo import SAMPLES
from kubeupdate.guarded.terms import LeaseTerms
from kubeupdate.registry.config import RegistryConfig
from kubeupdate.rollouts.settings import RolloutSettings
from kubeupdate.service import ServerConfig
from kubeupdate.serving import Listening, serve_all


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Stack:
    cluster: DevCluster
    grpc_port: int
    http_port: int
    _local: threading.local = field(default_factory=threading.local)

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """One HTTP request on this thread's keep-alive connection."""
        if isinstance(body, str):
            body = body.encode()
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
            self._local.connection = connection
        try:
            connection.request(method, path, body=body, headers=headers or {})
            answer = connection.getresponse()
            data = answer.read()
        except (ConnectionError, http.client.HTTPException):
            connection.close()
            self._local.connection = None
            raise
        return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post_json(self, path: str, document: Any) -> Response:
        return self.request(
            "POST", path, json.dumps(document), {"Content-Type": "application/json"}
        )

    def image_of(self, namespace: str, deployment: str, container: str) -> str:
        obj = self.cluster.get("deployments", namespace, deployment)
        assert obj is not None
        spec = obj["spec"]["template"]["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            if c["name"] == container:
                return str(c["image"])
        raise AssertionError(f"no container {container}")


class StackThread:
    """serve_all() in a thread with its own loop; start() returns once both listen."""

    def __init__(
        self,
        config: ServerConfig,
        settings: GatewaySettings,
        channel_credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._config = config
        self._settings = settings
        self._channel_credentials = channel_credentials
        self._ready = threading.Event()
        self._listening: Listening | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="stack", daemon=True)

    def start(self) -> Listening:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("the service and gateway did not start within 30 s")
        if self._error is not None:
            raise self._error
        assert self._listening is not None
        return self._listening

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def ready(listening: Listening) -> None:
            self._listening = listening
            self._ready.set()

        await serve_all(
            self._config,
            self._settings,
            channel_credentials=self._channel_credentials,
            ready=ready,
            stop=self._stop,
        )


def seed_samples(cluster: DevCluster) -> None:
    """The demo's Deployments (default/web: app, sidecar; staging/api); journal cleared."""
    for obj in load_manifests(SAMPLES):
        if obj["kind"] == "Namespace" and cluster.get("namespaces", "", obj["metadata"]["name"]):
            continue
        cluster.create(obj)
    cluster.journal.clear()


DEFAULT_GUARD = LeaseTerms()


@contextlib.contextmanager
def running_stack(
    cluster: DevCluster,
    auth: AuthConfig,
    *,
    call_timeout: float | None = None,
    rollouts: RolloutSettings | None = None,
    forwarded_allow_ips: str = "",
    channel_credentials: grpc.ChannelCredentials | None = None,
    registry: RegistryConfig | None = None,
    guard: LeaseTerms | None = DEFAULT_GUARD,
) -> Iterator[Stack]:
    """The samples seeded, then the service and gateway started in front of ``cluster``.

    ``call_timeout`` shortens the gateway's deadline per forwarded call;
    ``rollouts`` replaces the service's rollout settings; ``forwarded_allow_ips``
    are the proxies the gateway believes; ``channel_credentials`` secure the
    gateway's calls to a service on TLS; ``registry`` sets the service's
    registry flags; ``guard`` None runs waits unguarded.
    """
    seed_samples(cluster)
    settings = GatewaySettings(
        upstream="", port=0, access_log=False, forwarded_allow_ips=forwarded_allow_ips
    )
    if call_timeout is not None:
        settings = replace(settings, call_timeout=call_timeout)
    config = ServerConfig(port=0, kubeconfig=cluster.kubeconfig_path, auth=auth, guard=guard)
    if rollouts is not None:
        config = replace(config, rollouts=rollouts)
    if registry is not None:
        config = replace(config, registry=registry)
    runner = StackThread(config, settings, channel_credentials)
    listening = runner.start()
    assert listening.grpc_port is not None
    assert listening.http_port is not None
    try:
        yield Stack(cluster, listening.grpc_port, listening.http_port)
    finally:
        runner.stop()
