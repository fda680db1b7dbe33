"""Authentication and policy over REST, through the gateway and service to the devcluster.

Every refused attempt must answer the right code, write nothing to the
devcluster, and leave exactly one audit line without the secret in it.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from bench.processes import ServeProcess, serve_command
from devcluster import DevCluster
from kubeupdate.auth.config import AuthConfig
from kubeupdate.demo import write_demo_security
from tests.conftest import SecuredStack
from tests.stack import running_stack, seed_samples

WEB_APP = "/deployment/default/web/app"


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def post(image: str) -> str:
    return json.dumps({"Image": image})


def test_the_original_curl_u_works_and_is_recorded(secured_stack: SecuredStack) -> None:
    stack = secured_stack.stack
    headers = {**basic("demo", secured_stack.secret), "Content-Type": "application/json"}

    answer = stack.request("POST", WEB_APP, post("nginx:1.27"), headers)

    assert answer.status == 200, answer.body
    assert answer.json["Changed"] is True
    deployment = stack.cluster.get("deployments", "default", "web")
    assert deployment is not None
    record = json.loads(deployment["metadata"]["annotations"]["kubeupdate.dev/change"])
    assert (record["previous_image"], record["image"], record["identity"]) == (
        "nginx:1.25",
        "nginx:1.27",
        "token:demo",
    )
    (line,) = secured_stack.audit_lines()
    assert line["decision"] == "allow"
    assert line["identity"]["method"] in {"basic", "token"}


def test_the_secret_alone_is_a_bearer_token(secured_stack: SecuredStack) -> None:
    headers = {"Authorization": f"Bearer {secured_stack.secret}"}
    answer = secured_stack.stack.request("GET", WEB_APP, None, headers)
    assert answer.status == 200
    assert answer.json["Image"] == "nginx:1.25"


def test_no_credentials_is_a_401_with_www_authenticate(secured_stack: SecuredStack) -> None:
    answer = secured_stack.stack.request("GET", WEB_APP)
    assert answer.status == 401
    challenge = answer.headers["www-authenticate"]
    assert "Bearer" in challenge
    assert "Basic" in challenge


REFUSED: list[tuple[str, str, str, str | None, Any, int, str]] = [
    # (case, method, path, image, credentials, status, reason); credentials None = the demo's
    ("no credentials", "POST", WEB_APP, "nginx:1.27", {}, 401, "CREDENTIALS_MISSING"),
    (
        "wrong password",
        "POST",
        WEB_APP,
        "nginx:1.27",
        basic("demo", "kut_demo_" + "0" * 64),
        401,
        "TOKEN_INVALID",
    ),
    # The same reason: an unknown id and a wrong secret read alike.
    (
        "unknown user",
        "POST",
        WEB_APP,
        "nginx:1.27",
        basic("nobody", "secret"),
        401,
        "TOKEN_INVALID",
    ),
    (
        "empty bearer",
        "POST",
        WEB_APP,
        "nginx:1.27",
        {"Authorization": "Bearer "},
        401,
        "CREDENTIALS_MALFORMED",
    ),
    (
        "bad base64",
        "POST",
        WEB_APP,
        "nginx:1.27",
        {"Authorization": "Basic %%%"},
        401,
        "CREDENTIALS_MALFORMED",
    ),
    (
        "unknown scheme",
        "POST",
        WEB_APP,
        "nginx:1.27",
        {"Authorization": "Digest x"},
        401,
        "CREDENTIALS_MALFORMED",
    ),
    (
        "target not in the policy",
        "POST",
        "/deployment/default/other/app",
        "nginx:1.27",
        None,
        403,
        "TARGET_NOT_ALLOWED",
    ),
    (
        "kube-system",
        "POST",
        "/deployment/kube-system/coredns/coredns",
        "nginx:1.27",
        None,
        403,
        "TARGET_NOT_ALLOWED",
    ),
    (
        "registry not allowed",
        "POST",
        WEB_APP,
        "evil.example.com/nginx:1.27",
        None,
        403,
        "IMAGE_REGISTRY_NOT_ALLOWED",
    ),
    (
        "registry prefix trap",
        "POST",
        WEB_APP,
        "ghcr.io.evil.com/acme/web:1",
        None,
        403,
        "IMAGE_REGISTRY_NOT_ALLOWED",
    ),
    ("latest refused", "POST", WEB_APP, "nginx:latest", None, 403, "IMAGE_TAG_LATEST_REFUSED"),
    ("missing tag is latest", "POST", WEB_APP, "nginx", None, 403, "IMAGE_TAG_REQUIRED"),
    (
        "read of a target not in the policy",
        "GET",
        "/deployment/kube-system/coredns/x",
        None,
        None,
        403,
        "TARGET_NOT_ALLOWED",
    ),
    # Syntax first: an invalid name is 400 with its sentence, never "target not allowed".
    ("invalid name", "GET", "/deployment/Kube-System/coredns/x", None, None, 400, "NAME_INVALID"),
]


@pytest.mark.parametrize(
    ("method", "path", "image", "credentials", "status", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSED],
)
def test_refused_attempts_write_nothing_and_are_audited_once(
    secured_stack: SecuredStack,
    method: str,
    path: str,
    image: str | None,
    credentials: dict[str, str] | None,
    status: int,
    reason: str,
) -> None:
    stack = secured_stack.stack
    headers = dict(basic("demo", secured_stack.secret) if credentials is None else credentials)
    headers["Content-Type"] = "application/json"

    answer = stack.request(method, path, post(image) if image else None, headers)

    assert answer.status == status, answer.body
    assert answer.json["Status"] == "failed"
    assert answer.json["Reason"] == reason
    assert stack.cluster.journal.writes() == []
    (line,) = secured_stack.audit_lines()
    assert line["decision"] == "deny"
    assert secured_stack.secret not in secured_stack.audit_log.read_text()
    assert secured_stack.secret not in answer.body.decode()


# --- Who a call comes from: x-forwarded-for is believed only from configured proxies.


def test_a_rest_client_cannot_name_its_own_source(secured_stack: SecuredStack) -> None:
    headers = {**basic("demo", secured_stack.secret), "X-Forwarded-For": "203.0.113.66"}
    answer = secured_stack.stack.request("GET", WEB_APP, None, headers)
    assert answer.status == 200
    (line,) = secured_stack.audit_lines()
    # The gateway believes no X-Forwarded-For by default; the service believes the
    # gateway started alongside, which names the client it saw.
    assert (line["source"], line["peer"]) == ("127.0.0.1", "127.0.0.1")


def test_a_local_grpc_caller_cannot_name_its_own_source(secured_stack: SecuredStack) -> None:
    credentials = basic("demo", secured_stack.secret)["Authorization"]
    with grpc.insecure_channel(secured_stack.stack.grpc_target) as channel:
        stub = pb_grpc.DeploymentImageServiceStub(channel)
        stub.GetContainerImage(
            pb.GetContainerImageRequest(namespace="default", deployment="web", container="app"),
            metadata=(("authorization", credentials), ("x-forwarded-for", "forged, text")),
            timeout=10,
        )
    (line,) = secured_stack.audit_lines()
    assert (line["source"], line["peer"]) == ("127.0.0.1", "127.0.0.1")
    assert line["forwarded_for_ignored"] == "forged, text"


def test_without_auth_a_local_caller_cannot_pick_its_rate_limit_bucket(
    devcluster: DevCluster,
) -> None:
    auth = AuthConfig(enabled=False, rate_limit=0.001, rate_burst=1, audit_log=os.devnull)
    request = pb.GetContainerImageRequest(namespace="default", deployment="web", container="app")
    with (
        running_stack(devcluster, auth) as stack,
        grpc.insecure_channel(stack.grpc_target) as channel,
    ):
        stub = pb_grpc.DeploymentImageServiceStub(channel)
        stub.GetContainerImage(request, metadata=(("x-forwarded-for", "10.0.0.1"),), timeout=10)
        with pytest.raises(grpc.RpcError) as limited:
            stub.GetContainerImage(request, metadata=(("x-forwarded-for", "10.0.0.2"),), timeout=10)
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize(
    ("forwarded", "source", "ignored"),
    [
        ("198.51.100.1, 203.0.113.9", "203.0.113.9", None),
        ("nonsense", "127.0.0.1", "nonsense"),
    ],
)
def test_behind_a_configured_proxy_the_client_is_its_address(
    devcluster: DevCluster, tmp_path: Path, forwarded: str, source: str, ignored: str | None
) -> None:
    secret, auth = write_demo_security(tmp_path)
    auth = replace(auth, audit_log=str(tmp_path / "audit.jsonl"), rate_limit=0)
    with running_stack(devcluster, auth, forwarded_allow_ips="127.0.0.1") as stack:
        headers = {**basic("demo", secret), "X-Forwarded-For": forwarded}
        assert stack.request("GET", WEB_APP, None, headers).status == 200
    (line,) = (json.loads(text) for text in (tmp_path / "audit.jsonl").read_text().splitlines())
    assert (line["source"], line["peer"], line.get("forwarded_for_ignored")) == (
        source,
        "127.0.0.1",
        ignored,
    )


# --- Failed authentications cost the one who fails.


@pytest.fixture
def limited_stack(devcluster: DevCluster, tmp_path: Path) -> Iterator[SecuredStack]:
    """The demo's security with a tight rate limit, behind a proxy the gateway believes."""
    secret, auth = write_demo_security(tmp_path)
    audit_log = tmp_path / "audit.jsonl"
    auth = replace(auth, audit_log=str(audit_log), rate_limit=1, rate_burst=5)
    with running_stack(devcluster, auth, forwarded_allow_ips="127.0.0.1") as stack:
        yield SecuredStack(stack, secret, audit_log)


