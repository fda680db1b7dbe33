"""The whole security chain on a real gRPC server (and the REST gateway) on port 0.

Behind it: the service over the in-memory Kubernetes. Every refused case
checks the status code, that nothing was patched, and that exactly one audit
line was written; at the end no secret or token may appear in any log or
audit line.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import grpc.aio
import pytest
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from gateway.server import GatewayServer
from gateway.settings import GatewaySettings
from kubeupdate import caller as current_caller
from kubeupdate.auth.audit import AuditLog
from kubeupdate.auth.authenticator import Authenticator
from kubeupdate.auth.interceptor import AuthInterceptor
from kubeupdate.auth.oidc import JwksDiscovery, KeyCache, OidcSettings, OidcVerifier
from kubeupdate.auth.policy import parse_policy
from kubeupdate.auth.proxies import ProxyTrust
from kubeupdate.auth.ratelimit import RateLimiter
from kubeupdate.auth.reloading import WatchedFile
from kubeupdate.auth.tokens import create_token, hash_text, parse_tokens
from kubeupdate.caller import Caller
from kubeupdate.operations import operations
from kubeupdate.protocol.grpc.server import ServiceServer
from tests.kubeupdate.kube.memory import InMemoryDeploymentApi

DIGEST = "sha256:" + "b" * 64

POLICY = """
rules:
  - name: bot on default/web/app
    subjects: [{token: release-bot}]
    targets: [{namespace: default, deployment: web, container: app}]
    access: [read, write]
    images:
      repositories: [ghcr.io/acme/app, docker.io/acme/app, docker.io/library/nginx]
  - name: reader everywhere but kube-system
    subjects: [{token: reader}]
    targets: [{namespace: default}, {namespace: staging}]
    access: [read]
  - name: production from main
    subjects:
      - github:
          repository: acme/web
          repository_id: "123456"
          environment: production
          event_name: push
          job_workflow_ref: acme/web/.github/workflows/deploy.yml@refs/heads/main
    targets: [{namespace: prod, deployment: web, container: app}]
    access: [read, write]
    images:
      repositories: [ghcr.io/acme/web]
      digest: required
