"""Refusals through the real stack: REST -> gateway -> gRPC service -> devcluster, and direct gRPC.

One table of refused calls across static tokens, HTTP Basic, GitHub OIDC,
client certificates, the policy's targets and its image rules. Each case runs
over REST and over gRPC (mTLS cases over gRPC only) and must answer its status,
write nothing to the cluster (the devcluster's journal), and leave exactly one
audit line, a denial, in which no secret appears.

The service runs as deploy/ runs it, on mutual TLS with certificates from
`kubeupdate certs`. Direct gRPC calls present the gateway's certificate, which
never authenticates anyone, so they are judged on their Authorization alone, as
REST calls are; an mTLS case presents a certificate of its own.

One stack serves the whole module: a case changes nothing, which each case
checks, so sharing it costs no isolation and keeps the table fast.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from cryptography import x509
from google.rpc import error_details_pb2, status_pb2
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from devcluster import DevCluster
from kubeupdate.auth import certificates
from kubeupdate.auth.audit import FIELD_LIMIT
from kubeupdate.auth.config import AuthConfig
from kubeupdate.auth.tokens import create_token, hash_text
from tests.auth.conftest import AUDIENCE, Issuer, b64url
from tests.certificates import make_cert, pem
from tests.stack import Stack, running_stack

ISSUER = "https://token.actions.example"
DIGEST = "sha256:" + "d" * 64
C = grpc.StatusCode
HTTP_STATUS = {
    C.UNAUTHENTICATED: 401,
    C.PERMISSION_DENIED: 403,
    C.INVALID_ARGUMENT: 400,
    C.RESOURCE_EXHAUSTED: 429,
}

POLICY = r"""
rules:
  - name: release-bot on default/web/app
    subjects: [{token: release-bot}]
    targets: [{namespace: default, deployment: web, container: app}]
    access: [read, write]
    images:
      - repositories: [docker.io/library/nginx, ghcr.io/acme/web]
        tag: '^\d+\.\d+(\.\d+)?$'
      - repositories: [ghcr.io/acme/tools/]
        digest: required
  - name: reader of default
    subjects: [{token: reader}]
    targets: [{namespace: default}]
    access: [read]
  - name: production from main
    subjects:
      - github:
          repository: acme/web
          repository_id: "123456"
          ref: refs/heads/main
          environment: production
          event_name: push
    targets: [{namespace: default, deployment: web, container: app}]
    access: [read, write]
    images:
      - repositories: [ghcr.io/acme/web]
        tag: '^v\d+\.\d+\.\d+$'
        digest: required
  - name: the acme organisation reads staging
    subjects: [{github: {repository_owner_id: "42", ref: refs/heads/main}}]
    targets: [{namespace: staging}]
    access: [read]
  - name: the deployer's certificate on default/web/app
    subjects: [{cert: deployer.acme.internal}]
    targets: [{namespace: default, deployment: web, container: app}]
    access: [read, write]
    images:
      - repositories: [ghcr.io/acme/web]
        tag: '^v\d+\.\d+\.\d+$'
  - name: the auditor's certificate reads default
    subjects: [{cert: auditor}]
    targets: [{namespace: default}]
    access: [read]