def from_address(address: str, credentials: dict[str, str] | None = None) -> dict[str, str]:
    return {"X-Forwarded-For": address, **(credentials or {})}


def test_failed_and_anonymous_attempts_back_off_their_source(
    limited_stack: SecuredStack,
) -> None:
    stack = limited_stack.stack
    answers = [stack.request("GET", WEB_APP, None, from_address("203.0.113.1")) for _ in range(40)]
    statuses = [answer.status for answer in answers]
    # Ten failures are free (the rate limit never applies: nobody authenticated);
    # past them the source is blocked, so most of the rest are refused unread.
    assert statuses[:11] == [401] * 11
    assert statuses.count(429) >= 20
    refused = [answer for answer in answers if answer.status == 429]
    assert all(int(answer.headers["retry-after"]) >= 1 for answer in refused)
    assert all("failed authentications" in answer.json["Detail"] for answer in refused)
    assert {answer.json["Reason"] for answer in refused} == {"AUTHENTICATION_BACKOFF"}
    lines = limited_stack.audit_lines()
    assert len(lines) == 40
    assert lines[10]["limited"] == "source"  # the failure that started the back-off
    assert all(
        line["limited"] == "source" for line in lines if line["outcome"] != "UNAUTHENTICATED"
    )

    # Someone else, and the right secret from a fresh address, are unaffected.
    good = from_address("203.0.113.2", basic("demo", limited_stack.secret))
    assert stack.request("GET", WEB_APP, None, good).status == 200
    assert stack.request("GET", WEB_APP, None, from_address("203.0.113.3")).status == 401


