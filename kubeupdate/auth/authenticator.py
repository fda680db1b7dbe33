"""Turning a call's credentials into a :class:`~kubeupdate.caller.Caller`.

Accepted, in this order: the ``authorization`` metadata (a static token as
Bearer or HTTP Basic, or a GitHub Actions OIDC token as Bearer), then a
verified client certificate. Every failure reads the same to the caller
("authentication failed"); the reason goes to the log only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Final

from kubeupdate.auth import jws
from kubeupdate.auth.authorization import Basic, Bearer, Credentials, parse_authorization
from kubeupdate.auth.mtls import caller_from_auth_context
from kubeupdate.auth.oidc import OidcVerifier
from kubeupdate.auth.reloading import WatchedFile
from kubeupdate.auth.tokens import TOKEN_ID_RE, TokenStore, token_id_of
from kubeupdate.caller import Caller
from kubeupdate.errors import ErrorReason, Unauthenticated

log = logging.getLogger(__name__)

AUTHORIZATION_KEY: Final = "authorization"
# A GitHub OIDC token is about 1.2 KB, a static token's secret 80 bytes.
MAX_AUTHORIZATION_BYTES: Final = 4096
REQUIRED: Final = "Authentication is required: send a Bearer token or HTTP Basic credentials."
FAILED: Final = "Authentication failed."
# Sent as trailing metadata with UNAUTHENTICATED, for the gateway's 401.
WWW_AUTHENTICATE: Final = 'Bearer realm="kubeupdate", Basic realm="kubeupdate", charset="UTF-8"'


def credentials_of(metadata: Iterable[tuple[str, Any]]) -> Credentials | None:
    """The parsed ``authorization`` metadata; None without; Unauthenticated if malformed."""
    values = [v for k, v in metadata if k == AUTHORIZATION_KEY]
    if not values:
        return None
    if len(values) > 1 or not isinstance(values[0], str):
        raise Unauthenticated(
            "Authentication failed: send exactly one Authorization header.",
            reason=ErrorReason.CREDENTIALS_MALFORMED,
        )
    if len(values[0]) > MAX_AUTHORIZATION_BYTES:
        raise Unauthenticated(
            f"Authentication failed: the Authorization header is {len(values[0])} bytes long, "
            f"more than the {MAX_AUTHORIZATION_BYTES} a token, Basic credentials or an OIDC "
            "token need.",
            reason=ErrorReason.CREDENTIALS_TOO_LARGE,
        )
    return parse_authorization(values[0])


def claimed_token_id(credentials: Credentials) -> str | None:
    """The static token id the credentials claim (checked or not), if shaped like one."""
    if isinstance(credentials, Basic):
        return credentials.user if TOKEN_ID_RE.fullmatch(credentials.user) else None
    return token_id_of(credentials.token)


def method_of(credentials: Credentials) -> str:
    """How the caller tries to authenticate, for the audit line of a failure."""
    if isinstance(credentials, Basic):
        return "basic"
    return "oidc" if jws.looks_like_jwt(credentials.token) else "token"


class Authenticator:
    """Checks credentials against the tokens file, the OIDC issuer and the client CA."""

    def __init__(
        self,
        *,
        tokens: WatchedFile[TokenStore] | TokenStore | None = None,
        oidc: OidcVerifier | None = None,
        mtls: bool = False,
    ) -> None:
        self._tokens = tokens
        self.oidc = oidc
        self.mtls = mtls

    @property
    def configured(self) -> bool:
        return self._tokens is not None or self.oidc is not None or self.mtls

    def _store(self) -> TokenStore | None:
        if isinstance(self._tokens, WatchedFile):
            return self._tokens.value
        return self._tokens

    async def authenticate(
        self, credentials: Credentials | None, auth_context: dict[str, Any]
    ) -> Caller:
        """The caller the credentials prove; Unauthenticated (or Unavailable for OIDC keys)."""
        if credentials is None:
            caller = caller_from_auth_context(auth_context) if self.mtls else None
            if caller is None:
                raise Unauthenticated(REQUIRED, reason=ErrorReason.CREDENTIALS_MISSING)
            return caller
        if isinstance(credentials, Bearer) and jws.looks_like_jwt(credentials.token):
            if self.oidc is None:
                log.info("an OIDC token was sent but OIDC is not configured")
                raise Unauthenticated(FAILED, reason=ErrorReason.OIDC_NOT_ENABLED)
            return await self.oidc.verify(credentials.token)
        store = self._store()
        if store is None:
            raise Unauthenticated(FAILED, reason=ErrorReason.TOKEN_INVALID)
        if isinstance(credentials, Basic):
            token_id, secret, method = credentials.user, credentials.password, "basic"
        else:
            token_id, secret, method = (
                token_id_of(credentials.token) or "",
                credentials.token,
                "token",
            )
        entry = store.verify(token_id, secret)
        if entry is None:
            # One reason for an unknown id, a wrong secret, a revoked or expired token.
            raise Unauthenticated(FAILED, reason=ErrorReason.TOKEN_INVALID)
        return Caller(name=f"token:{entry.id}", method=method, claims={"token_id": entry.id})
