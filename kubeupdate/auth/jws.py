"""Just enough JWS to verify an RS256-signed JWT (RFC 7515, 7518, 7519).

Only the compact form with ``alg: RS256`` is accepted; every other algorithm
(``none``, HS256 "signed" with a public key, ES256...) is refused before any
key is looked at, which closes the algorithm-confusion attacks. Claims are
returned unchecked: :mod:`kubeupdate.auth.oidc` judges them.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ALGORITHM: Final = "RS256"
MIN_KEY_BITS: Final = 2048
# Far above a GitHub token (about 1.5 kB); keeps parsing cheap for garbage.
MAX_TOKEN_LENGTH: Final = 16_384


class JwsError(ValueError):
    """The token is malformed or its signature does not verify."""


@dataclass(frozen=True)
class SignedToken:
    """A parsed, not yet verified, compact JWS."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


def b64url_decode(text: str) -> bytes:
    if "=" in text:
        raise JwsError("padding is not allowed in JWS base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise JwsError("invalid base64url") from None


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def parse(token: str) -> SignedToken:
    """Split and decode; refuses any algorithm but RS256 and critical extensions."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise JwsError("the token is too long")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise JwsError("a JWT has three dot-separated parts")
    header = _json_object(b64url_decode(parts[0]), "header")
    if header.get("alg") != ALGORITHM:
        raise JwsError("only RS256 is accepted")
    if "crit" in header:
        raise JwsError("critical header extensions are not supported")
    claims = _json_object(b64url_decode(parts[1]), "payload")
    signature = b64url_decode(parts[2])
    if not signature:
        raise JwsError("the signature is missing")
    return SignedToken(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def verify(token: SignedToken, key: rsa.RSAPublicKey) -> None:
    """Raise JwsError unless ``key`` signed ``token`` with RSASSA-PKCS1-v1_5 SHA-256."""
    try:
        key.verify(token.signature, token.signing_input, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise JwsError("the signature does not verify") from None


def rsa_key_from_jwk(jwk: dict[str, Any]) -> rsa.RSAPublicKey:
    """The public key of an RSA JWK meant for RS256 signatures; raises JwsError."""
    if jwk.get("kty") != "RSA":
        raise JwsError("not an RSA key")
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", ALGORITHM) != ALGORITHM:
        raise JwsError("not an RS256 signing key")
    try:
        n = int.from_bytes(b64url_decode(str(jwk["n"])), "big")
        e = int.from_bytes(b64url_decode(str(jwk["e"])), "big")
        key = rsa.RSAPublicNumbers(e, n).public_key()
    except (KeyError, ValueError) as exc:
        raise JwsError(f"invalid RSA key: {exc}") from None
    if key.key_size < MIN_KEY_BITS:
        raise JwsError(f"RSA keys must have at least {MIN_KEY_BITS} bits")
    return key


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise JwsError(f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise JwsError(f"the {what} is not a JSON object")
    return value
