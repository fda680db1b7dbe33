"""KubeClient against a scripted HTTP(S) server on a loopback port.

The server answers what each test scripts (Status bodies, 401, 429, 5xx,
dropped connections), so the client's retry rules can be checked exactly;
the devcluster tests check the same client against a full emulator.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubeupdate.kube import errors
from kubeupdate.kube.api import DEPLOYMENTS, PODS
from kubeupdate.kube.client import KubeClient
from kubeupdate.kube.credentials import Credentials

DEPLOYMENT_PATH = "/apis/apps/v1/namespaces/prod/deployments/web"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Api:
    """The scripted server: accepted tokens, queued answers, received requests."""

    url: str = ""
    tokens: set[str] = field(default_factory=lambda: {"t1"})
    script: list[Handler] = field(default_factory=list)
    requests: list[tuple[str, str, str, str, bytes]] = field(default_factory=list)
    hold: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            (
                request.method,
                request.path_qs,
                request.content_type,
                request.headers.get("Authorization", ""),
                body,
            )
        )
        if request.headers.get("Authorization", "").lower() not in {
            f"bearer {t}" for t in self.tokens
        }:
            return status(401, "Unauthorized", "Unauthorized")
        if self.script:
            return await self.script.pop(0)(request)
        return web.json_response(
            {"kind": "Deployment", "metadata": {"name": "web", "generation": 1}}
        )


def status(
    code: int,
    reason: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return web.json_response(body, status=code, headers=headers)


def answer(response: web.StreamResponse) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return response

    return handler


async def drop(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    return web.Response()  # never delivered


def kubeconfig(path: Path, url: str, token: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    return path


async def start(api: Api, ssl_context: ssl.SSLContext | None = None) -> web.AppRunner:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", api.handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    api.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    return runner


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    api = Api()
    runner = await start(api)
    yield api
    api.hold.set()
    await runner.cleanup()


@pytest.fixture
async def client(api: Api, tmp_path: Path) -> AsyncIterator[KubeClient]:
    credentials = Credentials.from_kubeconfig(kubeconfig(tmp_path / "config", api.url, "t1"))
    async with KubeClient(credentials, timeout=5, attempts=3, backoff=0) as client:
        yield client


async def test_get_sends_the_token_and_parses_json(api: Api, client: KubeClient) -> None:
    obj = await client.get_deployment("prod", "web")
    assert obj["metadata"]["generation"] == 1
    assert api.requests == [("GET", DEPLOYMENT_PATH, "application/octet-stream", "Bearer t1", b"")]


async def test_patch_is_a_json_patch(api: Api, client: KubeClient) -> None:
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 2}]
    await client.patch_deployment("prod", "web", ops, dry_run=True)
    method, path, content_type, _, body = api.requests[0]
    assert (method, path, content_type) == (
        "PATCH",
        DEPLOYMENT_PATH + "?dryRun=All",
        "application/json-patch+json",
    )
    assert json.loads(body) == ops


async def test_status_body_becomes_the_error(api: Api, client: KubeClient) -> None:
    details = {"name": "web", "group": "apps", "kind": "deployments"}
    api.script.append(answer(status(404, "NotFound", 'deployments.apps "web" not found', details)))
    with pytest.raises(errors.NotFound) as info:
        await client.get_deployment("prod", "web")
    assert (info.value.kind, info.value.group, info.value.message) == (
        "deployments",
        "apps",
        'deployments.apps "web" not found',
    )


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (403, errors.Forbidden),
        (409, errors.Conflict),
        (422, errors.Invalid),
        (415, errors.UnexpectedStatus),
    ],
)
async def test_error_classes(
    api: Api, client: KubeClient, code: int, cls: type[errors.ApiError]
) -> None:
    api.script.append(answer(status(code, "Whatever", "no")))
    with pytest.raises(cls):
        await client.patch_deployment("prod", "web", [])
    assert len(api.requests) == 1


async def test_rotated_token_is_reloaded_once_after_401(
    api: Api, client: KubeClient, tmp_path: Path
) -> None:
    api.tokens = {"t2"}
    kubeconfig(tmp_path / "config", api.url, "t2")
    await client.get_deployment("prod", "web")
    assert [r[3] for r in api.requests] == ["Bearer t1", "Bearer t2"]


async def test_401_after_reload_is_reported(api: Api, client: KubeClient) -> None:
    api.tokens = set()
    with pytest.raises(errors.Unauthorized):
        await client.patch_deployment("prod", "web", [])
    assert len(api.requests) == 2


async def test_reads_are_retried_on_5xx(api: Api, client: KubeClient) -> None:
    api.script += [answer(status(503, "ServiceUnavailable", "busy")), drop]
    await client.get_deployment("prod", "web")
    assert len(api.requests) == 3


async def test_reads_give_up_after_bounded_attempts(api: Api, client: KubeClient) -> None:
    api.script += [answer(status(500, "InternalError", "etcd")) for _ in range(5)]
    with pytest.raises(errors.ServerError):
        await client.get_deployment("prod", "web")
    assert len(api.requests) == 3


async def test_patch_is_not_retried_on_5xx(api: Api, client: KubeClient) -> None:
    api.script.append(answer(status(504, "Timeout", "slow")))
    with pytest.raises(errors.ServerError):
        await client.patch_deployment("prod", "web", [])
    assert len(api.requests) == 1


async def test_patch_is_not_resent_after_a_dropped_connection(api: Api, client: KubeClient) -> None:
    api.script.append(drop)
    with pytest.raises(errors.ConnectionFailed) as info:
        await client.patch_deployment("prod", "web", [])
    assert info.value.outcome_unknown
    assert len(api.requests) == 1


async def test_429_waits_for_retry_after(api: Api, client: KubeClient) -> None:
    api.script.append(
        answer(status(429, "TooManyRequests", "slow down", headers={"Retry-After": "0"}))
    )
    await client.patch_deployment("prod", "web", [])
    assert len(api.requests) == 2


async def test_429_beyond_the_deadline_is_reported_at_once(api: Api, client: KubeClient) -> None:
    api.script.append(
        answer(status(429, "TooManyRequests", "slow down", headers={"Retry-After": "60"}))
    )
    with pytest.raises(errors.TooManyRequests) as info:
        await client.get_deployment("prod", "web", deadline=time.monotonic() + 30)
    assert info.value.retry_after == 60
    assert len(api.requests) == 1


async def test_429_longer_than_a_call_timeout_is_reported_at_once(
    api: Api, client: KubeClient
) -> None:
    api.script.append(
        answer(status(429, "TooManyRequests", "slow down", headers={"Retry-After": "6"}))
    )
    with pytest.raises(errors.TooManyRequests):
        await client.get_deployment("prod", "web")  # no deadline; the call timeout is 5s
    assert len(api.requests) == 1


async def test_no_answer_in_time_is_a_timeout(api: Api, tmp_path: Path) -> None:
    async def never(request: web.Request) -> web.StreamResponse:
        await api.hold.wait()
        return web.Response()

    api.script.append(never)
    credentials = Credentials.from_kubeconfig(kubeconfig(tmp_path / "config", api.url, "t1"))
    async with KubeClient(credentials, timeout=0.2) as client:
        with pytest.raises(errors.Timeout) as info:
            await client.patch_deployment("prod", "web", [])
    assert info.value.outcome_unknown


async def test_the_callers_deadline_bounds_the_call(api: Api, client: KubeClient) -> None:
    async def never(request: web.Request) -> web.StreamResponse:
        await api.hold.wait()
        return web.Response()

    api.script.append(never)
    with pytest.raises(errors.Timeout) as info:
        await client.get_deployment("prod", "web", deadline=time.monotonic() + 0.2)
    assert not info.value.outcome_unknown  # a read changes nothing
    assert len(api.requests) == 1  # and a timed-out read is not retried


async def test_a_passed_deadline_sends_nothing(api: Api, client: KubeClient) -> None:
    with pytest.raises(errors.Timeout):
        await client.get_deployment("prod", "web", deadline=time.monotonic() - 1)
    assert api.requests == []


async def test_connection_refused(tmp_path: Path) -> None:
    credentials = Credentials.from_kubeconfig(
        kubeconfig(tmp_path / "config", "http://127.0.0.1:1", "t1")
    )
    async with KubeClient(credentials, attempts=2, backoff=0) as client:
        with pytest.raises(errors.ConnectionFailed) as info:
            await client.patch_deployment("prod", "web", [])
    assert not info.value.outcome_unknown


def test_the_proxy_is_read_from_the_environment_when_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read once at load (the refresh hook before each request no longer re-reads it).
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    credentials = Credentials.from_kubeconfig(
        kubeconfig(tmp_path / "config", "https://k8s.example:6443", "t1")
    )
    assert credentials.transport.proxy == "http://proxy.example:3128"
    assert credentials.authorization() == "Bearer t1"
    assert credentials.transport.proxy == "http://proxy.example:3128"


def test_missing_credentials_are_reported(tmp_path: Path) -> None:
    with pytest.raises(errors.CredentialsError, match="service account"):
        Credentials.in_cluster(
            tmp_path,
            environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "1"},
        )
    with pytest.raises(errors.CredentialsError, match="kubeconfig"):
        Credentials.from_kubeconfig(tmp_path / "absent")


def _self_signed(directory: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    (directory / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "ca.crt", directory / "key.pem")
    return context


async def test_in_cluster_over_https_with_token_rotation(tmp_path: Path) -> None:
    api = Api()
    runner = await start(api, _self_signed(tmp_path))
    try:
        (tmp_path / "token").write_text("t1")
        port = api.url.rsplit(":", 1)[1]
        environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}
        async with KubeClient(Credentials.in_cluster(tmp_path, environ=environ)) as client:
            await client.get_namespace("prod")
            # The kubelet rotates the projected token; the old one is revoked.
            (tmp_path / "token").write_text("t2")
            api.tokens = {"t2"}
            await client.get_namespace("prod")
        assert [r[3] for r in api.requests] == ["Bearer t1", "Bearer t1", "Bearer t2"]
        assert api.requests[0][1] == "/api/v1/namespaces/prod"
    finally:
        await runner.cleanup()


# -- list and watch ----------------------------------------------------------------


def streamed(*lines: bytes, split: int = 7) -> Handler:
    """A watch answer whose lines arrive in small, unaligned chunks."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        data = b"".join(lines)
        for i in range(0, len(data), split):
            await response.write(data[i : i + split])
        await response.write_eof()
        return response

    return handler


