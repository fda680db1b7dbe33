"""Where the client's bearer token comes from.

In order: the ``token`` argument; the ``KUBEUPDATE_TOKEN`` environment
variable; inside a GitHub Actions job with ``permissions: id-token: write``
(``ACTIONS_ID_TOKEN_REQUEST_URL`` and ``ACTIONS_ID_TOKEN_REQUEST_TOKEN`` set),
a GitHub OIDC token for the configured audience (``audience``, else
``KUBEUPDATE_AUDIENCE``, else :data:`DEFAULT_AUDIENCE`, as the GitHub Action
does), fetched with urllib and fetched again shortly before it expires.
Otherwise no token.

Each source also says, in :meth:`TokenSource.hint`, what to change when the
server does not accept what it sent (or the absence of a token).
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
GITHUB_ACTIONS_ENV = "GITHUB_ACTIONS"
#: The audience asked for when none is configured; the GitHub Action's default too.
DEFAULT_AUDIENCE = "kubeupdate"

# Fetch a new OIDC token this long before the current one expires.
_REFRESH_MARGIN = 60.0
# When a token carries no readable expiry, keep it this long.
_DEFAULT_LIFETIME = 240.0


class TokenSource(Protocol):
    """Gives the bearer token for the next call, or None to send none."""

    def token(self) -> str | None: ...

    def hint(self) -> str:
        """What to change when the server refuses this source's token (or its absence)."""
        ...


class StaticToken:
    """A token fixed at construction (argument or ``KUBEUPDATE_TOKEN``)."""

    def __init__(self, token: str, origin: str) -> None:
        self._token = token
        self._origin = origin

    def token(self) -> str:
        return self._token

    def hint(self) -> str:
        return f"the token came from {self._origin}; check that the server knows it"


class NoToken:
    """Calls without a token: fine for a server without authentication."""

    def __init__(self, in_github_actions: bool) -> None:
        self._in_github_actions = in_github_actions

    def token(self) -> None:
        return None

    def hint(self) -> str:
        if self._in_github_actions:
            return (
                "no token was sent: give the job `permissions: id-token: write` (a GitHub OIDC "
                f"token for audience '{DEFAULT_AUDIENCE}' is then sent; --audience changes it), "
                f"or set {TOKEN_ENV} from a secret"
            )
        return f"no token was sent: set {TOKEN_ENV} or give --token"


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
        self.audience = audience
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

    def hint(self) -> str:
        default = " (the default)" if self.audience == DEFAULT_AUDIENCE else ""
        return (
            f"a GitHub OIDC token for audience '{self.audience}'{default} was sent; if the "
            "server expects another audience, give --audience AUDIENCE (or set "
            f"{AUDIENCE_ENV}); if it is the right one, the server's policy must name this "
            "repository"
        )

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
        return StaticToken(token, "--token")
    if environ.get(TOKEN_ENV):
        return StaticToken(environ[TOKEN_ENV], TOKEN_ENV)
    audience = audience or environ.get(AUDIENCE_ENV) or DEFAULT_AUDIENCE
    url = environ.get(GITHUB_REQUEST_URL_ENV)
    request_token = environ.get(GITHUB_REQUEST_TOKEN_ENV)
    if url and request_token:
        return GitHubOidcToken(url, request_token, audience)
    return NoToken(environ.get(GITHUB_ACTIONS_ENV) == "true")


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
