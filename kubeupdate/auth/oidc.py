"""GitHub Actions OIDC: verifying the ID tokens of workflow runs.

A token is accepted when it is an RS256 JWT signed by a key of the issuer's
JWKS, its ``iss`` is exactly the configured issuer, its ``aud`` is exactly the
configured, dedicated audience (never GitHub's default, the owner's URL), and
``exp``/``nbf``/``iat`` hold within a leeway of at most 60 seconds.

Keys come from the issuer's discovery document (or a file) and are cached.
An unknown ``kid`` triggers one refresh, at most once per
``min_refresh_interval``, so forged kids cannot hammer the issuer. While the
issuer is unreachable the cached keys keep working; with no key at all the
answer is :class:`~kubeupdate.errors.Unavailable`, since the caller's token
may be perfectly valid.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives.asymmetric import rsa

from kubeupdate.auth import jws
from kubeupdate.auth.config import GITHUB_ISSUER
from kubeupdate.caller import Caller
from kubeupdate.errors import ErrorReason, Reason, Unauthenticated, Unavailable
from kubeupdate.names import quote

log = logging.getLogger(__name__)

MAX_LEEWAY: Final = 60.0
# The claims policies may bind, plus those the audit line records.
BINDABLE_CLAIMS: Final = (
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "ref",
    "ref_type",
    "environment",
    "event_name",
    "job_workflow_ref",
    "workflow_ref",
)
RECORDED_CLAIMS: Final = (*BINDABLE_CLAIMS, "sub", "run_id", "run_attempt", "actor", "sha")
FAILED: Final = "Authentication failed: the OIDC token is not valid here."

Clock = Callable[[], float]


class JwksSource(Protocol):
    """Where the JSON Web Key Set comes from."""

    async def fetch(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class JwksFile:
    """A JWKS kept in a local file (air-gapped set-ups, tests)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def fetch(self) -> dict[str, Any]:
        text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError(f"{self.path} is not a JWKS document")
        return document

    async def close(self) -> None:
        return None


