"""A token service for the registry's Bearer auth (the distribution token flow), for tests.

The registry is configured with ``auth.token`` naming this service's realm and
the certificate whose key signs the tokens. A client that gets a 401 with
``Bearer realm=...,service=...,scope=...`` asks the realm for a token
(anonymously, with Basic credentials, or with an OAuth2 refresh token), then
sends it to the registry, which checks the signature (ES256 with the
certificate in the JWT's ``x5c``), the issuer, the audience and the access
claims.

Runs in a thread (the registry's config must name the realm before the
registry starts, i.e. before a test's event loop exists). Counts its requests.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.certificates import make_cert
from tests.registry.distribution import TokenAuth

ISSUER = "kubeupdate-test-token-issuer"
SERVICE = "kubeupdate-test-registry"


@dataclass
class TokenService:
    """Who may pull/push what: ``grants`` maps a user ("" = anonymous) to repositories."""

    users: dict[str, str]
    grants: dict[str, set[str]]
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> user
    requests: list[tuple[str, str]] = field(default_factory=list)  # (user, scope)

    def __post_init__(self) -> None:
        self._certificate, self._key = make_cert("token-signer", [])
        self.realm = ""

    def write_root(self, path: Path) -> Path:
        path.write_bytes(self._certificate.public_bytes(serialization.Encoding.PEM))
        return path

    def registry_auth(self, root_file: Path) -> TokenAuth:
        return TokenAuth(self.realm, SERVICE, ISSUER, self.write_root(root_file))

    def mint(self, user: str, repository: str, actions: list[str]) -> str:
        """A token granting ``actions`` on ``repository`` (the test's own pushes use this)."""
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": user,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": [{"type": "repository", "name": repository, "actions": actions}],
        }
        der = self._certificate.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        r, s = decode_dss_signature(
            self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing_input + "." + _b64(signature)

    def answer(self, user: str, scope: str) -> dict[str, object]:
        self.requests.append((user, scope))
        kind, _, rest = scope.partition(":")
        repository, _, actions = rest.rpartition(":")
        allowed = self.grants.get(user, set())
        granted = (
            actions.split(",")
            if kind == "repository" and (repository in allowed or "*" in allowed)
            else []
        )
        token = self.mint(user, repository, granted)
        return {"token": token, "access_token": token, "expires_in": 300}

    def user_of(self, authorization: str | None) -> str | None:
        """The user named by valid Basic credentials, "" for none, None for wrong ones."""
        if not authorization:
            return ""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user if self.users.get(user) == password else None


@contextmanager
def running_token_service(service: TokenService) -> Iterator[TokenService]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            user = service.user_of(self.headers.get("Authorization"))
            if user is None:
                self._send(401, {"details": "wrong credentials"})
                return
            self._send(200, service.answer(user, query.get("scope", [""])[0]))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            refresh = form.get("refresh_token", [""])[0]
            user = service.refresh_tokens.get(refresh)
            if form.get("grant_type") != ["refresh_token"] or user is None:
                self._send(401, {"error": "invalid_grant"})
                return
            self._send(200, service.answer(user, form.get("scope", [""])[0]))

        def _send(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: pytest shows failures, not every request

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    service.realm = f"http://127.0.0.1:{server.server_address[1]}/token"
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
