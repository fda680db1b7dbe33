"""An asyncio client for the few OCI distribution (v2) calls kubeupdate makes.

Only reads: HEAD/GET a manifest, GET a blob, GET the referrers of a digest.
One ``aiohttp`` session keeps connections alive across calls.

Authentication follows the registry's challenge, as docker does: a request
goes out with what worked last time for that registry (nothing at first); a
401 names the scheme in ``WWW-Authenticate``:

- ``Basic``: the operator's credentials for that registry, if any.
- ``Bearer realm=...,service=...,scope=...``: a token from the realm (the
  distribution token flow), asked with the operator's credentials (Basic, or
  an OAuth2 refresh token for an ``identitytoken``), or anonymously. Tokens
  are kept per registry and scope until they expire.

The request is then sent once more; a second 401 means the credentials are
refused (or missing) and becomes :class:`~kubeupdate.registry.errors.AccessDenied`.

Retries follow the rules of :mod:`kubeupdate.kube.client` (every call here is
a read, so every call is safe to repeat):

- 429: wait ``Retry-After`` if that ends before the deadline and within one
  call's timeout, else report it;
- 5xx and connection failures: a bounded number of attempts with jittered
  back-off, within the deadline.

Every body is read up to a size limit and checked against its digest: a
registry (or a proxy) cannot make us accept content other than the digest we
report.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp

from kubeupdate.registry import errors
from kubeupdate.registry.challenges import Challenge, ChallengeSyntaxError, parse_challenges
from kubeupdate.registry.credentials import Credential, CredentialSource, RegistryCredentials
from kubeupdate.registry.endpoints import ImageLocation, is_loopback, registry_key
from kubeupdate.registry.hosts import RegistryHosts
from kubeupdate.registry.manifests import ACCEPT, OCI_INDEX, Descriptor, Manifest, parse_manifest

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: Final = 10.0
#: The distribution registry refuses manifests above 4 MiB; so do we.
MANIFEST_LIMIT: Final = 4 * 1024 * 1024
# A token without expires_in is valid 60 s (distribution token spec).
_DEFAULT_TOKEN_SECONDS: Final = 60.0
# Renew a little before the registry would refuse the token.
_TOKEN_MARGIN: Final = 5.0
# Of an error answer only this much is read: enough for the distribution error JSON.
_ERROR_BODY_LIMIT: Final = 64 * 1024
_HASHES: Final = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}

#: Told of every HTTP request sent, retries and token fetches included:
#: method, what (``manifest``, ``blob``, ``referrers``, ``token``), code
#: (the status, or ``timeout`` / ``connection``) and seconds.
CallObserver = Callable[[str, str, str, float], None]


@dataclass(frozen=True)
class ManifestHead:
    """What a HEAD on a manifest says; ``digest`` is None when the registry did not send it."""

    digest: str | None
    media_type: str
    size: int | None


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest's bytes, their verified digest, and the parsed content."""

    digest: str
    media_type: str
    body: bytes
    manifest: Manifest


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass
class _Token:
    value: str
    expires_at: float