class JwksDiscovery:
    """The JWKS named by ``{issuer}/.well-known/openid-configuration``."""

    def __init__(self, issuer: str, *, timeout: float = 5.0) -> None:
        _check_url(issuer)
        self.issuer = issuer
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def fetch(self) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        discovery = await self._get_json(
            f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"
        )
        if discovery.get("issuer") != self.issuer:
            raise ValueError("the discovery document names another issuer")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError("the discovery document has no jwks_uri")
        _check_url(jwks_uri)
        return await self._get_json(jwks_uri)

    async def _get_json(self, url: str) -> dict[str, Any]:
        assert self._session is not None
        async with self._session.get(url, allow_redirects=False) as response:
            response.raise_for_status()
            document = await response.json(content_type=None)
        if not isinstance(document, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        return document

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _check_url(url: str) -> None:
    # Plain HTTP only on loopback (tests, a local mirror): keys must not be spoofable.
    parts = urlsplit(url)
    loopback = parts.hostname in {"127.0.0.1", "::1", "localhost"}
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError(f"{url} must be an https URL")


class KeyCache:
    """The issuer's signing keys by ``kid``, refreshed when stale or on an unknown kid."""

    def __init__(
        self,
        source: JwksSource,
        *,
        max_age: float = 3600.0,
        min_refresh_interval: float = 60.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.source = source
        self.max_age = max_age
        self.min_refresh_interval = min_refresh_interval
        self._clock = clock
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._forced_at: float | None = None
        self._last_failed = False
        self._lock = asyncio.Lock()
        self.fetches = 0  # attempts, for tests and metrics

    async def key(self, kid: str) -> rsa.RSAPublicKey:
        """The key named ``kid``.

        Unauthenticated when the issuer (reachable) has no such key;
        Unavailable when it cannot be asked and no cached key fits.
        """
        if self._stale():
            await self._refresh(force=False)
        key = self._keys.get(kid)
        if key is None:
            await self._refresh(force=True)
            key = self._keys.get(kid)
        if key is not None:
            return key
        if self._last_failed or not self._keys:
            # The issuer is down: the key may exist and we cannot see it.
            raise Unavailable(
                "The OIDC signing keys cannot be fetched from the issuer; retry later.",
                retry_after=self.min_refresh_interval,
                reason=ErrorReason.OIDC_KEYS_UNAVAILABLE,
            )
        raise Unauthenticated(FAILED, reason=ErrorReason.OIDC_TOKEN_INVALID)

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self.max_age

    async def _refresh(self, *, force: bool) -> None:
        """Fetch the JWKS unless a recent attempt makes it pointless; keep old keys on failure."""
        async with self._lock:
            now = self._clock()
            # Unknown kids and stale caches each refresh at most once per interval.
            last = self._forced_at if force else self._attempted_at
            recent = last is not None and now - last < self.min_refresh_interval
            if recent or (not force and not self._stale()):
                return
            self._attempted_at = now
            if force:
                self._forced_at = now
            self.fetches += 1
            try:
                keys = _keys_of(await self.source.fetch())
            except Exception as exc:
                log.warning("cannot fetch the OIDC signing keys: %s", exc)
                self._last_failed = True
                return
            if not keys:
                log.warning("the JWKS holds no usable RS256 key; keeping the cached ones")
                self._last_failed = True
                return
            self._keys = keys
            self._fetched_at = now
            self._last_failed = False


def _keys_of(document: dict[str, Any]) -> dict[str, rsa.RSAPublicKey]:
    keys: dict[str, rsa.RSAPublicKey] = {}
    for jwk in document.get("keys") or []:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        try:
            keys[jwk["kid"]] = jws.rsa_key_from_jwk(jwk)
        except jws.JwsError as exc:
            log.debug("skipping JWK %r: %s", jwk.get("kid"), exc)
    return keys


@dataclass(frozen=True)
class OidcSettings:
    issuer: str = GITHUB_ISSUER
    audience: str = ""
    leeway: float = 30.0

    def __post_init__(self) -> None:
        if not self.audience:
            raise ValueError("an OIDC audience is required")
        if self.audience.startswith("https://github.com/"):
            raise ValueError(
                "the OIDC audience must be dedicated to kubeupdate, not GitHub's default "
                "(the owner's URL), or any workflow of that owner could call us"
            )
        if not 0 <= self.leeway <= MAX_LEEWAY:
            raise ValueError(f"the OIDC leeway must be between 0 and {MAX_LEEWAY:.0f} seconds")


class OidcVerifier:
    """Turns a GitHub Actions ID token into a :class:`Caller`."""

    def __init__(self, settings: OidcSettings, keys: KeyCache, *, clock: Clock = time.time) -> None:
        self.settings = settings
        self.keys = keys
        self._clock = clock

    async def verify(self, token: str) -> Caller:
        """The caller ``token`` proves; Unauthenticated or Unavailable otherwise."""
        try:
            signed = jws.parse(token)
        except jws.JwsError as exc:
            log.info("OIDC token refused: %s", exc)
            raise Unauthenticated(FAILED, reason=ErrorReason.OIDC_TOKEN_INVALID) from None
        # Claims first: no key fetch for a token that could not pass anyway.
        problem = self._claims_problem(signed.claims)
        if problem:
            why, reason, sentence = problem
            log.info("OIDC token refused: %s", why)
            raise Unauthenticated(sentence, reason=reason)
        if signed.kid is None:
            log.info("OIDC token refused: no kid")
            raise Unauthenticated(FAILED, reason=_INVALID)
        key = await self.keys.key(signed.kid)
        try:
            jws.verify(signed, key)
        except jws.JwsError as exc:
            log.info("OIDC token refused: %s", exc)
            raise Unauthenticated(FAILED, reason=_INVALID) from None
        return caller_from_claims(signed.claims)

    def _claims_problem(self, claims: dict[str, Any]) -> tuple[str, Reason, str] | None:
        """Why the claims are refused: for the log, the reason, the caller's sentence; or None.

        A sentence says what the owner of the workflow can fix (issuer, audience,
        times), quoting only the token's own claims and this server's public
        settings; anything else reads "not valid here".
        """
        settings = self.settings
        issuer = claims.get("iss")
        if issuer != settings.issuer:
            return (
                "foreign issuer",
                ErrorReason.OIDC_ISSUER_MISMATCH,
                f"Authentication failed: the OIDC token was issued by {_quoted(issuer)}; this "
                f"server accepts tokens issued by {settings.issuer}.",
            )
        audience = claims.get("aud")
        if isinstance(audience, list) and len(audience) == 1:
            audience = audience[0]  # a one-element list means the same (RFC 7519)
        if audience != settings.audience:
            return (
                "wrong or missing audience",
                ErrorReason.OIDC_AUDIENCE_MISMATCH,
                f"Authentication failed: the OIDC token's audience is {_quoted(audience)}; this "
                f"server accepts the audience {settings.audience!r} only (in GitHub Actions, "
                "ask for a token with that audience).",
            )
        now = self._clock()
        leeway = settings.leeway
        exp, nbf, iat = (_number(claims.get(name)) for name in ("exp", "nbf", "iat"))
        if exp is None or iat is None:
            return "exp and iat are required", _INVALID, FAILED
        if now >= exp + leeway:
            return (
                "expired",
                ErrorReason.OIDC_TOKEN_EXPIRED,
                f"Authentication failed: the OIDC token expired {now - exp:.0f} seconds ago; "
                "ask for a new one right before the call.",
            )
        start = max(nbf if nbf is not None else iat, iat)
        if now < start - leeway:
            return (
                "not valid yet (nbf or iat)",
                ErrorReason.OIDC_TOKEN_NOT_YET_VALID,
                f"Authentication failed: the OIDC token is valid from {start - now:.0f} seconds "
                "from now by this server's clock; check the clocks.",
            )
        if not isinstance(claims.get("repository"), str):
            return "no repository claim", _INVALID, FAILED
        return None


def _quoted(value: Any) -> str:
    """A claim as the caller sent it, shortened and escaped for a sentence."""
    if value is None:
        return "missing"
    return quote(value if isinstance(value, str) else json.dumps(value))


# A token that fails another check, or none we can name.
_INVALID: Final = ErrorReason.OIDC_TOKEN_INVALID


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def caller_from_claims(claims: dict[str, Any]) -> Caller:
    recorded: dict[str, str] = {}
    for name in RECORDED_CLAIMS:
        value = claims.get(name)
        # GitHub sends strings; an int is taken as its decimal text, nothing else.
        if isinstance(value, str):
            recorded[name] = value
        elif isinstance(value, int) and not isinstance(value, bool):
            recorded[name] = str(value)
    name = f"github:{recorded['repository']}"
    if "ref" in recorded:
        name += f"@{recorded['ref']}"
    return Caller(name=name, method="oidc", claims=recorded)
