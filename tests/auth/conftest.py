"""Shared fixtures of the security tests: a local OIDC issuer and its JWKS server; logging
restored after the command line tests."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

AUDIENCE = "kubeupdate-test"
REPOSITORY_ID = "123456"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_of(kid: str, key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "alg": "RS256",
        "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": b64url(numbers.e.to_bytes(3, "big")),
    }


# Key generation is the slow part: one pair per session is plenty.
_KEYS: dict[str, rsa.RSAPrivateKey] = {}


def rsa_key(kid: str) -> rsa.RSAPrivateKey:
    if kid not in _KEYS:
        _KEYS[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _KEYS[kid]


@dataclass
class Issuer:
    """Signs GitHub-like ID tokens with local keys; serves nothing by itself."""

    url: str = "http://127.0.0.1:1"
    audience: str = AUDIENCE
    published: list[str] = field(default_factory=lambda: ["k1"])

    def jwks(self) -> dict[str, Any]:
        return {"keys": [jwk_of(kid, rsa_key(kid)) for kid in self.published]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": self.audience,
            "sub": "repo:acme/web:environment:production",
            "repository": "acme/web",
            "repository_id": REPOSITORY_ID,
            "repository_owner": "acme",
            "repository_owner_id": "42",
            "ref": "refs/heads/main",
            "ref_type": "branch",
            "environment": "production",
            "event_name": "push",
            "job_workflow_ref": "acme/web/.github/workflows/deploy.yml@refs/heads/main",
            "workflow_ref": "acme/web/.github/workflows/deploy.yml@refs/heads/main",
            "run_id": "9001",
            "run_attempt": "1",
            "actor": "octocat",
            "sha": "a" * 40,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(
        self,
        claims: dict[str, Any] | None = None,
        *,
        kid: str = "k1",
        omit_kid: bool = False,
        **header: Any,
    ) -> str:
        head = {"alg": "RS256", "typ": "JWT", **({} if omit_kid else {"kid": kid}), **header}
        body = claims if claims is not None else self.claims()
        signing_input = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(body).encode())}"
        signature = rsa_key(kid).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"


class JwksServer:
    """The issuer's discovery document and JWKS on 127.0.0.1, port 0; can be taken down."""

    def __init__(self, issuer: Issuer) -> None:
        self.issuer = issuer
        self.down = False
        self.jwks_requests = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.issuer.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _discovery(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=503)
        return web.json_response({"issuer": self.issuer.url, "jwks_uri": f"{self.issuer.url}/jwks"})

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_requests += 1
        if self.down:
            return web.Response(status=503)
        return web.json_response(self.issuer.jwks())


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
async def jwks_server(issuer: Issuer) -> AsyncIterator[JwksServer]:
    server = JwksServer(issuer)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(autouse=True)
def root_logging() -> Iterator[None]:
    """kubeupdate's main() sets up the process's logging (the CLI tests call it): undone after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
