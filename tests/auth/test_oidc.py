"""GitHub Actions OIDC: tokens signed locally, keys served on 127.0.0.1 port 0.

The ``issuer`` and ``jwks_server`` fixtures come from this folder's conftest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kubeupdate.auth import oidc
from kubeupdate.auth.oidc import (
    JwksDiscovery,
    JwksFile,
    KeyCache,
    OidcSettings,
    OidcVerifier,
)
from kubeupdate.errors import Unauthenticated, Unavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def verifier(issuer: Any, jwks_server: Any, clock: Clock) -> AsyncIterator[OidcVerifier]:
    source = JwksDiscovery(issuer.url)
    keys = KeyCache(source, min_refresh_interval=30, clock=clock)
    yield OidcVerifier(OidcSettings(issuer.url, issuer.audience, leeway=30), keys)
    await source.close()


async def test_a_valid_token_names_the_workflow(issuer: Any, verifier: OidcVerifier) -> None:
    caller = await verifier.verify(issuer.sign())
    assert caller.method == "oidc"
    assert caller.name == "github:acme/web@refs/heads/main"
    assert caller.claims["repository_id"] == "123456"
    assert caller.claims["run_id"] == "9001"
    assert caller.claims["job_workflow_ref"].endswith("deploy.yml@refs/heads/main")
    # Only listed claims are kept: nothing else of the token travels on.
    assert "iat" not in caller.claims
    assert "aud" not in caller.claims


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"


@pytest.mark.parametrize(
    ("change", "reason", "sentence"),
    [
        pytest.param(
            {"iss": "https://token.actions.githubusercontent.com"},
            "OIDC_ISSUER_MISMATCH",
            'was issued by "https://token.actions.githubusercontent.com"; this server accepts '
            "tokens issued by http://127.0.0.1:",
            id="foreign-iss",
        ),
        pytest.param(
            {"iss": None}, "OIDC_ISSUER_MISMATCH", "was issued by missing;", id="missing-iss"
        ),
        pytest.param(
            {"aud": None},
            "OIDC_AUDIENCE_MISMATCH",
            "the OIDC token's audience is missing; this server accepts the audience "
            "'kubeupdate-test' only (in GitHub Actions, ask for a token with that audience).",
            id="missing-aud",
        ),
        pytest.param(
            {"aud": "https://github.com/acme"},
            "OIDC_AUDIENCE_MISMATCH",
            'audience is "https://github.com/acme"; this server accepts',
            id="github-default-aud",
        ),
        pytest.param(
            {"aud": ["kubeupdate-test", "other"]},
            "OIDC_AUDIENCE_MISMATCH",
            'audience is "[\\"kubeupdate-test\\", \\"other\\"]"',
            id="multi-valued-aud",
        ),
        pytest.param(
            {"aud": "kubeupdate-test-evil"},
            "OIDC_AUDIENCE_MISMATCH",
            'audience is "kubeupdate-test-evil"',
            id="other-aud",
        ),
        pytest.param(
            {"exp": int(time.time()) - 31},
            "OIDC_TOKEN_EXPIRED",
            "seconds ago; ask for a new one right before the call.",
            id="expired",
        ),
        pytest.param({"exp": None}, "OIDC_TOKEN_INVALID", oidc.FAILED, id="no-exp"),
        pytest.param({"iat": None}, "OIDC_TOKEN_INVALID", oidc.FAILED, id="no-iat"),
        pytest.param(
            {"nbf": int(time.time()) + 120},
            "OIDC_TOKEN_NOT_YET_VALID",
            "seconds from now by this server's clock; check the clocks.",
            id="nbf-future",
        ),
        pytest.param(
            {"iat": int(time.time()) + 120},
            "OIDC_TOKEN_NOT_YET_VALID",
            "the OIDC token is valid from ",
            id="iat-future",
        ),
        pytest.param({"exp": "9999999999"}, "OIDC_TOKEN_INVALID", oidc.FAILED, id="exp-as-string"),
        pytest.param({"repository": None}, "OIDC_TOKEN_INVALID", oidc.FAILED, id="no-repository"),
    ],
)
async def test_claims_that_are_refused(
    issuer: Any, verifier: OidcVerifier, change: dict[str, Any], reason: str, sentence: str
) -> None:
    token = issuer.sign(issuer.claims(**change))
    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify(token)
    # The reason says which check failed, and the sentence what the workflow's owner
    # can do about it, where that leaks nothing: the token's own claims, our settings.
    assert refused.value.reason_name == reason
    assert refused.value.message.startswith("Authentication failed: ")
    assert sentence in refused.value.message


async def test_a_one_element_audience_list_is_accepted(issuer: Any, verifier: OidcVerifier) -> None:
    await verifier.verify(issuer.sign(issuer.claims(aud=[issuer.audience])))


async def test_leeway_tolerates_small_skew(issuer: Any, verifier: OidcVerifier) -> None:
    now = int(time.time())
    await verifier.verify(issuer.sign(issuer.claims(exp=now - 10, nbf=now + 10, iat=now + 10)))


async def test_alg_none_is_refused(issuer: Any, verifier: OidcVerifier) -> None:
    token = _unsigned({"alg": "none", "kid": "k1"}, issuer.claims()) + "."
    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


async def test_hs256_keyed_with_the_public_key_is_refused(
    issuer: Any, verifier: OidcVerifier
) -> None:
    # The classic confusion: an HMAC "signed" with the RSA public key's JWK text.
    secret = json.dumps(issuer.jwks()["keys"][0]).encode()
    signing_input = _unsigned({"alg": "HS256", "kid": "k1"}, issuer.claims())
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(Unauthenticated):
        await verifier.verify(f"{signing_input}.{b64url(mac)}")


async def test_a_tampered_payload_is_refused(issuer: Any, verifier: OidcVerifier) -> None:
    header, _, signature = issuer.sign().split(".")
    forged = b64url(json.dumps(issuer.claims(repository="acme/other")).encode())
    with pytest.raises(Unauthenticated):
        await verifier.verify(f"{header}.{forged}.{signature}")


async def test_a_key_of_another_issuer_is_refused(issuer: Any, verifier: OidcVerifier) -> None:
    # Right kid, wrong private key: published k1, signed with k9 relabelled k1.
    header, payload, _ = issuer.sign().split(".")
    _, _, foreign = issuer.sign(kid="k9").split(".")
    with pytest.raises(Unauthenticated):
        await verifier.verify(f"{header}.{payload}.{foreign}")


@pytest.mark.parametrize(
    "token", ["", "a.b", "a.b.c", "eyJ.eyJ.", "x" * 20000, "eyJhbGciOiJSUzI1NiJ9..sig"]
)
async def test_garbage_is_refused(verifier: OidcVerifier, token: str) -> None:
    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


async def test_crit_header_and_missing_kid_are_refused(issuer: Any, verifier: OidcVerifier) -> None:
    with pytest.raises(Unauthenticated):
        await verifier.verify(issuer.sign(crit=["exp"]))
    with pytest.raises(Unauthenticated):
        await verifier.verify(issuer.sign(omit_kid=True))


async def test_unknown_kid_refreshes_once(
    issuer: Any, jwks_server: Any, verifier: OidcVerifier, clock: Clock
) -> None:
    await verifier.verify(issuer.sign())
    assert jwks_server.jwks_requests == 1
    issuer.published = ["k1", "k2"]  # the issuer rotates in a new key
    caller = await verifier.verify(issuer.sign(kid="k2"))
    assert caller.claims["repository"] == "acme/web"
    assert jwks_server.jwks_requests == 2
    # A kid the issuer does not have: at most one refresh per interval.
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await verifier.verify(issuer.sign(kid="k3"))
    assert jwks_server.jwks_requests == 2
    clock.now += 31
    with pytest.raises(Unauthenticated):
        await verifier.verify(issuer.sign(kid="k3"))
    assert jwks_server.jwks_requests == 3


async def test_cached_key_works_while_the_issuer_is_down(
    issuer: Any, jwks_server: Any, verifier: OidcVerifier, clock: Clock
) -> None:
    await verifier.verify(issuer.sign())
    jwks_server.down = True
    clock.now += 7200  # the cache is stale: a refresh is tried and fails
    await verifier.verify(issuer.sign())
    # An unknown kid now: the issuer cannot be asked, so it is not a 401.
    clock.now += 60
    with pytest.raises(Unavailable):
        await verifier.verify(issuer.sign(kid="k2"))


async def test_no_key_at_all_is_unavailable(
    issuer: Any, jwks_server: Any, verifier: OidcVerifier
) -> None:
    jwks_server.down = True
    with pytest.raises(Unavailable) as caught:
        await verifier.verify(issuer.sign())
    assert caught.value.retry_after
    # Claims are judged before keys: a foreign token does not cause a fetch.
    requests = jwks_server.jwks_requests
    with pytest.raises(Unauthenticated):
        await verifier.verify(issuer.sign(issuer.claims(aud="other")))
    assert jwks_server.jwks_requests == requests


async def test_unreachable_issuer_is_unavailable(issuer: Any) -> None:
    source = JwksDiscovery("http://127.0.0.1:9")  # nothing listens on the discard port
    verifier = OidcVerifier(OidcSettings("http://127.0.0.1:9", issuer.audience), KeyCache(source))
    try:
        with pytest.raises(Unavailable):
            await verifier.verify(issuer.sign(issuer.claims(iss="http://127.0.0.1:9")))
    finally:
        await source.close()


async def test_discovery_naming_another_issuer_is_refused(issuer: Any, jwks_server: Any) -> None:
    source = JwksDiscovery(issuer.url + "/")  # configured issuer differs from the document's
    try:
        with pytest.raises(ValueError, match="another issuer"):
            await source.fetch()
    finally:
        await source.close()


async def test_keys_from_a_file(issuer: Any, tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(issuer.jwks()))
    verifier = OidcVerifier(OidcSettings(issuer.url, issuer.audience), KeyCache(JwksFile(path)))
    assert (await verifier.verify(issuer.sign())).claims["environment"] == "production"


@pytest.mark.parametrize(
    ("audience", "leeway", "message"),
    [
        ("", 30, "required"),
        ("https://github.com/acme", 30, "dedicated"),
        ("kubeupdate", 61, "leeway"),
        ("kubeupdate", -1, "leeway"),
    ],
)
def test_settings_are_checked(audience: str, leeway: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OidcSettings(audience=audience, leeway=leeway)


def test_plain_http_issuers_only_on_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        JwksDiscovery("http://token.example.com")
