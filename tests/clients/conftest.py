"""The servers the clients are tried against.

- ``fake_server``: a fake DeploymentImageService on a real grpc.aio server at
  127.0.0.1:0, in a background thread's event loop, so the synchronous client
  and the CLI under test can call it from the test's own thread;
- ``github_stack``: the real stack (devcluster, service, gateway) as a GitHub
  job meets it: a static token, GitHub OIDC tokens from the job's token
  endpoint (:mod:`tests.clients.github`), and a policy for both.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import grpc
import grpc.aio
import pytest
from kubeupdate.client.credentials import DEFAULT_AUDIENCE
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc
from kubeupdate.v1.error_reason_pb2 import ErrorReason

from devcluster import DevCluster
from gateway.settings import GatewaySettings
from kubeupdate.auth.config import GITHUB_ISSUER, AuthConfig
from kubeupdate.auth.tokens import create_token
from kubeupdate.protocol.grpc.statuses import DETAILS_KEY, rich_status
from kubeupdate.rollouts.settings import RolloutSettings
from kubeupdate.service import ServerConfig
from tests.auth.conftest import REPOSITORY_ID, Issuer
from tests.clients.github import TokenEndpoint
from tests.stack import Stack, StackThread, seed_samples

State = pb.Rollout.State
StateValue: TypeAlias = pb.Rollout.State.ValueType

# Short real-time delays: stuck Pods fail the rollout at once; watches restart every second.
FAST = RolloutSettings(stuck_grace=0.05, watch_seconds=1)
# Guards the fake's waits on the client; never reached when the code under test works.
_GUARD = 30.0


def rollout(
    state: StateValue, updated: int = 3, available: int = 3, **fields: object
) -> pb.Rollout:
    message = pb.Rollout(
        state=state,
        replicas=3,
        updated_replicas=updated,
        ready_replicas=available,
        available_replicas=available,
        revision=2,
    )
    for name, value in fields.items():
        setattr(message, name, value)
    return message


@dataclass
class FakeService(pb_grpc.DeploymentImageServiceServicer):
    """Answers from an in-memory table; ``errors`` makes a method abort instead."""

    images: dict[tuple[str, str, str], str] = field(
        default_factory=lambda: {
            ("default", "web", "migrate"): "busybox:1.36",
            ("default", "web", "app"): "nginx:1.25",
            ("default", "web", "sidecar"): "envoy:1.30",
        }
    )
    init_containers: set[str] = field(default_factory=lambda: {"migrate"})
    # RPC name → (status code, details) to abort with.
    # An RPC's failure: (code, message), or (code, message, reason, metadata) to attach
    # an ErrorInfo as the real service does.
    errors: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    # What the rollout of a waited set ends as.
    set_outcome: pb.Rollout = field(
        default_factory=lambda: rollout(State.STATE_COMPLETE, message="successfully rolled out")
    )
    # The states WatchRollout streams.
    watch_states: list[pb.Rollout] = field(
        default_factory=lambda: [
            rollout(State.STATE_PROGRESSING, 1, 0, message="1 of 3 updated replicas"),
            rollout(State.STATE_PROGRESSING, 2, 1, message="2 of 3 updated replicas"),
            rollout(State.STATE_COMPLETE, message="successfully rolled out"),
        ]
    )
    # When set, WatchRollout streams only this state until a set arrives: the
    # rollout as it was before the change.
    before_set: pb.Rollout | None = None
    # When set, a waited set answers only once the test sets it (e.g. after the
    # client has shown its progress): the order is then deterministic.
    release_set: threading.Event | None = None
    # A waited set's failure after the image was applied, as `errors` gives them:
    # a replica handing the rollout over, or a connection lost.
    set_interrupted: tuple[Any, ...] | None = None
    # The image the container runs after that (another replica rolled it back).
    image_after_interruption: str | None = None
    # What GetGuardedRollout answers, in order (the last one again and again).
    guarded: list[pb.GetGuardedRolloutResponse] = field(default_factory=list)
    requests: list[tuple[str, object]] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)

    async def _enter(
        self, name: str, request: object, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        self.requests.append((name, request))
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        if name in self.errors:
            code, details, *info = self.errors[name]
            trailers = _error_info(code, details, *info) if info else ()
            await context.abort(code, details, trailing_metadata=trailers)

    def _image(self, namespace: str, deployment: str, container: str) -> str | None:
        return self.images.get((namespace, deployment, container))

    async def _require_deployment(
        self, namespace: str, deployment: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        if not any(key[:2] == (namespace, deployment) for key in self.images):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"deployment {deployment} not found")

    async def GetContainerImage(
        self, request: pb.GetContainerImageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetContainerImageResponse:
        await self._enter("GetContainerImage", request, context)
        image = self._image(request.namespace, request.deployment, request.container)
        if image is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"container {request.container} not found"
            )
        return pb.GetContainerImageResponse(
            namespace=request.namespace,
            deployment=request.deployment,
            container=request.container,
            image=image,
        )

    async def SetContainerImage(
        self, request: pb.SetContainerImageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SetContainerImageResponse:
        await self._enter("SetContainerImage", request, context)
        key = (request.namespace, request.deployment, request.container)
        previous = self.images.get(key)
        if previous is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"container {request.container} not found"
            )
        assert previous is not None
        changed = previous != request.image
        if not request.dry_run:
            self.images[key] = request.image
        answer = pb.SetContainerImageResponse(
            namespace=request.namespace,
            deployment=request.deployment,
            container=request.container,
            image=request.image,
            previous_image=previous,
            changed=changed,
            generation=7,
            dry_run=request.dry_run,
        )
        if request.wait and self.set_interrupted is not None:
            code, details, *info = self.set_interrupted
            if self.image_after_interruption is not None:
                self.images[key] = self.image_after_interruption
            await context.abort(code, details, trailing_metadata=_error_info(code, details, *info))
        if request.wait:
            if self.release_set is not None:
                await asyncio.to_thread(self.release_set.wait, _GUARD)
            answer.rollout.CopyFrom(self.set_outcome)
            answer.rollout.duration.FromSeconds(12)
        return answer

    async def ListContainerImages(
        self, request: pb.ListContainerImagesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListContainerImagesResponse:
        await self._enter("ListContainerImages", request, context)
        await self._require_deployment(request.namespace, request.deployment, context)
        containers = [
            pb.ContainerImage(name=c, image=image, init_container=c in self.init_containers)
            for (ns, d, c), image in self.images.items()
            if (ns, d) == (request.namespace, request.deployment)
        ]
        return pb.ListContainerImagesResponse(
            namespace=request.namespace, deployment=request.deployment, containers=containers
        )

    async def GetRolloutStatus(
        self, request: pb.GetRolloutStatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetRolloutStatusResponse:
        await self._enter("GetRolloutStatus", request, context)
        await self._require_deployment(request.namespace, request.deployment, context)
        return pb.GetRolloutStatusResponse(
            namespace=request.namespace,
            deployment=request.deployment,
            rollout=self.watch_states[-1],
        )

    async def WatchRollout(
        self, request: pb.WatchRolloutRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.WatchRolloutResponse]:
        await self._enter("WatchRollout", request, context)
        await self._require_deployment(request.namespace, request.deployment, context)
        states = self.watch_states
        if self.before_set is not None and not any(
            name == "SetContainerImage" for name, _ in self.requests
        ):
            states = [self.before_set]
        for state in states:
            yield pb.WatchRolloutResponse(
                namespace=request.namespace, deployment=request.deployment, rollout=state
            )

    async def ListRevisions(
        self, request: pb.ListRevisionsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListRevisionsResponse:
        await self._enter("ListRevisions", request, context)
        await self._require_deployment(request.namespace, request.deployment, context)
        newest = pb.Revision(
            revision=2,
            replica_set="web-6d4cf56db6",
            change_cause="kubeupdate: app=nginx:1.25 by ci (release 7)",
            containers=[pb.ContainerImage(name="app", image="nginx:1.25")],
            replicas=3,
        )
        newest.create_time.FromSeconds(1_700_000_000)
        oldest = pb.Revision(
            revision=1,
            replica_set="web-5f7b9c8d4",
            containers=[pb.ContainerImage(name="app", image="nginx:1.24")],
        )
        return pb.ListRevisionsResponse(
            namespace=request.namespace, deployment=request.deployment, revisions=[newest, oldest]
        )

    async def GetGuardedRollout(
        self, request: pb.GetGuardedRolloutRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetGuardedRolloutResponse:
        await self._enter("GetGuardedRollout", request, context)
        if not self.guarded:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not faked")
        return self.guarded.pop(0) if len(self.guarded) > 1 else self.guarded[0]

    async def UndoContainerImage(
        self, request: pb.UndoContainerImageRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.UndoContainerImageResponse:
        # The client's undo is tried against the real stack (test_client_undo.py).
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not faked")
        raise AssertionError("abort() returned")


def _error_info(
    code: grpc.StatusCode, details: str, reason: str = "", metadata: dict[str, str] | None = None
) -> tuple[tuple[str, str | bytes], ...]:
    """The trailers of a status with kubeupdate's ErrorInfo, as the real service sends them."""
    if not reason:
        return ()
    return ((DETAILS_KEY, rich_status(code, details, ErrorReason.Value(reason), metadata or {})),)