"""

#: Client certificates of the service's CA, by common name (and its SANs).
CLIENT_CERTIFICATES = {
    "deployer": ["deployer.acme.internal"],
    "auditor": [],
    "stranger": ["stranger.acme.internal"],
}

TOKENS: dict[str, dict[str, Any]] = {
    "release-bot": {},
    "reader": {},
    "revoked-bot": {"revoked": True},
    "expired-bot": {"expires": "2020-01-01T00:00:00Z"},
}


@dataclass
class Secured:
    """The running stack, the credentials it accepts, and its audit file."""

    stack: Stack
    channel: grpc.Channel
    stub: pb_grpc.DeploymentImageServiceStub
    issuer: Issuer
    audit_log: Path
    secrets: dict[str, str]
    # What a client holding each certificate of CLIENT_CERTIFICATES connects with.
    certificates: dict[str, grpc.ChannelCredentials]
    # Every credential a case sent, so no audit line may contain one.
    sent: list[str] = field(default_factory=list)

    def audit_size(self) -> int:
        return self.audit_log.stat().st_size if self.audit_log.exists() else 0

    def audit_lines_since(self, offset: int) -> list[str]:
        with self.audit_log.open("rb") as audit:
            audit.seek(offset)
            return audit.read().decode("utf-8").splitlines()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    directory = tmp_path_factory.mktemp("refusals")
    secrets: dict[str, str] = {}
    entries = []
    for token_id, extra in TOKENS.items():
        secret, entry = create_token(token_id)
        secrets[token_id] = secret
        entries.append({"id": token_id, "hash": hash_text(entry.salt, entry.digest), **extra})
    (directory / "tokens.yaml").write_text(json.dumps({"tokens": entries}))
    (directory / "policy.yaml").write_text(POLICY)
    issuer = Issuer(url=ISSUER, published=["k1"])
    (directory / "jwks.json").write_text(json.dumps(issuer.jwks()))
    audit_log = directory / "audit.jsonl"
    pki = directory / "pki"
    certificates.create(pki, extra_names=["127.0.0.1"])
    ca = certificates.load_ca(pki)
    clients = {
        name: pem(make_cert(name, [x509.DNSName(san) for san in sans], ca))
        for name, sans in CLIENT_CERTIFICATES.items()
    }
    auth = AuthConfig(
        tokens_file=directory / "tokens.yaml",
        policy_file=directory / "policy.yaml",
        oidc_audience=AUDIENCE,
        oidc_issuer=ISSUER,
        oidc_jwks_file=directory / "jwks.json",
        tls_cert=pki / "service.crt",
        tls_key=pki / "service.key",
        tls_client_ca=pki / "ca.crt",
        trusted_proxy_certs=(certificates.GATEWAY,),
        audit_log=str(audit_log),
        # Limits have tests of their own; here every refusal must be the table's.
        rate_limit=0,
        auth_failure_limit=0,
    )
    ca_pem = (pki / "ca.crt").read_bytes()
    gateway = grpc.ssl_channel_credentials(
        ca_pem, (pki / "gateway.key").read_bytes(), (pki / "gateway.crt").read_bytes()
    )
    with (
        DevCluster() as cluster,
        running_stack(cluster, auth, channel_credentials=gateway) as stack,
        grpc.secure_channel(stack.grpc_target, gateway) as channel,
    ):
        stub = pb_grpc.DeploymentImageServiceStub(channel)
        holders = {
            name: grpc.ssl_channel_credentials(ca_pem, pair.key, pair.cert)
            for name, pair in clients.items()
        }
        yield Secured(stack, channel, stub, issuer, audit_log, secrets, holders)


# How a case authenticates: the Authorization value, made from the stack (None: none sent).
Credential = Callable[[Secured], str | None]


def bearer(make: Callable[[Secured], str]) -> Credential:
    return lambda s: f"Bearer {make(s)}"


def basic(user: str, password: Callable[[Secured], str]) -> Credential:
    return lambda s: "Basic " + base64.b64encode(f"{user}:{password(s)}".encode()).decode()


def fixed(value: str | None) -> Credential:
    return lambda s: value


def secret_of(token_id: str) -> Callable[[Secured], str]:
    return lambda s: s.secrets[token_id]


BOT = basic("release-bot", secret_of("release-bot"))
BOT_BEARER = bearer(secret_of("release-bot"))
READER = bearer(secret_of("reader"))


def oidc(**claims: Any) -> Credential:
    return bearer(lambda s: s.issuer.sign(s.issuer.claims(**claims)))


def oidc_signed(header: dict[str, Any] | None = None, **claims: Any) -> Credential:
    return bearer(lambda s: s.issuer.sign(s.issuer.claims(**claims), **(header or {})))


def unsigned(alg: str) -> Credential:
    def make(s: Secured) -> str:
        head = b64url(json.dumps({"alg": alg, "kid": "k1"}).encode())
        return f"{head}.{b64url(json.dumps(s.issuer.claims()).encode())}."

    return bearer(make)


def hs256_with_the_public_key(s: Secured) -> str:
    import hashlib
    import hmac

    key = json.dumps(s.issuer.jwks()["keys"][0]).encode()
    head = b64url(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    signing_input = f"{head}.{b64url(json.dumps(s.issuer.claims()).encode())}"
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def tampered_claims(s: Secured) -> str:
    head, _, signature = s.issuer.sign().split(".")
    forged = b64url(json.dumps(s.issuer.claims(repository="evil/web")).encode())
    return f"{head}.{forged}.{signature}"


def tampered_signature(s: Secured) -> str:
    token = s.issuer.sign()
    return token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")


@dataclass(frozen=True)
class Target:
    namespace: str
    deployment: str
    container: str


WEB_APP = Target("default", "web", "app")
SIDECAR = Target("default", "web", "sidecar")
STAGING = Target("staging", "api", "api")
KUBE_SYSTEM = Target("kube-system", "coredns", "coredns")


@dataclass(frozen=True)
class Case:
    name: str
    credential: Credential
    target: Target
    image: str | None  # None: a read (GetContainerImage); else a write (SetContainerImage)
    code: grpc.StatusCode
    # The ErrorInfo reason, and a part of the sentence, when the case is about them.
    reason: str | None = None
    says: str | None = None
    transports: tuple[str, ...] = ("rest", "grpc")
    # The client certificate the call presents (CLIENT_CERTIFICATES), over gRPC.
    certificate: str | None = None


def mtls(name: str, target: Target, image: str | None, reason: str, **extra: Any) -> Case:
    """A call authenticated by a client certificate alone (direct gRPC only)."""
    return Case(
        f"mtls: {name}",
        extra.pop("credential", fixed(None)),
        target,
        image,
        extra.pop("code", C.PERMISSION_DENIED),
        reason,
        transports=("grpc",),
        certificate=extra.pop("certificate"),
    )


NOW = int(time.time())

CASES = [
    # --- authentication: static tokens and Basic
    Case("no credentials", fixed(None), WEB_APP, "nginx:1.27", C.UNAUTHENTICATED),
    Case("no credentials read", fixed(None), WEB_APP, None, C.UNAUTHENTICATED),
    Case("empty bearer", fixed("Bearer "), WEB_APP, "nginx:1.27", C.UNAUTHENTICATED),
    Case("scheme alone", fixed("Bearer"), WEB_APP, None, C.UNAUTHENTICATED),
    Case("other scheme", fixed("Digest username=x"), WEB_APP, None, C.UNAUTHENTICATED),
    Case("basic not base64", fixed("Basic %%%"), WEB_APP, "nginx:1.27", C.UNAUTHENTICATED),
    Case(
        "basic without a colon",
        fixed("Basic " + base64.b64encode(b"release-bot").decode()),
        WEB_APP,
        None,
        C.UNAUTHENTICATED,
    ),
    Case(
        "basic wrong password",
        basic("release-bot", lambda s: "kut_release-bot_" + "0" * 64),
        WEB_APP,
        "nginx:1.27",
        C.UNAUTHENTICATED,
    ),
    Case(
        "basic unknown user",
        basic("nobody", secret_of("release-bot")),
        WEB_APP,
        None,
        C.UNAUTHENTICATED,
    ),
    Case(
        "basic with another token's secret",
        basic("release-bot", secret_of("reader")),
        WEB_APP,
        "nginx:1.27",
        C.UNAUTHENTICATED,
    ),
    Case(
        "made-up bearer",
        fixed("Bearer kut_release-bot_" + "0" * 64),
        WEB_APP,
        "nginx:1.27",
        C.UNAUTHENTICATED,
    ),
    Case("random bearer", fixed("Bearer hunter2"), WEB_APP, None, C.UNAUTHENTICATED),
    Case(
        "an oversized Authorization",
        fixed("Bearer " + "Zq7x" * 2_500),
        WEB_APP,
        "nginx:1.27",
        C.UNAUTHENTICATED,
        "CREDENTIALS_TOO_LARGE",
    ),
    Case(
        "oversized Basic credentials",
        fixed("Basic " + base64.b64encode(b"release-bot:" + b"x" * 6000).decode()),
        WEB_APP,
        None,
        C.UNAUTHENTICATED,
    ),
    Case("revoked token", bearer(secret_of("revoked-bot")), WEB_APP, None, C.UNAUTHENTICATED),
    Case("expired token", bearer(secret_of("expired-bot")), WEB_APP, None, C.UNAUTHENTICATED),
    Case(
        "basic of a revoked token",
        basic("revoked-bot", secret_of("revoked-bot")),
        WEB_APP,
        "nginx:1.27",
        C.UNAUTHENTICATED,
    ),
    # --- authentication: GitHub OIDC
    Case("alg none", unsigned("none"), WEB_APP, None, C.UNAUTHENTICATED),
    Case("alg RS512 unsigned", unsigned("RS512"), WEB_APP, None, C.UNAUTHENTICATED),
    Case(
        "hs256 with the public key",
        bearer(hs256_with_the_public_key),
        WEB_APP,
        f"ghcr.io/acme/web:v1.0.0@{DIGEST}",
        C.UNAUTHENTICATED,
    ),
    Case("claims changed after signing", bearer(tampered_claims), WEB_APP, None, C.UNAUTHENTICATED),
    Case(
        "signature changed",
        bearer(tampered_signature),
        WEB_APP,
        None,
        C.UNAUTHENTICATED,
        "OIDC_TOKEN_INVALID",
        "the OIDC token is not valid here.",
    ),
    Case(
        "github's own issuer",
        oidc(iss="https://token.actions.githubusercontent.com"),
        WEB_APP,
        None,
        C.UNAUTHENTICATED,
        "OIDC_ISSUER_MISMATCH",
        f"this server accepts tokens issued by {ISSUER}.",
    ),
    Case("no audience", oidc(aud=None), WEB_APP, None, C.UNAUTHENTICATED),
    Case(
        "github's default audience",
        oidc(aud="https://github.com/acme"),
        WEB_APP,
        None,
        C.UNAUTHENTICATED,
    ),
    Case(
        "another audience",
        oidc(aud="sigstore"),
        WEB_APP,
        None,
        C.UNAUTHENTICATED,
        "OIDC_AUDIENCE_MISMATCH",
        f'the OIDC token\'s audience is "sigstore"; this server accepts the audience '
        f"'{AUDIENCE}' only",
    ),
    Case("two audiences", oidc(aud=[AUDIENCE, "x"]), WEB_APP, None, C.UNAUTHENTICATED),
    Case(
        "expired jwt",
        oidc(exp=NOW - 300),
        WEB_APP,
        None,
        C.UNAUTHENTICATED,
        "OIDC_TOKEN_EXPIRED",
        "seconds ago; ask for a new one right before the call.",
    ),
    Case("jwt without exp", oidc(exp=None), WEB_APP, None, C.UNAUTHENTICATED),
    Case(
        "nbf in the future",
        oidc(nbf=NOW + 3600),
        WEB_APP,
        None,
        C.UNAUTHENTICATED,
        "OIDC_TOKEN_NOT_YET_VALID",
        "check the clocks",
    ),
    Case("iat in the future", oidc(iat=NOW + 3600), WEB_APP, None, C.UNAUTHENTICATED),
    Case("jwt without repository", oidc(repository=None), WEB_APP, None, C.UNAUTHENTICATED),
    Case(
        "unknown kid",
        oidc_signed({"kid": "k9"}),
        WEB_APP,
        f"ghcr.io/acme/web:v1.0.0@{DIGEST}",
        C.UNAUTHENTICATED,
    ),
    Case("no kid", oidc_signed({"omit_kid": True}), WEB_APP, None, C.UNAUTHENTICATED),
    # --- policy: OIDC claims
    Case(
        "another repository of another owner",
        oidc(repository_id="999", repository_owner_id="77"),
        WEB_APP,
        f"ghcr.io/acme/web:v1.0.0@{DIGEST}",
        C.PERMISSION_DENIED,
        "CALLER_NOT_ALLOWED",
        "no rule of the policy names this caller (repository acme/web, repository_id 999, "
        "ref refs/heads/main, environment production",
    ),
    Case(
        "a pull request",
        oidc(event_name="pull_request"),
        WEB_APP,
        f"ghcr.io/acme/web:v1.0.0@{DIGEST}",
        C.PERMISSION_DENIED,
    ),
    Case(
        "another environment",
        oidc(environment="staging"),
        WEB_APP,
        f"ghcr.io/acme/web:v1.0.0@{DIGEST}",
        C.PERMISSION_DENIED,
    ),
    Case(
        "another branch",
        oidc(ref="refs/heads/feature"),
        WEB_APP,
        f"ghcr.io/acme/web:v1.0.0@{DIGEST}",
        C.PERMISSION_DENIED,
    ),
    Case("owner rule writes", oidc(), STAGING, "ghcr.io/acme/api:1.0", C.PERMISSION_DENIED),
    Case(
        "another owner reads staging",
        oidc(repository_owner_id="43", repository_id="777"),
        STAGING,
        None,
        C.PERMISSION_DENIED,
    ),
    Case("oidc reads kube-system", oidc(), KUBE_SYSTEM, None, C.PERMISSION_DENIED),
    # --- policy: targets and access
    Case("another container", BOT, SIDECAR, "nginx:1.27", C.PERMISSION_DENIED),
    Case("another deployment", BOT, STAGING, None, C.PERMISSION_DENIED),
    Case("kube-system", BOT_BEARER, KUBE_SYSTEM, "nginx:1.27", C.PERMISSION_DENIED),
    # Not 404: whether a Deployment exists is told only to those who may read it.
    Case(
        "a Deployment that does not exist, not the caller's",
        BOT,
        Target("default", "no-such-web", "app"),
        None,
        C.PERMISSION_DENIED,
        "TARGET_NOT_ALLOWED",
    ),
    Case(
        "reader writes",
        READER,
        WEB_APP,
        "nginx:1.27",
        C.PERMISSION_DENIED,
        "ACCESS_NOT_ALLOWED",
        "write not allowed on this target",
    ),
    Case("reader outside its namespace", READER, STAGING, None, C.PERMISSION_DENIED),
    Case(
        "a name that is not a name",
        BOT,
        Target("Default", "web", "app"),
        "nginx:1.27",
        C.INVALID_ARGUMENT,
        "NAME_INVALID",
        'namespace "Default" is not a valid Kubernetes name',
    ),
    Case("an underscore", BOT, Target("default", "a_b", "app"), None, C.INVALID_ARGUMENT),
    Case(
        "a container in capitals",
        READER,
        Target("default", "web", "App"),
        None,
        C.INVALID_ARGUMENT,
    ),
    # --- images: registries and repositories as pairs
    Case("another registry", BOT, WEB_APP, "quay.io/acme/web:1.0", C.PERMISSION_DENIED),
    Case(
        "a registry that looks alike",
        BOT,
        WEB_APP,
        "ghcr.io.evil.com/acme/web:1.0",
        C.PERMISSION_DENIED,
    ),
    Case(
        "docker hub's acme/web",
        BOT,
        WEB_APP,
        "docker.io/acme/web:1.0",
        C.PERMISSION_DENIED,
        "IMAGE_REPOSITORY_NOT_ALLOWED",
        "repository not allowed",
    ),
    Case("acme/web written short", BOT, WEB_APP, "acme/web:1.0", C.PERMISSION_DENIED),
    Case(
        "ghcr's library/nginx",
        BOT,
        WEB_APP,
        "ghcr.io/library/nginx:1.27",
        C.PERMISSION_DENIED,
    ),
    Case(
        "a repository that extends an allowed one",
        BOT,
        WEB_APP,
        "ghcr.io/acme/web-evil:1.0",
        C.PERMISSION_DENIED,
    ),
    Case(
        "a namespace that extends an allowed one",
        BOT,
        WEB_APP,
        f"ghcr.io/acme/toolsx/cli@{DIGEST}",
        C.PERMISSION_DENIED,
    ),
    # --- images: tags and digests
    Case("latest", BOT, WEB_APP, "nginx:latest", C.PERMISSION_DENIED),
    Case("no tag pulls latest", BOT, WEB_APP, "nginx", C.PERMISSION_DENIED),
    Case("a tag the pattern refuses", BOT, WEB_APP, "nginx:main", C.PERMISSION_DENIED),
    Case("a suffix the pattern refuses", BOT, WEB_APP, "nginx:1.27-rc1", C.PERMISSION_DENIED),
    Case(
        "a digest alone under a tag rule",
        BOT,
        WEB_APP,
        f"ghcr.io/acme/web@{DIGEST}",
        C.PERMISSION_DENIED,
        "IMAGE_DIGEST_WITHOUT_TAG",
        "a digest without its tag is not allowed",
    ),
    Case(
        "no digest where one is required",
        BOT,
        WEB_APP,
        "ghcr.io/acme/tools/cli:1.0",
        C.PERMISSION_DENIED,
    ),
    Case(
        "oidc: a tag without the required digest",
        oidc(),
        WEB_APP,
        "ghcr.io/acme/web:v1.2.3",
        C.PERMISSION_DENIED,
    ),
    Case(
        "oidc: a digest alone under a tag rule",
        oidc(),
        WEB_APP,
        f"ghcr.io/acme/web@{DIGEST}",
        C.PERMISSION_DENIED,
    ),
    Case(
        "oidc: a tag its rule refuses",
        oidc(),
        WEB_APP,
        f"ghcr.io/acme/web:1.2.3@{DIGEST}",
        C.PERMISSION_DENIED,
    ),
    Case("oidc: a repository of another rule", oidc(), WEB_APP, "nginx:1.27", C.PERMISSION_DENIED),
    # --- client certificates (mTLS)
    mtls(
        "a certificate no rule names",
        WEB_APP,
        None,
        "CALLER_NOT_ALLOWED",
        certificate="stranger",
    ),
    mtls(
        "a read-only certificate writes",
        WEB_APP,
        "nginx:1.27",
        "ACCESS_NOT_ALLOWED",
        certificate="auditor",
    ),
    mtls(
        "a certificate outside its targets",
        STAGING,
        None,
        "TARGET_NOT_ALLOWED",
        certificate="auditor",
    ),
    mtls(
        "a certificate's image of another repository",
        WEB_APP,
        "ghcr.io/acme/tools:v1.2.3",
        "IMAGE_REPOSITORY_NOT_ALLOWED",
        certificate="deployer",
    ),
    mtls(
        "a certificate's tag outside the pattern",
        WEB_APP,
        "ghcr.io/acme/web:1.2.3",
        "IMAGE_TAG_NOT_ALLOWED",
        certificate="deployer",
    ),
    mtls(
        "a certificate's other container",
        SIDECAR,
        "ghcr.io/acme/web:v1.2.3",
        "TARGET_NOT_ALLOWED",
        certificate="deployer",
    ),
    mtls(
        "a certificate with a bad token: the token is what counts",
        WEB_APP,
        None,
        "TOKEN_INVALID",
        certificate="deployer",
        credential=fixed("Bearer kut_release-bot_" + "0" * 64),
        code=C.UNAUTHENTICATED,
    ),
    # --- images: not image references at all
    Case("capitals in the repository", BOT, WEB_APP, "Nginx:1.27", C.INVALID_ARGUMENT),
    Case("a space", BOT, WEB_APP, "nginx :1.27", C.INVALID_ARGUMENT),
    Case("a newline", BOT, WEB_APP, "nginx:1.27\nx", C.INVALID_ARGUMENT),
    Case("a name too long", BOT, WEB_APP, "ghcr.io/" + "a" * 300 + ":1", C.INVALID_ARGUMENT),
    Case("a short digest", BOT, WEB_APP, "nginx@sha256:abc", C.INVALID_ARGUMENT),
    Case("an empty image", BOT, WEB_APP, "", C.INVALID_ARGUMENT),
]

RUNS = [
    pytest.param(case, transport, id=f"{transport}: {case.name}")
    for case in CASES
    for transport in case.transports
]


def test_the_table_is_large_enough() -> None:
    assert len(RUNS) >= 80


@pytest.mark.parametrize(("case", "transport"), RUNS)
def test_a_refused_call_changes_nothing_and_is_audited_once(
    secured: Secured, case: Case, transport: str
) -> None:
    authorization = case.credential(secured)
    if authorization is not None:
        secured.sent.append(authorization.partition(" ")[2])
    secured.stack.cluster.journal.clear()
    offset = secured.audit_size()

    answer = (rest_call if transport == "rest" else grpc_call)(secured, case, authorization)
    body = answer.raw

    assert answer.code == case.code, body
    # Every refusal says why for programs; some cases are about what it says.
    assert answer.reason not in ("", "REASON_UNKNOWN")
    if case.reason is not None:
        assert answer.reason == case.reason
    if case.says is not None:
        assert case.says in answer.detail
    assert secured.stack.cluster.journal.writes() == []
    lines = secured.audit_lines_since(offset)
    assert len(lines) == 1, lines
    (line,) = (json.loads(text) for text in lines)
    assert line["decision"] == "deny"
    assert line["outcome"] == case.code.name
    assert line["method"] == (
        "SetContainerImage" if case.image is not None else "GetContainerImage"
    )
    if case.certificate is not None and authorization is None:
        assert line["identity"]["name"] == f"cert:{case.certificate}"
    for credential in secured.sent:
        if len(credential) >= 16:
            assert credential[-16:] not in lines[0]
            assert credential[-16:] not in body
    for secret in secured.secrets.values():
        assert secret not in lines[0]


@dataclass(frozen=True)
class Answer:
    """A refusal as a caller sees it: the code, the sentence, the reason, everything sent."""

    code: C
    detail: str
    reason: str
    raw: str


def rest_call(secured: Secured, case: Case, authorization: str | None) -> Answer:
    """A refused REST call."""
    target = case.target
    path = f"/deployment/{target.namespace}/{target.deployment}/{target.container}"
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    if case.image is None:
        answer = secured.stack.request("GET", path, None, headers)
    else:
        answer = secured.stack.request("POST", path, json.dumps({"Image": case.image}), headers)
    body = answer.body.decode()
    document = answer.json
    assert document["Status"] == "failed"
    code = C.__members__[document["Code"]]
    assert answer.status == HTTP_STATUS[code], body
    if answer.status == 401:
        assert "Bearer" in answer.headers["www-authenticate"]
    return Answer(code, document["Detail"], str(document.get("Reason", "")), body)


def grpc_call(secured: Secured, case: Case, authorization: str | None) -> Answer:
    """A refused gRPC call."""
    metadata = (("authorization", authorization),) if authorization is not None else ()
    if case.certificate is None:
        return _grpc_call(secured.stub, case, metadata)
    credentials = secured.certificates[case.certificate]
    with grpc.secure_channel(secured.stack.grpc_target, credentials) as channel:
        return _grpc_call(pb_grpc.DeploymentImageServiceStub(channel), case, metadata)


def _grpc_call(
    stub: pb_grpc.DeploymentImageServiceStub, case: Case, metadata: tuple[tuple[str, str], ...]
) -> Answer:
    target = case.target
    try:
        if case.image is None:
            stub.GetContainerImage(
                pb.GetContainerImageRequest(
                    namespace=target.namespace,
                    deployment=target.deployment,
                    container=target.container,
                ),
                metadata=metadata,
                timeout=10,
            )
        else:
            stub.SetContainerImage(
                pb.SetContainerImageRequest(
                    namespace=target.namespace,
                    deployment=target.deployment,
                    container=target.container,
                    image=case.image,
                ),
                metadata=metadata,
                timeout=10,
            )
    except grpc.RpcError as error:
        call = cast(grpc.Call, error)
        details = call.details() or ""
        return Answer(call.code(), details, reason_in(call.trailing_metadata() or ()), details)
    return Answer(C.OK, "", "", "")


def reason_in(trailers: Any) -> str:
    """The ErrorInfo reason in a status' rich details, or "" without."""
    for key, value in trailers:
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return str(info.reason)
    return ""