class RegistryClient:
    """Reads manifests and blobs from any registry, with the operator's credentials."""

    def __init__(
        self,
        *,
        credentials: CredentialSource = RegistryCredentials,
        hosts: RegistryHosts | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        attempts: int = 3,
        backoff: float = 0.2,
        connection_limit: int = 50,
        observe: CallObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``credentials`` is called for every request, so a reloaded file is picked up.

        ``timeout`` bounds each HTTP call and ``attempts`` the tries of one call.
        """
        self._credentials = credentials
        self._hosts = hosts or RegistryHosts()
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._connection_limit = connection_limit
        self._observe = observe
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        # What worked last for each registry key: a Basic header, or "bearer".
        self._schemes: dict[str, Challenge] = {}
        self._tokens: dict[tuple[str, str], _Token] = {}

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def head_manifest(
        self, location: ImageLocation, reference: str, *, deadline: float | None = None
    ) -> ManifestHead:
        """The digest and media type of a manifest, without its body. ImageNotFound on 404."""
        answer = await self._call(
            "HEAD", location, f"manifests/{reference}", ACCEPT, "manifest", deadline, 1
        )
        if answer.status == 404:
            raise _not_found(location, reference, b"")
        length = answer.headers.get("Content-Length")
        return ManifestHead(
            answer.headers.get("Docker-Content-Digest"),
            _bare(answer.headers.get("Content-Type")),
            int(length) if length and length.isdigit() else None,
        )

    async def get_manifest(
        self, location: ImageLocation, reference: str, *, deadline: float | None = None
    ) -> FetchedManifest:
        """A manifest or an index by tag or digest, its digest verified. ImageNotFound on 404."""
        answer = await self._call(
            "GET", location, f"manifests/{reference}", ACCEPT, "manifest", deadline, MANIFEST_LIMIT
        )
        if answer.status == 404:
            raise _not_found(location, reference, answer.body)
        expected = reference if ":" in reference else answer.headers.get("Docker-Content-Digest")
        digest = _verified_digest(answer.body, expected, location, reference)
        content_type = answer.headers.get("Content-Type")
        try:
            manifest = parse_manifest(answer.body, content_type)
        except ValueError as exc:
            raise errors.ProtocolError(
                f"registry {location.registry} sent an unusable manifest for "
                f"{location.repository}@{digest}: {exc}"
            ) from exc
        return FetchedManifest(digest, manifest.media_type, answer.body, manifest)

    async def get_blob(
        self,
        location: ImageLocation,
        digest: str,
        *,
        limit: int = MANIFEST_LIMIT,
        deadline: float | None = None,
    ) -> bytes:
        """A blob's bytes (at most ``limit``), checked against its digest."""
        answer = await self._call(
            "GET", location, f"blobs/{digest}", "*/*", "blob", deadline, limit
        )
        if answer.status == 404:
            raise errors.ImageNotFound(
                f"registry {location.registry} has no blob {digest} in repository "
                f"{location.repository}",
                registry=location.registry,
                repository=location.repository,
                reference=digest,
            )
        _verified_digest(answer.body, digest, location, digest)
        return answer.body

    async def get_referrers(
        self,
        location: ImageLocation,
        digest: str,
        *,
        artifact_type: str | None = None,
        deadline: float | None = None,
    ) -> list[Descriptor] | None:
        """The manifests whose ``subject`` is ``digest`` (OCI 1.1 referrers API).

        None when the registry does not offer the API (distribution 2.8 answers
        404): the caller falls back to the referrers tag schema.
        """
        path = f"referrers/{digest}"
        if artifact_type is not None:
            path += "?" + urlencode({"artifactType": artifact_type})
        answer = await self._call(
            "GET", location, path, OCI_INDEX, "referrers", deadline, MANIFEST_LIMIT
        )
        if answer.status == 404:
            return None
        try:
            index = parse_manifest(answer.body, answer.headers.get("Content-Type"))
        except ValueError as exc:
            raise errors.ProtocolError(
                f"registry {location.registry} sent an unusable referrers list for "
                f"{location.repository}@{digest}: {exc}"
            ) from exc
        return [d for d in index.manifests if artifact_type in (None, d.artifact_type)]

    # -- one call: authentication, retries, errors ------------------------------------

    async def _call(
        self,
        method: str,
        location: ImageLocation,
        path: str,
        accept: str,
        what: str,
        deadline: float | None,
        limit: int,
    ) -> _Answer:
        """One API call with auth and retries; 2xx and 404 are returned, the rest raised."""
        url = f"{self._hosts.scheme(location.registry)}://{location.host}/v2/{location.repository}/{path}"
        scope = f"repository:{location.repository}:pull"
        authenticated = False
        while True:
            authorization = self._authorization(location.registry, scope)
            answer = await self._with_retries(
                method, url, location.registry, accept, authorization, what, deadline, limit
            )
            if answer.status == 401 and not authenticated:
                authenticated = True
                await self._answer_challenge(location, scope, answer, deadline)
                continue
            if 200 <= answer.status < 300 or answer.status == 404:
                return answer
            if answer.status in (401, 403):
                raise _access_denied(location, self._credential(location.registry), answer)
            raise _status_error(answer, location, method, what)

    def _authorization(self, key: str, scope: str) -> str | None:
        challenge = self._schemes.get(key)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            credential = self._credential(key)
            return _basic(credential) if credential is not None and credential.has_basic else None
        token = self._tokens.get((key, scope))
        if token is not None and token.expires_at > self._clock():
            return f"Bearer {token.value}"
        return None

    async def _answer_challenge(
        self, location: ImageLocation, scope: str, answer: _Answer, deadline: float | None
    ) -> None:
        key = location.registry
        header = answer.headers.get("WWW-Authenticate", "")
        try:
            challenges = parse_challenges(header)
        except ChallengeSyntaxError as exc:
            raise errors.ProtocolError(
                f"registry {key} sent an unreadable authentication challenge"
            ) from exc
        by_scheme = {c.scheme: c for c in challenges}
        credential = self._credential(key)
        if "bearer" in by_scheme:
            challenge = by_scheme["bearer"]
            # The registry names the scope it wants; ours is the same for a pull.
            wanted = challenge.params.get("scope") or scope
            token = await self._fetch_token(key, challenge, wanted, credential, deadline)
            self._tokens[(key, scope)] = token
            self._schemes[key] = challenge
        elif "basic" in by_scheme:
            if credential is None or not credential.has_basic:
                raise _access_denied(location, credential, answer)
            self._schemes[key] = by_scheme["basic"]
        else:
            raise errors.ProtocolError(
                f"registry {key} asks for an authentication scheme kubeupdate does not support: "
                f"{', '.join(c.scheme for c in challenges) or 'none given'}"
            )

    async def _fetch_token(
        self,
        key: str,
        challenge: Challenge,
        scope: str,
        credential: Credential | None,
        deadline: float | None,
    ) -> _Token:
        realm = challenge.realm
        if not realm:
            raise errors.ProtocolError(f"registry {key} asks for a bearer token but names no realm")
        parts = urlsplit(realm)
        realm_key = registry_key(parts.netloc)
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(realm_key)):
            # Credentials would cross a network in clear text.
            raise errors.ProtocolError(
                f"registry {key} names a token realm that is not HTTPS: {realm}"
            )
        service = challenge.params.get("service", "")
        if credential is not None and credential.identity_token is not None:
            # OAuth2 refresh-token grant, as docker does for an identity token.
            form = {
                "grant_type": "refresh_token",
                "refresh_token": credential.identity_token,
                "service": service,
                "scope": scope,
                "client_id": "kubeupdate",
            }
            body: bytes | None = urlencode(form).encode()
            method, url, authorization = "POST", realm, None
        else:
            query = {"scope": scope, **({"service": service} if service else {})}
            separator = "&" if parts.query else "?"
            url = f"{realm}{separator}{urlencode(query)}"
            method, body = "GET", None
            authorization = _basic(credential) if credential and credential.has_basic else None
        answer = await self._with_retries(
            method, url, realm_key, "application/json", authorization, "token", deadline,
            64 * 1024, body=body,
        )  # fmt: skip
        if answer.status in (401, 403):
            raise errors.AccessDenied(
                f"the token service of registry {key} refused "
                + ("the configured credentials" if credential else "an anonymous token")
                + f" for {scope}"
            )
        if not 200 <= answer.status < 300:
            raise _status_error(answer, None, method, "token")
        try:
            value = json.loads(answer.body)
            token = value.get("token") or value.get("access_token")
            expires_in = float(value.get("expires_in") or _DEFAULT_TOKEN_SECONDS)
        except (ValueError, AttributeError, TypeError) as exc:
            raise errors.ProtocolError(
                f"the token service of registry {key} sent no token"
            ) from exc
        if not isinstance(token, str) or not token:
            raise errors.ProtocolError(f"the token service of registry {key} sent no token")
        lifetime = max(0.0, expires_in - _TOKEN_MARGIN)
        return _Token(token, self._clock() + lifetime)

    def _credential(self, key: str) -> Credential | None:
        return self._credentials().lookup(key)

    async def _with_retries(
        self,
        method: str,
        url: str,
        key: str,
        accept: str,
        authorization: str | None,
        what: str,
        deadline: float | None,
        limit: int,
        *,
        body: bytes | None = None,
    ) -> _Answer:
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = await self._send(
                    method, url, key, accept, authorization, what, deadline, limit, body
                )
            except (errors.ConnectionFailed, errors.Timeout) as exc:
                delay = self._delay(attempt)
                if isinstance(exc, errors.Timeout) or not self._may_retry(attempt, delay, deadline):
                    raise
                log.info("retrying %s %s after: %s", method, _safe(url), exc)
                await asyncio.sleep(delay)
                continue
            if answer.status == 429:
                retry_after = _retry_after(answer.headers.get("Retry-After"))
                delay = retry_after if retry_after is not None else self._delay(attempt)
                if delay > self._timeout or not self._may_retry(attempt, delay, deadline):
                    raise errors.TooManyRequests(
                        f"registry {key} is rate-limiting us (HTTP 429)"
                        + (f"; it asks to retry in {retry_after:.0f}s" if retry_after else ""),
                        retry_after=retry_after,
                    )
                log.info("registry %s asked to retry in %.1fs", key, delay)
                await asyncio.sleep(delay)
                continue
            if answer.status >= 500:
                delay = self._delay(attempt)
                if self._may_retry(attempt, delay, deadline):
                    log.info("retrying %s %s after HTTP %d", method, _safe(url), answer.status)
                    await asyncio.sleep(delay)
                    continue
            return answer

    async def _send(
        self,
        method: str,
        url: str,
        key: str,
        accept: str,
        authorization: str | None,
        what: str,
        deadline: float | None,
        limit: int,
        body: bytes | None,
    ) -> _Answer:
        timeout = self._timeout
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                raise errors.Timeout(f"no time left to ask registry {key}")
        headers = {"Accept": accept, "User-Agent": "kubeupdate"}
        if authorization is not None:
            headers["Authorization"] = authorization
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        code = "connection"
        try:
            async with asyncio.timeout(timeout):
                answer = await self._exchange(method, url, key, headers, limit, body)
            code = str(answer.status)
            return answer
        except TimeoutError as exc:
            code = "timeout"
            raise errors.Timeout(f"registry {key} did not answer within {timeout:.1f}s") from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            raise errors.ConnectionFailed(
                f"the TLS certificate of registry {key} is not trusted: {exc.certificate_error}"
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise errors.ConnectionFailed(
                f"cannot connect to registry {key}: {exc.os_error}"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise errors.ConnectionFailed(
                f"the connection to registry {key} broke: {type(exc).__name__}"
            ) from exc
        finally:
            if self._observe is not None:
                self._observe(method, what, code, time.perf_counter() - started)

    async def _exchange(
        self,
        method: str,
        url: str,
        key: str,
        headers: dict[str, str],
        limit: int,
        body: bytes | None,
    ) -> _Answer:
        """One request; a blob redirected to other storage is followed without our credentials."""
        for _ in range(3):
            async with self._get_session().request(
                method,
                url,
                data=body,
                headers=headers,
                ssl=self._hosts.ssl_context(registry_key(urlsplit(url).netloc)),
                allow_redirects=False,
            ) as response:
                location = response.headers.get("Location")
                if response.status in (301, 302, 303, 307, 308) and location and method == "GET":
                    target = urljoin(url, location)
                    if urlsplit(target).netloc != urlsplit(url).netloc:
                        headers = {k: v for k, v in headers.items() if k != "Authorization"}
                    url = target
                    continue
                content = b"" if method == "HEAD" else await _read(response, limit, key)
                return _Answer(response.status, response.headers, content)
        raise errors.ProtocolError(f"registry {key} redirected too many times")

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connection_limit, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    def _delay(self, attempt: int) -> float:
        # Full jitter: concurrent retries spread out instead of hitting the registry together.
        return random.uniform(0, self._backoff * 2 ** (attempt - 1))

    def _may_retry(self, attempt: int, delay: float, deadline: float | None) -> bool:
        return attempt < self._attempts and (
            deadline is None or time.monotonic() + delay < deadline
        )


async def _read(response: aiohttp.ClientResponse, limit: int, key: str) -> bytes:
    """The body, refused past ``limit`` bytes; of an error body only the start is kept."""
    success = 200 <= response.status < 300
    keep = limit if success else _ERROR_BODY_LIMIT
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        if size + len(chunk) > keep:
            if success:
                raise errors.ProtocolError(f"registry {key} sent more than {limit} bytes")
            chunks.append(chunk[: keep - size])
            break
        size += len(chunk)
        chunks.append(chunk)
    return b"".join(chunks)


def _verified_digest(body: bytes, expected: str | None, location: ImageLocation, ref: str) -> str:
    """The digest of ``body``; ProtocolError if it differs from the one announced."""
    algorithm = (expected or "sha256:").split(":", 1)[0]
    hasher = _HASHES.get(algorithm)
    if hasher is None:
        raise errors.ProtocolError(
            f"registry {location.registry} uses the digest algorithm {algorithm!r}, "
            "which kubeupdate cannot check"
        )
    digest = f"{algorithm}:{hasher(body).hexdigest()}"
    if expected is not None and digest != expected:
        raise errors.ProtocolError(
            f"registry {location.registry} sent content for {location.repository} {ref} "
            f"whose digest is {digest}, not {expected}"
        )
    return digest


def _not_found(location: ImageLocation, reference: str, body: bytes) -> errors.ImageNotFound:
    codes = _error_codes(body)
    if "NAME_UNKNOWN" in codes:
        detail = f"the repository {location.repository} does not exist"
    elif ":" in reference:
        detail = f"the repository {location.repository} has no manifest {reference}"
    else:
        detail = f"the repository {location.repository} has no tag {reference}"
    return errors.ImageNotFound(
        f"image {location} does not exist: in registry {location.registry}, {detail}",
        registry=location.registry,
        repository=location.repository,
        reference=reference,
    )


def _access_denied(
    location: ImageLocation, credential: Credential | None, answer: _Answer
) -> errors.AccessDenied:
    if credential is None:
        # Registries hide private repositories from anonymous callers behind a 401.
        why = (
            f"no credentials are configured for {location.registry} "
            "(or the repository does not exist)"
        )
    else:
        why = f"the credentials configured for {location.registry} were refused"
    return errors.AccessDenied(
        f"registry {location.registry} refused to let kubeupdate read repository "
        f"{location.repository} (HTTP {answer.status}): {why}"
    )


def _status_error(
    answer: _Answer, location: ImageLocation | None, method: str, what: str
) -> errors.RegistryError:
    where = f"registry {location.registry}" if location else "the registry's token service"
    about = f" for {location.repository}" if location else ""
    if answer.status >= 500:
        return errors.ServerError(f"{where} failed{about} (HTTP {answer.status})")
    return errors.ProtocolError(
        f"{where} answered {method} {what}{about} with an unexpected HTTP {answer.status}"
    )


def _error_codes(body: bytes) -> list[str]:
    """The ``code`` of each entry of a distribution error body, e.g. ``MANIFEST_UNKNOWN``."""
    try:
        value: Any = json.loads(body) if body else {}
    except ValueError:
        return []
    entries = value.get("errors") if isinstance(value, dict) else None
    if not isinstance(entries, list):
        return []
    return [str(e.get("code")) for e in entries if isinstance(e, dict) and e.get("code")]


def _basic(credential: Credential | None) -> str:
    assert credential is not None
    assert credential.username is not None
    pair = f"{credential.username}:{credential.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _retry_after(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None  # an HTTP date: fall back to our own back-off


def _bare(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _safe(url: str) -> str:
    """A URL for the log: no query (a token request's query may name scopes only, but be safe)."""
    return url.split("?", 1)[0]