def event(type_: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": type_, "object": obj}).encode() + b"\n"


async def test_list_sends_the_selectors(api: Api, client: KubeClient) -> None:
    api.script.append(answer(web.json_response({"kind": "DeploymentList", "items": []})))
    listed = await client.list_objects(
        DEPLOYMENTS, "prod", field_selector="metadata.name=web", label_selector="a=b"
    )
    assert listed["kind"] == "DeploymentList"
    assert api.requests[0][1] == (
        "/apis/apps/v1/namespaces/prod/deployments?labelSelector=a%3Db"
        "&fieldSelector=metadata.name%3Dweb"
    )


async def test_watch_yields_events_split_across_chunks(api: Api, client: KubeClient) -> None:
    pod = {"metadata": {"name": "p", "resourceVersion": "8"}, "spec": {"x": "y" * 100}}
    api.script.append(
        streamed(
            event("ADDED", pod),
            event("BOOKMARK", {"metadata": {"resourceVersion": "9"}}),
            event("DELETED", pod),
        )
    )
    events = [
        (e.type, e.object["metadata"]["resourceVersion"])
        async for e in client.watch(PODS, "prod", resource_version="7", label_selector="h=1")
    ]
    assert events == [("ADDED", "8"), ("BOOKMARK", "9"), ("DELETED", "8")]
    path = api.requests[0][1]
    assert path.startswith("/api/v1/namespaces/prod/pods?labelSelector=h%3D1&watch=true")
    assert "resourceVersion=7" in path
    assert "allowWatchBookmarks=true" in path


async def test_a_watch_left_unanswered_times_out_after_one_calls_timeout(
    api: Api, tmp_path: Path
) -> None:
    async def never(request: web.Request) -> web.StreamResponse:
        await api.hold.wait()  # no status line, as from a server stopping as it accepted
        return web.Response()

    api.script.append(never)
    credentials = Credentials.from_kubeconfig(kubeconfig(tmp_path / "config", api.url, "t1"))
    async with KubeClient(credentials, timeout=0.2) as client:
        with pytest.raises(errors.Timeout):
            # Not the watch's own 300 s: that bounds silence once it streams.
            async for _ in client.watch(PODS, "prod", resource_version="7", timeout_seconds=300):
                pass


async def test_watches_are_told_to_the_observer_once_they_answer(api: Api, tmp_path: Path) -> None:
    api.script.append(streamed(event("ADDED", {"metadata": {"name": "p", "resourceVersion": "8"}})))
    observed: list[tuple[str, str, str]] = []
    credentials = Credentials.from_kubeconfig(kubeconfig(tmp_path / "config", api.url, "t1"))
    async with KubeClient(
        credentials, observe=lambda verb, resource, code, _: observed.append((verb, resource, code))
    ) as client:
        async for _ in client.watch(PODS, None, resource_version="7"):
            assert observed == [("watch", "pods", "200")]  # before the first event

    assert api.requests[0][1].startswith("/api/v1/pods?watch=true")  # all namespaces
    assert observed == [("watch", "pods", "200")]


@pytest.mark.parametrize("in_stream", [True, False])
async def test_watch_too_old_raises_expired(api: Api, client: KubeClient, in_stream: bool) -> None:
    gone = {
        "kind": "Status",
        "code": 410,
        "reason": "Expired",
        "message": "too old resource version",
    }
    if in_stream:
        api.script.append(streamed(event("ERROR", gone)))  # what kube-apiserver usually does
    else:
        api.script.append(answer(status(410, "Expired", "too old resource version")))
    with pytest.raises(errors.Expired):
        async for _ in client.watch(DEPLOYMENTS, "prod", resource_version="1"):
            pass


async def test_watch_dropped_mid_stream_raises_connection_failed(
    api: Api, client: KubeClient
) -> None:
    async def one_event_then_drop(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(event("ADDED", {"metadata": {"name": "web", "resourceVersion": "5"}}))
        assert request.transport is not None
        request.transport.abort()
        return response

    api.script.append(one_event_then_drop)
    seen: list[str] = []

    async def follow() -> None:
        async for e in client.watch(DEPLOYMENTS, "prod", resource_version="1"):
            seen.append(e.type)

    with pytest.raises(errors.ConnectionFailed):
        await follow()
    assert seen == ["ADDED"]
