"""Where the client's token comes from, GitHub Actions OIDC included (local server)."""

from __future__ import annotations

import base64
import io
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kubeupdate.client import CredentialsError, DeploymentImageClient
from kubeupdate.client.cli import ExitCode, main
from kubeupdate.client.credentials import GitHubOidcToken, token_source

from tests.clients.conftest import FakeServer

REQUEST_TOKEN = "runtime-request-token"


def jwt(exp: float, subject: str = "repo:acme/web:ref:refs/heads/main") -> str:
    def part(document: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'exp': exp, 'sub': subject})}.c2lnbmF0dXJl"


@dataclass
class FakeGitHub:
    """GitHub's ID-token endpoint: answers a JWT for the requested audience."""

    port: int = 0
    status: int = 200
    exp: float = 2_000_000_000
    requests: list[tuple[str, dict[str, list[str]], str | None]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        # GitHub's URL already carries a query string.
        return f"http://127.0.0.1:{self.port}/_apis/token?api-version=2.0"

    def environ(self) -> dict[str, str]:
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
        }


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parts.query)
            fake.requests.append((parts.path, query, self.headers.get("Authorization")))
            if fake.status != 200:
                self.send_response(fake.status)
                self.end_headers()
                return
            token = jwt(fake.exp, subject=f"call-{len(fake.requests)}")
            fake.issued.append(token)
            body = json.dumps({"count": 1, "value": token}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_oidc_token_request_is_the_one_github_expects(github: FakeGitHub) -> None:
    source = GitHubOidcToken(github.url, REQUEST_TOKEN, "kubeupdate")
    assert source.token() == github.issued[0]
    ((path, query, authorization),) = github.requests
    assert path == "/_apis/token"
    assert query == {"api-version": ["2.0"], "audience": ["kubeupdate"]}
    assert authorization == f"bearer {REQUEST_TOKEN}"


def test_oidc_token_is_cached_until_near_expiry(github: FakeGitHub) -> None:
    now = [1_999_990_000.0]
    source = GitHubOidcToken(github.url, REQUEST_TOKEN, "kubeupdate", clock=lambda: now[0])
    first = source.token()
    assert source.token() == first
    assert len(github.requests) == 1
    now[0] = github.exp - 30  # inside the refresh margin
    assert source.token() != first
    assert len(github.requests) == 2


def test_oidc_refusal_is_a_credentials_error(github: FakeGitHub) -> None:
    github.status = 403
    with pytest.raises(CredentialsError, match="id-token: write"):
        GitHubOidcToken(github.url, REQUEST_TOKEN, "kubeupdate").token()


def test_client_in_github_actions_sends_the_oidc_token(
    github: FakeGitHub, fake_server: FakeServer
) -> None:
    with DeploymentImageClient(
        fake_server.target, audience="kubeupdate", environ=github.environ()
    ) as client:
        client.get("default", "web", "app")
        client.get("default", "web", "app")
    assert len(github.requests) == 1
    authorizations = {m["authorization"] for m in fake_server.service.metadata}
    assert authorizations == {f"Bearer {github.issued[0]}"}


def test_audience_from_the_environment(github: FakeGitHub) -> None:
    environ = {**github.environ(), "KUBEUPDATE_AUDIENCE": "deployer"}
    assert token_source(environ=environ).token() == github.issued[0]
    assert github.requests[0][1]["audience"] == ["deployer"]


def test_precedence(github: FakeGitHub) -> None:
    environ = {**github.environ(), "KUBEUPDATE_TOKEN": "env", "KUBEUPDATE_AUDIENCE": "a"}
    assert token_source("arg", environ=environ).token() == "arg"
    assert token_source(environ=environ).token() == "env"
    assert github.requests == []


def test_no_token_outside_actions(github: FakeGitHub) -> None:
    assert token_source(environ={}).token() is None
    assert token_source(environ={"GITHUB_ACTIONS": "true"}).token() is None
    assert github.requests == []


def test_inside_actions_without_audience_the_default_audience_is_asked_for(
    github: FakeGitHub,
) -> None:
    assert token_source(environ=github.environ()).token() == github.issued[-1]
    ((_, query, _),) = github.requests
    assert query["audience"] == ["kubeupdate"]


def test_cli_oidc_failure_exits_4(
    github: FakeGitHub, fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    github.status = 500
    for name, value in github.environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KUBEUPDATE_TOKEN", raising=False)
    err = io.StringIO()
    code = main(
        ["--server", fake_server.target, "--audience", "kubeupdate", "get", "default/web/app"],
        stderr=err,
    )
    assert code == ExitCode.AUTH
    assert "CredentialsError" in err.getvalue()
    assert fake_server.service.requests == []
