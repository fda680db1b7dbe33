"""Where the client's bearer token comes from.

In order: the ``token`` argument; the ``KUBEUPDATE_TOKEN`` environment
variable; inside a GitHub Actions job with ``permissions: id-token: write``
(``ACTIONS_ID_TOKEN_REQUEST_URL`` and ``ACTIONS_ID_TOKEN_REQUEST_TOKEN`` set)
and an audience configured, a GitHub OIDC token for that audience, fetched
with urllib and fetched again shortly before it expires. Otherwise no token.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Protocol

from kubeupdate.client.errors import CredentialsError

TOKEN_ENV = "KUBEUPDATE_TOKEN"  # noqa: S105 (a variable name)
AUDIENCE_ENV = "KUBEUPDATE_AUDIENCE"
GITHUB_REQUEST_URL_ENV = "ACTIONS_ID_TOKEN_REQUEST_URL"
GITHUB_REQUEST_TOKEN_ENV = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"  # noqa: S105 (a variable name)

# Fetch a new OIDC token this long before the current one expires.
_REFRESH_MARGIN = 60.0
# When a token carries no readable expiry, keep it this long.
_DEFAULT_LIFETIME = 240.0


class TokenSource(Protocol):
    """Gives the bearer token for the next call, or None to send none."""

    def token(self) -> str | None: ...


class StaticToken:
    """A token fixed at construction (argument or ``KUBEUPDATE_TOKEN``)."""

    def __init__(self, token: str | None) -> None:
        self._token = token

    def token(self) -> str | None:
        return self._token


class GitHubOidcToken:
    """A GitHub Actions OIDC token for one audience, cached until near its expiry."""

    def __init__(
        self,
        request_url: str,
        request_token: str,
        audience: str,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = _with_query(request_url, audience=audience)
        self._request_token = request_token
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: str | None = None
        self._expires = 0.0

    def token(self) -> str:
        with self._lock:
            if self._cached is None or self._clock() >= self._expires - _REFRESH_MARGIN:
                self._cached = self._fetch()
                self._expires = _expiry(self._cached) or self._clock() + _DEFAULT_LIFETIME
            return self._cached

    def _fetch(self) -> str:
        if urllib.parse.urlsplit(self._url).scheme not in ("http", "https"):
            raise CredentialsError(f"{GITHUB_REQUEST_URL_ENV} is not an http(s) URL")
        request = urllib.request.Request(  # noqa: S310 (scheme checked above)
            self._url,
            headers={
                "Authorization": f"bearer {self._request_token}",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:  # noqa: S310
                document = json.load(answer)
        except urllib.error.HTTPError as exc:
            raise CredentialsError(
                f"GitHub refused the OIDC token request (HTTP {exc.code}); "
                "does the job have `permissions: id-token: write`?"
            ) from exc
        except (OSError, ValueError) as exc:
            raise CredentialsError(f"cannot fetch a GitHub OIDC token: {exc}") from exc
        value = document.get("value") if isinstance(document, dict) else None
        if not isinstance(value, str) or not value:
            raise CredentialsError("the GitHub OIDC answer holds no token")
        return value


def token_source(
    token: str | None = None,
    audience: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> TokenSource:
    """The token source the rules in this module's docstring choose."""
    if environ is None:
        environ = os.environ
    if token:
        return StaticToken(token)
    if environ.get(TOKEN_ENV):
        return StaticToken(environ[TOKEN_ENV])
    audience = audience or environ.get(AUDIENCE_ENV)
    url = environ.get(GITHUB_REQUEST_URL_ENV)
    request_token = environ.get(GITHUB_REQUEST_TOKEN_ENV)
    if audience and url and request_token:
        return GitHubOidcToken(url, request_token, audience)
    return StaticToken(None)


def _with_query(url: str, **params: str) -> str:
    # GitHub's URL already carries ?api-version=...; add to it, do not replace it.
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, v) for k, v in query if k not in params] + list(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _expiry(jwt: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying it (the server verifies)."""
    try:
        payload = jwt.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None