def test_guessing_one_token_id_from_many_addresses_cannot_lock_out_its_holder(
    limited_stack: SecuredStack,
) -> None:
    stack = limited_stack.stack
    guess = basic("demo", "kut_demo_" + "0" * 64)
    statuses = [
        stack.request("GET", WEB_APP, None, from_address(f"198.51.100.{n}", guess)).status
        for n in range(1, 16)
    ]
    assert statuses[:10] == [401] * 10
    assert set(statuses[10:]) == {429}
    assert limited_stack.audit_lines()[-1]["limited"] == "token_id"
    holder = from_address("192.0.2.10", basic("demo", limited_stack.secret))
    assert stack.request("GET", WEB_APP, None, holder).status == 200


def test_a_blocked_source_is_refused_over_grpc_too(limited_stack: SecuredStack) -> None:
    request = pb.GetContainerImageRequest(namespace="default", deployment="web", container="app")
    codes = []
    with grpc.insecure_channel(limited_stack.stack.grpc_target) as channel:
        stub = pb_grpc.DeploymentImageServiceStub(channel)
        for _ in range(20):
            try:
                stub.GetContainerImage(request, timeout=10)
            except grpc.RpcError as error:
                codes.append(error.code())
    assert codes[:11] == [grpc.StatusCode.UNAUTHENTICATED] * 11
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes


def test_kubeupdate_serve_believes_its_own_gateway_and_nobody_else(
    devcluster: DevCluster, tmp_path: Path
) -> None:
    """Two processes (the default): the gateway's key reaches the service as its child."""
    seed_samples(devcluster)
    secret, auth = write_demo_security(tmp_path)
    audit_log = tmp_path / "audit.jsonl"
    command = serve_command(
        "--grpc-port=0",
        "--http-port=0",
        "--forwarded-allow-ips=127.0.0.1",  # this test plays the ingress in front
        f"--kubeconfig={devcluster.kubeconfig_path}",
        f"--tokens-file={auth.tokens_file}",
        f"--policy-file={auth.policy_file}",
        f"--audit-log={audit_log}",
    )
    with ServeProcess(command) as process:
        assert process.http_port is not None
        connection = http.client.HTTPConnection("127.0.0.1", process.http_port, timeout=30)
        headers = {**basic("demo", secret), "X-Forwarded-For": "203.0.113.5"}
        connection.request("GET", WEB_APP, headers=headers)
        assert connection.getresponse().status == 200
        connection.close()
        assert process.grpc_port is not None
        with grpc.insecure_channel(f"127.0.0.1:{process.grpc_port}") as channel:
            stub = pb_grpc.DeploymentImageServiceStub(channel)
            stub.GetContainerImage(
                pb.GetContainerImageRequest(namespace="default", deployment="web", container="app"),
                metadata=(
                    ("authorization", basic("demo", secret)["Authorization"]),
                    ("x-forwarded-for", "198.51.100.9"),
                ),
                timeout=30,
            )
        assert process.terminate() == 0
    rest, direct = (json.loads(line) for line in audit_log.read_text().splitlines())
    assert (rest["source"], rest.get("forwarded_for_ignored")) == ("203.0.113.5", None)
    assert (direct["source"], direct["forwarded_for_ignored"]) == ("127.0.0.1", "198.51.100.9")
