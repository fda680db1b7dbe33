"""Security flags, the assembled Auth, serve() with it, SIGHUP reloads, the demo's set-up."""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from kubeupdate import demo
from kubeupdate.auth.audit import AuditLog
from kubeupdate.auth.authenticator import Authenticator
from kubeupdate.auth.config import Auth, AuthConfig, SecurityConfigError
from kubeupdate.auth.interceptor import AuthInterceptor
from kubeupdate.auth.policy import Decision, Policy, Request
from kubeupdate.auth.tokens import TokenStore, create_token
from kubeupdate.caller import Caller
from kubeupdate.operations import operations
from kubeupdate.protocol.grpc.server import ServiceServer
from kubeupdate.service import ServerConfig, add_arguments, config_from, serve
from tests.kubeupdate.kube.memory import InMemoryDeploymentApi


def parse(*flags: str) -> ServerConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from(parser.parse_args(list(flags)))


def test_authentication_is_on_by_default() -> None:
    assert parse().auth == AuthConfig()
    assert AuthConfig().enabled


def test_flags_make_the_auth_config(tmp_path: Path) -> None:
    auth = parse(
        "--tokens-file", str(tmp_path / "t.yaml"),
        "--policy-file", str(tmp_path / "p.yaml"),
        "--oidc-audience", "kubeupdate-prod",
        "--oidc-issuer", "https://ghe.example.com/_services/token",
        "--oidc-leeway", "10",
        "--audit-log", str(tmp_path / "audit.jsonl"),
        "--rate-limit", "1.5",
        "--rate-burst", "4",
        "--trusted-proxy", "10.0.0.5",
    ).auth  # fmt: skip
    assert auth == AuthConfig(
        tokens_file=tmp_path / "t.yaml",
        policy_file=tmp_path / "p.yaml",
        oidc_audience="kubeupdate-prod",
        oidc_issuer="https://ghe.example.com/_services/token",
        oidc_leeway=10,
        audit_log=str(tmp_path / "audit.jsonl"),
        rate_limit=1.5,
        rate_burst=4,
        trusted_proxies=("10.0.0.5",),
    )
    assert not parse("--no-auth").auth.enabled


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tls-cert", "c.pem"], "go together"),
        (["--tls-client-ca", "ca.pem"], "needs --tls-cert"),
        (["--oidc-jwks-file", "jwks.json"], "needs --oidc-audience"),
    ],
)
def test_inconsistent_flags(flags: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(*flags)


async def test_running_without_auth_is_loud(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        auth = Auth(AuthConfig(enabled=False))
    await auth.close()
    assert "AUTHENTICATION IS OFF" in caplog.text


async def test_nothing_configured_refuses_everything(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        auth = Auth(AuthConfig())
    await auth.close()
    assert "every call will be refused" in caplog.text


def test_a_dedicated_audience_is_enforced() -> None:
    with pytest.raises(SecurityConfigError, match="dedicated"):
        Auth(AuthConfig(oidc_audience="https://github.com/acme"))


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("policy_file", "rules: [", "policy.yaml"),
        ("policy_file", "rules: 3", "list"),
        ("tokens_file", "tokens: [{id: a}]", "hash"),
    ],
)
def test_unusable_files_stop_the_start(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(SecurityConfigError, match=message):
        Auth(AuthConfig(**{name: path}))  # type: ignore[arg-type]
    with pytest.raises(SecurityConfigError, match="No such file"):
        Auth(AuthConfig(**{name: tmp_path / "missing.yaml"}))  # type: ignore[arg-type]


def write_kubeconfig(path: Path) -> Path:
    # Never reachable: calls that pass the security checks end in UNAVAILABLE.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(json.dumps(config))
    return path


def policy(namespace: str) -> str:
    return f"""
rules:
  - subjects: [{{token: bot}}]
    targets: [{{namespace: {namespace}}}]
    access: [read]
"""


async def test_serve_with_files_and_sighup_reload(tmp_path: Path) -> None:
    secret, entry = create_token("bot")
    (tmp_path / "tokens.yaml").write_text("tokens:\n" + entry.entry_yaml())
    (tmp_path / "policy.yaml").write_text(policy("default"))
    config = ServerConfig(
        port=0,
        kubeconfig=write_kubeconfig(tmp_path / "kubeconfig"),
        kube_timeout=2,
        grace=1,
        auth=AuthConfig(
            tokens_file=tmp_path / "tokens.yaml",
            policy_file=tmp_path / "policy.yaml",
            audit_log=str(tmp_path / "audit.jsonl"),
        ),
    )
    ready: asyncio.Queue[int] = asyncio.Queue()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, ready=ready.put_nowait, stop=stop))
    port = await ready.get()
    request = pb.GetContainerImageRequest(namespace="default", deployment="web", container="app")
    basic = "Basic " + base64.b64encode(f"bot:{secret}".encode()).decode()

    async def code(metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.DeploymentImageServiceStub(channel)
            try:
                await stub.GetContainerImage(request, metadata=metadata, timeout=10)
            except grpc.aio.AioRpcError as exc:
                return exc.code()
        return grpc.StatusCode.OK

    try:
        assert await code(()) == grpc.StatusCode.UNAUTHENTICATED
        # Past authentication and policy, Kubernetes itself is unreachable.
        assert await code((("authorization", basic),)) == grpc.StatusCode.UNAVAILABLE
        (tmp_path / "policy.yaml").write_text(policy("elsewhere"))
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0)  # let the loop run the signal handler
        assert await code((("authorization", basic),)) == grpc.StatusCode.PERMISSION_DENIED
    finally:
        stop.set()
        await task
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [line["outcome"] for line in lines] == [
        "UNAUTHENTICATED",
        "UNAVAILABLE",
        "PERMISSION_DENIED",
    ]
    assert secret not in (tmp_path / "audit.jsonl").read_text()