@dataclass
class FakeServer:
    service: FakeService
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def calls(self, name: str) -> list[object]:
        return [request for method, request in self.service.requests if method == name]


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    service = FakeService()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-grpc", daemon=True)
    thread.start()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        pb_grpc.add_DeploymentImageServiceServicer_to_server(service, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result()
    try:
        yield FakeServer(service, port)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(None), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


# A stack as a GitHub job meets it: a static token, GitHub OIDC for the audience
# "kubeupdate", a policy for both, and rollouts that fail as soon as Pods are stuck.
RELEASE_BOT = "release-bot"
GITHUB_POLICY = f"""\
rules:
  - name: release bot
    subjects: [{{token: {RELEASE_BOT}}}]
    targets: [{{namespace: default}}]
    access: [read, write]
    images: [{{repositories: [docker.io/library/, ghcr.io/acme/]}}]
  - name: acme/web from main
    subjects:
      - github: {{repository: acme/web, repository_id: "{REPOSITORY_ID}", ref: refs/heads/main}}
    targets: [{{namespace: default, deployment: web, container: app}}]
    access: [read, write]
    images: [{{repositories: [docker.io/library/nginx]}}]
"""


@dataclass
class GitHubStack:
    """The stack with a static token and OIDC, and the job's token endpoint."""

    stack: Stack
    secret: str
    tokens: TokenEndpoint
    audit_log: Path

    @property
    def cluster(self) -> DevCluster:
        return self.stack.cluster

    def audit_lines(self) -> list[dict[str, Any]]:
        text = self.audit_log.read_text(encoding="utf-8") if self.audit_log.exists() else ""
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def github_stack(devcluster: DevCluster, tmp_path: Path) -> Iterator[GitHubStack]:
    issuer = Issuer(url=GITHUB_ISSUER, audience=DEFAULT_AUDIENCE)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(issuer.jwks()), encoding="utf-8")
    secret, entry = create_token(RELEASE_BOT)
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("tokens:\n" + entry.entry_yaml(), encoding="utf-8")
    policy = tmp_path / "policy.yaml"
    policy.write_text(GITHUB_POLICY, encoding="utf-8")
    audit_log = tmp_path / "audit.jsonl"
    auth = AuthConfig(
        tokens_file=tokens,
        policy_file=policy,
        oidc_audience=DEFAULT_AUDIENCE,
        oidc_jwks_file=jwks,
        audit_log=str(audit_log),
        rate_limit=0,
    )
    seed_samples(devcluster)
    devcluster.advance(120)  # the samples' first rollouts are over: revision 1, complete
    runner = StackThread(
        ServerConfig(port=0, kubeconfig=devcluster.kubeconfig_path, auth=auth, rollouts=FAST),
        GatewaySettings(upstream="", port=0, access_log=False),
    )
    listening = runner.start()
    assert listening.grpc_port is not None
    assert listening.http_port is not None
    try:
        with TokenEndpoint(issuer).serving() as endpoint:
            stack = Stack(devcluster, listening.grpc_port, listening.http_port)
            yield GitHubStack(stack, secret, endpoint, audit_log)
    finally:
        runner.stop()