"""


class CallerSpy(grpc.aio.ServerInterceptor):
    """Records the caller the handler runs under (what the change-cause will read)."""

    def __init__(self) -> None:
        self.seen: list[Caller | None] = []

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary

        async def spy(request: Any, context: Any) -> Any:
            self.seen.append(current_caller.current())
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            spy, handler.request_deserializer, handler.response_serializer
        )


@dataclass
class Stack:
    api: InMemoryDeploymentApi
    stub: pb_grpc.DeploymentImageServiceAsyncStub
    audit: io.StringIO
    issuer: Any
    jwks: Any
    spy: CallerSpy
    channel: grpc.aio.Channel
    secrets: dict[str, str] = field(default_factory=dict)
    rest: str = ""

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit.getvalue().splitlines()]


def write_tokens(path: Path) -> dict[str, str]:
    secrets: dict[str, str] = {}
    entries = []
    cases: list[tuple[str, dict[str, Any]]] = [
        ("release-bot", {}),
        ("reader", {}),
        ("revoked-bot", {"revoked": True}),
        ("expired-bot", {"expires": "2020-01-01T00:00:00Z"}),
    ]
    for token_id, extra in cases:
        secret, entry = create_token(token_id)
        secrets[token_id] = secret
        entries.append({"id": token_id, "hash": hash_text(entry.salt, entry.digest), **extra})
    path.write_text(json.dumps({"tokens": entries}))  # JSON is YAML
    return secrets


@pytest.fixture
def burst() -> int:
    return 1000


@pytest.fixture
async def stack(tmp_path: Path, issuer: Any, jwks_server: Any, burst: int) -> AsyncIterator[Stack]:
    api = InMemoryDeploymentApi()
    api.add_deployment("default", "web", {"app": "nginx:1.25", "sidecar": "envoy:1"})
    api.add_deployment("staging", "api", {"api": "acme/api:1"})
    api.add_deployment("kube-system", "coredns", {"coredns": "coredns:1"})
    api.add_deployment("prod", "web", {"app": "ghcr.io/acme/web:1.0"})
    secrets = write_tokens(tmp_path / "tokens.yaml")
    (tmp_path / "policy.yaml").write_text(POLICY)
    source = JwksDiscovery(issuer.url)
    oidc = OidcVerifier(OidcSettings(issuer.url, issuer.audience), KeyCache(source))
    audit = io.StringIO()
    interceptor = AuthInterceptor(
        authenticator=Authenticator(
            tokens=WatchedFile(tmp_path / "tokens.yaml", parse_tokens, what="tokens"),
            oidc=oidc,
        ),
        policy=WatchedFile(tmp_path / "policy.yaml", parse_policy, what="policy"),
        audit=AuditLog.to_stream(audit),
        limiter=RateLimiter(rate=0.001, burst=burst),
        proxies=ProxyTrust(["127.0.0.1"]),
    )
    spy = CallerSpy()
    server = ServiceServer(operations(api, backoff=0), port=0, interceptors=[interceptor, spy])
    port = await server.start()
    gateway = GatewayServer(
        GatewaySettings(
            upstream=f"127.0.0.1:{port}",
            port=0,
            access_log=False,
            forwarded_allow_ips="127.0.0.1",  # this test plays the ingress in front
        )
    )
    await gateway.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield Stack(
            api,
            pb_grpc.DeploymentImageServiceStub(channel),
            audit,
            issuer,
            jwks_server,
            spy,
            channel,
            secrets,
            f"http://127.0.0.1:{gateway.port}",
        )
    await gateway.stop()
    await server.stop(None)
    await source.close()


def bearer(token: str) -> str:
    return f"Bearer {token}"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned(claims: dict[str, Any], alg: str = "none") -> str:
    head = b64url(json.dumps({"alg": alg, "kid": "k1"}).encode())
    return f"{head}.{b64url(json.dumps(claims).encode())}."


def hs256_with_public_key(stack: Stack) -> str:
    import hashlib
    import hmac

    key = json.dumps(stack.issuer.jwks()["keys"][0]).encode()
    head = b64url(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    signing_input = f"{head}.{b64url(json.dumps(stack.issuer.claims()).encode())}"
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


# How each case authenticates: a function of the stack giving the header, or None.
Auth = Callable[[Stack], str | None]
BOT: Auth = lambda s: basic("release-bot", s.secrets["release-bot"])  # noqa: E731
BOT_BEARER: Auth = lambda s: bearer(s.secrets["release-bot"])  # noqa: E731
READER: Auth = lambda s: bearer(s.secrets["reader"])  # noqa: E731


def oidc(**claims: Any) -> Auth:
    return lambda s: bearer(s.issuer.sign(s.issuer.claims(**claims)))


def oidc_kid(kid: str) -> Auth:
    return lambda s: bearer(s.issuer.sign(kid=kid))


def get(ns: str, dep: str, container: str) -> pb.GetContainerImageRequest:
    return pb.GetContainerImageRequest(namespace=ns, deployment=dep, container=container)


def set_(ns: str, dep: str, container: str, image: str) -> pb.SetContainerImageRequest:
    return pb.SetContainerImageRequest(
        namespace=ns, deployment=dep, container=container, image=image
    )


WEB_APP = ("default", "web", "app")
PROD = ("prod", "web", "app")
C = grpc.StatusCode

REFUSED: list[Any] = [
    # authentication
    ("no credentials", lambda s: None, set_(*WEB_APP, "nginx:1.27"), C.UNAUTHENTICATED),
    ("malformed header", lambda s: "Bearer", set_(*WEB_APP, "nginx:1.27"), C.UNAUTHENTICATED),
    ("empty bearer", lambda s: "Bearer ", set_(*WEB_APP, "nginx:1.27"), C.UNAUTHENTICATED),
    ("bad base64", lambda s: "Basic !!!", set_(*WEB_APP, "nginx:1.27"), C.UNAUTHENTICATED),
    ("other scheme", lambda s: "Digest x=1", get(*WEB_APP), C.UNAUTHENTICATED),
    (
        "wrong secret",
        lambda s: basic("release-bot", s.secrets["reader"]),
        set_(*WEB_APP, "nginx:1.27"),
        C.UNAUTHENTICATED,
    ),
    (
        "unknown id",
        lambda s: basic("nobody", s.secrets["release-bot"]),
        get(*WEB_APP),
        C.UNAUTHENTICATED,
    ),
    (
        "made-up bearer",
        lambda s: bearer("kut_release-bot_" + "0" * 64),
        get(*WEB_APP),
        C.UNAUTHENTICATED,
    ),
    ("revoked token", lambda s: bearer(s.secrets["revoked-bot"]), get(*WEB_APP), C.UNAUTHENTICATED),
    ("expired token", lambda s: bearer(s.secrets["expired-bot"]), get(*WEB_APP), C.UNAUTHENTICATED),
    (
        "alg none",
        lambda s: bearer(unsigned(s.issuer.claims())),
        set_(*PROD, f"ghcr.io/acme/web@{DIGEST}"),
        C.UNAUTHENTICATED,
    ),
    (
        "hs256 with the public key",
        lambda s: bearer(hs256_with_public_key(s)),
        get(*PROD),
        C.UNAUTHENTICATED,
    ),
    (
        "foreign iss",
        oidc(iss="https://token.actions.githubusercontent.com"),
        get(*PROD),
        C.UNAUTHENTICATED,
    ),
    ("missing aud", oidc(aud=None), get(*PROD), C.UNAUTHENTICATED),
    ("github default aud", oidc(aud="https://github.com/acme"), get(*PROD), C.UNAUTHENTICATED),
    ("multi-valued aud", oidc(aud=["kubeupdate-test", "x"]), get(*PROD), C.UNAUTHENTICATED),
    ("expired jwt", oidc(exp=int(time.time()) - 120), get(*PROD), C.UNAUTHENTICATED),
    ("nbf in the future", oidc(nbf=int(time.time()) + 600), get(*PROD), C.UNAUTHENTICATED),
    ("unknown kid", oidc_kid("k7"), get(*PROD), C.UNAUTHENTICATED),
    # policy: OIDC claims
    (
        "wrong repository_id",
        oidc(repository_id="999"),
        set_(*PROD, f"ghcr.io/acme/web@{DIGEST}"),
        C.PERMISSION_DENIED,
    ),
    (
        "pull_request to production",
        oidc(event_name="pull_request"),
        set_(*PROD, f"ghcr.io/acme/web@{DIGEST}"),
        C.PERMISSION_DENIED,
    ),
    (
        "wrong environment",
        oidc(environment="staging"),
        set_(*PROD, f"ghcr.io/acme/web@{DIGEST}"),
        C.PERMISSION_DENIED,
    ),
    (
        "wrong job_workflow_ref",
        oidc(job_workflow_ref="acme/web/.github/workflows/x.yml@refs/heads/main"),
        set_(*PROD, f"ghcr.io/acme/web@{DIGEST}"),
        C.PERMISSION_DENIED,
    ),
    (
        "latest where a digest is required",
        oidc(),
        set_(*PROD, "ghcr.io/acme/web:latest"),
        C.PERMISSION_DENIED,
    ),
    (
        "tag where a digest is required",
        oidc(),
        set_(*PROD, "ghcr.io/acme/web:1.2"),
        C.PERMISSION_DENIED,
    ),
    # policy: targets and images
    (
        "unlisted container",
        BOT,
        set_("default", "web", "sidecar", "nginx:1.27"),
        C.PERMISSION_DENIED,
    ),
    ("unlisted deployment", BOT, get("staging", "api", "api"), C.PERMISSION_DENIED),
    (
        "kube-system",
        BOT,
        set_("kube-system", "coredns", "coredns", "nginx:1.27"),
        C.PERMISSION_DENIED,
    ),
    (
        "reader in kube-system",
        READER,
        get("kube-system", "coredns", "coredns"),
        C.PERMISSION_DENIED,
    ),
    ("reader writes", READER, set_(*WEB_APP, "nginx:1.27"), C.PERMISSION_DENIED),
    ("another registry", BOT, set_(*WEB_APP, "quay.io/acme/app:1"), C.PERMISSION_DENIED),
    (
        "prefix trap app-evil",
        BOT_BEARER,
        set_(*WEB_APP, "ghcr.io/acme/app-evil:1"),
        C.PERMISSION_DENIED,
    ),
    ("registry trap", BOT, set_(*WEB_APP, "ghcr.io.evil.com/acme/app:1"), C.PERMISSION_DENIED),
    ("docker hub lookalike", BOT, set_(*WEB_APP, "evil/nginx:1.27"), C.PERMISSION_DENIED),
    ("latest", BOT, set_(*WEB_APP, "nginx:latest"), C.PERMISSION_DENIED),
    ("missing tag", BOT, set_(*WEB_APP, "nginx"), C.PERMISSION_DENIED),
    ("invalid image", BOT, set_(*WEB_APP, "Nginx:1"), C.INVALID_ARGUMENT),
    # Syntax is checked before any policy glob sees a name: 400, never "target not allowed".
    ("invalid namespace", BOT, get("Default", "web", "app"), C.INVALID_ARGUMENT),
    ("invalid deployment", BOT, set_("default", "web_1", "app", "nginx:1.27"), C.INVALID_ARGUMENT),
]


async def call(stack: Stack, auth: Auth, request: Any) -> tuple[grpc.StatusCode, str, Any]:
    header = auth(stack)
    metadata = (("authorization", header),) if header is not None else ()
    rpc = (
        stack.stub.SetContainerImage
        if isinstance(request, pb.SetContainerImageRequest)
        else stack.stub.GetContainerImage
    )
    try:
        answer = await rpc(request, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or "", exc
    return grpc.StatusCode.OK, "", answer


@pytest.mark.parametrize(("name", "auth", "request_", "code"), REFUSED, ids=[c[0] for c in REFUSED])
async def test_refused_over_grpc(
    stack: Stack, name: str, auth: Auth, request_: Any, code: grpc.StatusCode
) -> None:
    got, message, _ = await call(stack, auth, request_)
    assert got == code, message
    assert stack.api.patches == []
    (line,) = stack.lines()
    assert line["outcome"] == code.name
    assert line["decision"] == "deny"
    assert line["method"] in {"SetContainerImage", "GetContainerImage"}
    if code == C.UNAUTHENTICATED:
        assert message.startswith("Authentication")
    if code == C.PERMISSION_DENIED:
        assert message.startswith("Permission denied: ")
        assert "rules" not in message
    if code == C.INVALID_ARGUMENT:
        assert "is not a valid" in message


async def test_unauthenticated_answers_carry_www_authenticate(stack: Stack) -> None:
    _, _, error = await call(stack, lambda s: None, get(*WEB_APP))
    trailers = dict(error.trailing_metadata())
    assert "Bearer" in trailers["www-authenticate"]
    assert "Basic" in trailers["www-authenticate"]


async def test_basic_read_and_bearer_write(stack: Stack) -> None:
    code, _, answer = await call(stack, BOT, get(*WEB_APP))
    assert code == C.OK
    assert answer.image == "nginx:1.25"
    code, _, answer = await call(stack, BOT_BEARER, set_(*WEB_APP, "nginx:1.27"))
    assert code == C.OK, answer
    assert answer.changed
    assert len(stack.api.patches) == 1
    read, written = stack.lines()
    assert read["identity"] == {
        "method": "basic",
        "name": "token:release-bot",
        "token_id": "release-bot",
    }
    assert read["decision"] == "allow"
    assert read["rule"] == "bot on default/web/app"
    assert written["identity"]["method"] == "token"
    assert written["target"] == {"namespace": "default", "deployment": "web", "container": "app"}
    assert written["image"] == "nginx:1.27"
    assert written["previous_image"] == "nginx:1.25"
    assert written["changed"] is True
    assert written["generation"] == 2
    assert written["source"] == "127.0.0.1"
    assert [c.name if c else None for c in stack.spy.seen] == ["token:release-bot"] * 2


async def test_oidc_write(stack: Stack) -> None:
    code, message, _ = await call(stack, oidc(), set_(*PROD, f"ghcr.io/acme/web@{DIGEST}"))
    assert code == C.OK, message
    (line,) = stack.lines()
    identity = line["identity"]
    assert identity["method"] == "oidc"
    assert identity["name"] == "github:acme/web@refs/heads/main"
    for claim in ("repository_id", "run_id", "run_attempt", "actor", "job_workflow_ref", "sha"):
        assert claim in identity
    assert stack.spy.seen[-1] is not None
    assert stack.spy.seen[-1].claims["repository"] == "acme/web"


async def test_a_failed_call_is_audited_with_its_outcome(stack: Stack) -> None:
    stack.api.add_deployment("default", "web", {"other": "x:1"})  # app is gone
    code, _, _ = await call(stack, BOT, set_(*WEB_APP, "nginx:1.27"))
    assert code == C.NOT_FOUND
    (line,) = stack.lines()
    assert (line["decision"], line["outcome"]) == ("allow", "NOT_FOUND")


async def test_jwks_down_with_a_cached_key(stack: Stack) -> None:
    assert (await call(stack, oidc(), get(*PROD)))[0] == C.OK
    stack.jwks.down = True
    assert (await call(stack, oidc(), get(*PROD)))[0] == C.OK


async def test_jwks_down_without_a_key_is_unavailable(stack: Stack) -> None:
    stack.jwks.down = True
    code, _, _ = await call(stack, oidc(), set_(*PROD, f"ghcr.io/acme/web@{DIGEST}"))
    assert code == C.UNAVAILABLE
    assert stack.api.patches == []
    assert stack.lines()[0]["outcome"] == "UNAVAILABLE"


@pytest.mark.parametrize("burst", [3])
async def test_burst_past_the_rate_limit(stack: Stack) -> None:
    codes = [(await call(stack, READER, get(*WEB_APP)))[0] for _ in range(4)]
    assert codes == [C.OK] * 3 + [C.RESOURCE_EXHAUSTED]
    _, _, error = await call(stack, READER, get(*WEB_APP))
    assert int(dict(error.trailing_metadata())["retry-after"]) >= 1
    # Another identity is unaffected.
    assert (await call(stack, BOT, get(*WEB_APP)))[0] == C.OK
    assert [line["outcome"] for line in stack.lines()][-3:] == [
        "RESOURCE_EXHAUSTED",
        "RESOURCE_EXHAUSTED",
        "OK",
    ]


async def test_streams_are_guarded_too(stack: Stack) -> None:
    request = pb.WatchRolloutRequest(namespace="prod", deployment="web")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stack.stub.WatchRollout(request, timeout=5):
            pass
    assert caught.value.code() == C.UNAUTHENTICATED
    metadata = (("authorization", READER(stack) or ""),)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stack.stub.WatchRollout(request, metadata=metadata, timeout=5):
            pass
    assert caught.value.code() == C.PERMISSION_DENIED
    assert [line["method"] for line in stack.lines()] == ["WatchRollout"] * 2


async def test_health_stays_open(stack: Stack) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    answer = await health_pb2_grpc.HealthStub(stack.channel).Check(health_pb2.HealthCheckRequest())
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert stack.lines() == []


# REST, through the gateway: the same answers as HTTP statuses.
REST_CASES: list[Any] = [
    ("no credentials", None, "GET", "/deployment/default/web/app", None, 401),
    ("basic ok", BOT, "GET", "/deployment/default/web/app", None, 200),
    (
        "wrong password",
        lambda s: basic("release-bot", "nope"),
        "GET",
        "/deployment/default/web/app",
        None,
        401,
    ),
    ("unlisted target", BOT, "GET", "/deployment/staging/api/api", None, 403),
    ("bad image rule", BOT, "POST", "/deployment/default/web/app", {"Image": "quay.io/x/y:1"}, 403),
    (
        "oidc pull_request",
        oidc(event_name="pull_request"),
        "POST",
        "/deployment/prod/web/app",
        {"Image": f"ghcr.io/acme/web@{DIGEST}"},
        403,
    ),
    ("write ok", BOT, "POST", "/deployment/default/web/app", {"Image": "nginx:1.27"}, 200),
]


@pytest.mark.parametrize(
    ("name", "auth", "verb", "path", "body", "status"), REST_CASES, ids=[c[0] for c in REST_CASES]
)
async def test_rest(
    stack: Stack, name: str, auth: Auth | None, verb: str, path: str, body: Any, status: int
) -> None:
    headers = {"X-Request-Id": "rest-1", "X-Forwarded-For": "203.0.113.9"}
    if auth is not None:
        headers["Authorization"] = auth(stack) or ""
    async with (
        aiohttp.ClientSession() as session,
        session.request(verb, stack.rest + path, json=body, headers=headers) as response,
    ):
        assert response.status == status, await response.text()
        answer = await response.json()
    if status != 200:
        assert answer["Status"] == "failed"
        assert stack.api.patches == []
    (line,) = stack.lines()
    assert line["request_id"] == "rest-1"
    # uvicorn believes X-Forwarded-For from 127.0.0.1 (this test) and the
    # service believes the gateway's x-forwarded-for: the client is recorded.
    assert line["source"] == "203.0.113.9"


async def test_no_secret_reaches_any_log(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = [*stack.secrets.values(), stack.issuer.sign()]
    for case in REFUSED:
        await call(stack, case[1], case[2])
    await call(stack, BOT, set_(*WEB_APP, "nginx:1.27"))
    await call(stack, oidc(), set_(*PROD, f"ghcr.io/acme/web@{DIGEST}"))
    texts = [stack.audit.getvalue(), caplog.text]
    for record in caplog.records:
        texts.append(record.getMessage())
    everything = "\n".join(texts)
    assert "SetContainerImage" in everything
    for secret in tokens:
        assert secret not in everything
        # Not even the random half, or the signature of a JWT.
        assert secret[-40:] not in everything


@pytest.mark.parametrize("burst", [1])
async def test_rest_rate_limit_is_429_with_retry_after(stack: Stack) -> None:
    headers = {"Authorization": READER(stack) or ""}
    url = stack.rest + "/deployment/default/web/app"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers) as first:
            assert first.status == 200
        async with session.get(url, headers=headers) as second:
            assert second.status == 429
            assert int(second.headers["Retry-After"]) >= 1