async def test_a_policy_others_may_write_is_not_reloaded_and_the_old_one_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret, entry = create_token("bot")
    (tmp_path / "tokens.yaml").write_text("tokens:\n" + entry.entry_yaml())
    (tmp_path / "policy.yaml").write_text(policy("default"))
    config = ServerConfig(
        port=0,
        kubeconfig=write_kubeconfig(tmp_path / "kubeconfig"),
        kube_timeout=2,
        grace=1,
        auth=AuthConfig(
            tokens_file=tmp_path / "tokens.yaml",
            policy_file=tmp_path / "policy.yaml",
            audit_log=os.devnull,
        ),
    )
    ready: asyncio.Queue[int] = asyncio.Queue()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, ready=ready.put_nowait, stop=stop))
    port = await ready.get()
    request = pb.GetContainerImageRequest(namespace="default", deployment="web", container="app")
    metadata = (("authorization", "Basic " + base64.b64encode(f"bot:{secret}".encode()).decode()),)

    async def code() -> grpc.StatusCode:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.DeploymentImageServiceStub(channel)
            try:
                await stub.GetContainerImage(request, metadata=metadata, timeout=10)
            except grpc.aio.AioRpcError as exc:
                return exc.code()
        return grpc.StatusCode.OK

    try:
        # Allowed by the policy; Kubernetes itself is unreachable.
        assert await code() == grpc.StatusCode.UNAVAILABLE
        (tmp_path / "policy.yaml").write_text(policy("elsewhere"))
        (tmp_path / "policy.yaml").chmod(0o666)
        with caplog.at_level(logging.ERROR):
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.sleep(0)  # let the loop run the signal handler
        assert await code() == grpc.StatusCode.UNAVAILABLE  # the old policy holds
        assert "writable by every user of the host" in caplog.text
        (tmp_path / "policy.yaml").chmod(0o644)
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0)
        assert await code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        stop.set()
        await task


def test_a_tokens_file_others_may_write_is_refused(tmp_path: Path) -> None:
    _, entry = create_token("bot")
    (tmp_path / "tokens.yaml").write_text("tokens:\n" + entry.entry_yaml())
    (tmp_path / "tokens.yaml").chmod(0o664)
    with pytest.raises(SecurityConfigError, match="writable by its group"):
        Auth(AuthConfig(tokens_file=tmp_path / "tokens.yaml"))


def test_serve_refuses_to_start_with_a_policy_others_may_write(tmp_path: Path) -> None:
    _, entry = create_token("bot")
    (tmp_path / "tokens.yaml").write_text("tokens:\n" + entry.entry_yaml())
    (tmp_path / "policy.yaml").write_text(policy("default"))
    (tmp_path / "policy.yaml").chmod(0o646)
    # A process with a guard: a service that starts anyway must fail the test, not hang it.
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "kubeupdate"),
            "serve",
            "--only=grpc",
            "--grpc-port=0",
            "--no-metrics",
            f"--kubeconfig={write_kubeconfig(tmp_path / 'kubeconfig')}",
            f"--tokens-file={tmp_path / 'tokens.yaml'}",
            f"--policy-file={tmp_path / 'policy.yaml'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    path = tmp_path / "policy.yaml"
    assert f"{path} is writable by every user of the host (mode 0646)" in done.stderr
    assert f"chmod go-w {path}" in done.stderr


