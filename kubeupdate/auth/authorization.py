"""The ``authorization`` metadata: Bearer tokens and HTTP Basic credentials.

The gateway forwards the HTTP ``Authorization`` header as is, so gRPC and
REST callers send the same thing. Parsing errors never quote the value.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from kubeupdate.errors import ErrorReason, Unauthenticated

MALFORMED = "Authentication failed: the Authorization header is malformed."


@dataclass(frozen=True)
class Bearer:
    token: str

    def __repr__(self) -> str:  # keeps the token out of any accidental log line
        return "Bearer(<redacted>)"


@dataclass(frozen=True)
class Basic:
    user: str
    password: str

    def __repr__(self) -> str:
        return f"Basic(user={self.user!r}, password=<redacted>)"


Credentials = Bearer | Basic


def parse_authorization(value: str) -> Credentials:
    """``Bearer <token>`` or ``Basic <base64 user:password>``; raises Unauthenticated."""
    scheme, _, rest = value.strip().partition(" ")
    rest = rest.strip()
    if not rest or " " in rest:
        raise Unauthenticated(MALFORMED, reason=ErrorReason.CREDENTIALS_MALFORMED)
    scheme = scheme.lower()  # schemes are case-insensitive (RFC 9110)
    if scheme == "bearer":
        return Bearer(rest)
    if scheme == "basic":
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise Unauthenticated(MALFORMED, reason=ErrorReason.CREDENTIALS_MALFORMED) from None
        user, colon, password = decoded.partition(":")
        if not colon or not user or not password:
            raise Unauthenticated(MALFORMED, reason=ErrorReason.CREDENTIALS_MALFORMED)
        return Basic(user, password)
    raise Unauthenticated(
        "Authentication failed: the Authorization scheme must be Bearer or Basic.",
        reason=ErrorReason.CREDENTIALS_MALFORMED,
    )