def test_an_oversized_grpc_request_is_refused_before_it_is_audited(secured: Secured) -> None:
    offset = secured.audit_size()
    huge = "ghcr.io/acme/web:" + "1" * 1_000_000
    for _ in range(5):
        with pytest.raises(grpc.RpcError) as refused:
            secured.stub.SetContainerImage(
                pb.SetContainerImageRequest(
                    namespace="default", deployment="web", container="app", image=huge
                ),
                timeout=10,
            )
        assert refused.value.code() == C.RESOURCE_EXHAUSTED
    assert secured.audit_size() == offset
    assert secured.stack.cluster.journal.writes() == []


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_what_a_caller_sends_is_cut_in_its_audit_line(secured: Secured, transport: str) -> None:
    offset = secured.audit_size()
    image = "ghcr.io/acme/web:" + "1" * 50_000
    case = Case("large image", fixed(None), WEB_APP, image, C.UNAUTHENTICATED)
    call = rest_call if transport == "rest" else grpc_call
    assert call(secured, case, None).code == C.UNAUTHENTICATED
    (line,) = secured.audit_lines_since(offset)
    assert len(line) < 4096
    assert json.loads(line)["image"].endswith(f"...(+{len(image) - FIELD_LIMIT} characters)")


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_oversized_credentials_get_a_sentence_not_a_transport_error(
    secured: Secured, transport: str
) -> None:
    offset = secured.audit_size()
    case = Case("large", fixed(None), WEB_APP, None, C.UNAUTHENTICATED)
    call = rest_call if transport == "rest" else grpc_call
    answer = call(secured, case, "Bearer " + "Qz8y" * 3_000)
    assert answer.code == C.UNAUTHENTICATED
    assert "the Authorization header is 12007 bytes long, more than the 4096" in answer.detail
    (line,) = secured.audit_lines_since(offset)
    assert json.loads(line)["outcome"] == "UNAUTHENTICATED"


def test_a_refused_oidc_call_keeps_its_claims_and_the_closest_rule_in_the_audit_line(
    secured: Secured,
) -> None:
    offset = secured.audit_size()
    case = Case("tag", oidc(), WEB_APP, f"ghcr.io/acme/web:1.2.3@{DIGEST}", C.PERMISSION_DENIED)
    answer = grpc_call(secured, case, case.credential(secured))
    assert (answer.code, answer.reason) == (C.PERMISSION_DENIED, "IMAGE_TAG_NOT_ALLOWED")
    assert "production from main" not in answer.detail  # rules are never told
    (line,) = (json.loads(text) for text in secured.audit_lines_since(offset))
    assert line["rule"] == "production from main"
    assert line["reason"] == "tag does not match the allowed pattern"
    identity = line["identity"]
    assert (identity["repository_id"], identity["environment"]) == ("123456", "production")