@pytest.fixture
async def demo_stub(
    tmp_path: Path,
) -> AsyncIterator[tuple[pb_grpc.DeploymentImageServiceAsyncStub, str]]:
    secret, config = demo.write_demo_security(tmp_path)
    api = InMemoryDeploymentApi()
    api.add_deployment("default", "web", {"app": "nginx:1.25", "sidecar": "envoy:1"})
    api.add_deployment("kube-system", "dns", {"dns": "coredns:1"})
    auth = Auth(config)
    server = ServiceServer(operations(api), port=0, interceptors=[auth.interceptor])
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield pb_grpc.DeploymentImageServiceStub(channel), secret
    await server.stop(None)
    await auth.close()


@pytest.mark.parametrize(
    ("namespace", "image", "code"),
    [
        ("default", "nginx:1.27", grpc.StatusCode.OK),
        ("default", "nginx:latest", grpc.StatusCode.PERMISSION_DENIED),
        ("default", "evil.example.com/x:1", grpc.StatusCode.PERMISSION_DENIED),
        ("kube-system", "nginx:1.27", grpc.StatusCode.PERMISSION_DENIED),
    ],
)
async def test_the_demo_token_and_policy(
    demo_stub: tuple[pb_grpc.DeploymentImageServiceAsyncStub, str],
    namespace: str,
    image: str,
    code: grpc.StatusCode,
) -> None:
    stub, secret = demo_stub
    container = "app" if namespace == "default" else "dns"
    deployment = "web" if namespace == "default" else "dns"
    request = pb.SetContainerImageRequest(
        namespace=namespace, deployment=deployment, container=container, image=image
    )
    try:
        await stub.SetContainerImage(
            request, metadata=(("authorization", f"Bearer {secret}"),), timeout=10
        )
        got = grpc.StatusCode.OK
    except grpc.aio.AioRpcError as exc:
        got = exc.code()
    assert got == code


def test_the_demo_banner_carries_the_credentials(tmp_path: Path) -> None:
    secret, _ = demo.write_demo_security(tmp_path)

    class Cluster:
        url = "https://127.0.0.1:6443"
        kubeconfig_path = tmp_path / "kubeconfig"

    text = demo.banner(Cluster(), 50051, 8080, secret)  # type: ignore[arg-type]
    assert f"  DEMO=demo:{secret}\n" in text
    assert 'curl -u "$DEMO" ' in text
    assert '"Authorization: Bearer ${DEMO#*:}"' in text  # the secret alone
    assert '"authorization: Bearer ${DEMO#*:}"' in text  # grpcurl


async def test_no_auth_serves_anonymous_callers_and_still_audits(tmp_path: Path) -> None:
    api = InMemoryDeploymentApi()
    api.add_deployment("default", "web", {"app": "nginx:1.25"})
    auth = Auth(AuthConfig(enabled=False, audit_log=str(tmp_path / "audit.jsonl")))
    server = ServiceServer(operations(api), port=0, interceptors=[auth.interceptor])
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = await pb_grpc.DeploymentImageServiceStub(channel).GetContainerImage(
                pb.GetContainerImageRequest(namespace="default", deployment="web", container="app"),
                timeout=10,
            )
    finally:
        await server.stop(None)
        await auth.close()
    assert answer.image == "nginx:1.25"
    (line,) = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert (line["decision"], line["reason"], line["outcome"]) == (
        "allow",
        "authentication disabled",
        "OK",
    )
    assert line["identity"]["method"] == "none"


class ExplodingPolicy(Policy):
    """A policy that fails: the call must be denied, audited, and say nothing more."""

    def decide(self, caller: Caller, request: Request) -> Decision:
        raise RuntimeError("boom /secret/path")


async def test_an_unexpected_failure_denies_and_audits() -> None:
    secret, entry = create_token("bot")
    audit = io.StringIO()
    interceptor = AuthInterceptor(
        authenticator=Authenticator(tokens=TokenStore({"bot": entry})),
        policy=ExplodingPolicy(),
        audit=AuditLog.to_stream(audit),
    )
    server = ServiceServer(operations(InMemoryDeploymentApi()), port=0, interceptors=[interceptor])
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await pb_grpc.DeploymentImageServiceStub(channel).GetContainerImage(
                    pb.GetContainerImageRequest(namespace="a", deployment="b", container="c"),
                    metadata=(("authorization", f"Bearer {secret}"),),
                    timeout=10,
                )
    finally:
        await server.stop(None)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "boom" not in (caught.value.details() or "")
    assert json.loads(audit.getvalue())["outcome"] == "INTERNAL"
