"""Static tokens: how secrets are made, stored (as hashes) and checked.

A secret is ``kut_<id>_<64 hex>``: 256 random bits, with the token id inside
so that the secret alone works as a Bearer token and secret scanners can
recognise it. The tokens file holds only a salted hash of each secret::

    tokens:
      - id: release-bot
        hash: hmac-sha256:<32 hex salt>:<64 hex digest>
        expires: 2027-01-01T00:00:00Z   # optional
        revoked: false                  # optional

The hash is HMAC-SHA256 keyed by a per-token salt. A slow password hash
(scrypt, PBKDF2) protects guessable passwords; these secrets have 256 bits of
entropy, so one fast hash is as safe and keeps per-request checks at a few
microseconds. Comparisons are constant-time, and an unknown id costs the same
work as a wrong secret, so timing does not tell which ids exist.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

SECRET_PREFIX: Final = "kut_"  # noqa: S105 (a prefix, not a secret)
HASH_SCHEME: Final = "hmac-sha256"
# Token ids appear in audit lines, change causes and Basic user names.
TOKEN_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_SECRET_RE: Final = re.compile(rf"{SECRET_PREFIX}(?P<id>.+)_(?P<random>[0-9a-f]{{64}})")
_HASH_RE: Final = re.compile(rf"{HASH_SCHEME}:(?P<salt>[0-9a-f]{{32}}):(?P<digest>[0-9a-f]{{64}})")
# Checked against when the id is unknown, so that path costs the same.
_DUMMY_SALT: Final = bytes(16)

Clock = Callable[[], dt.datetime]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TokensFileError(ValueError):
    """The tokens file is not valid; the message says where."""


@dataclass(frozen=True)
class TokenEntry:
    """One line of the tokens file: an id, the hash of its secret, its limits."""

    id: str
    salt: bytes
    digest: bytes
    expires: dt.datetime | None = None
    revoked: bool = False

    def entry_yaml(self) -> str:
        """The entry as it goes into the tokens file."""
        text = f"  - id: {self.id}\n    hash: {hash_text(self.salt, self.digest)}\n"
        if self.expires is not None:
            text += f"    expires: {self.expires.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        return text


def hash_text(salt: bytes, digest: bytes) -> str:
    return f"{HASH_SCHEME}:{salt.hex()}:{digest.hex()}"


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("utf-8"), hashlib.sha256).digest()


def create_token(token_id: str, expires: dt.datetime | None = None) -> tuple[str, TokenEntry]:
    """A new secret for ``token_id`` and its entry; show the secret once, store the entry."""
    if TOKEN_ID_RE.fullmatch(token_id) is None:
        raise ValueError(
            "a token id is 1 to 63 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )
    secret = f"{SECRET_PREFIX}{token_id}_{secrets.token_hex(32)}"
    salt = secrets.token_bytes(16)
    return secret, TokenEntry(token_id, salt, _digest(salt, secret), expires)


def token_id_of(secret: str) -> str | None:
    """The id inside a secret, or None when the text is not shaped like one."""
    match = _SECRET_RE.fullmatch(secret)
    return match.group("id") if match else None


class TokenStore:
    """The tokens of one file, checked in constant time."""

    def __init__(self, entries: Mapping[str, TokenEntry], *, clock: Clock = _now) -> None:
        self._entries = dict(entries)
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, token_id: str, secret: str) -> TokenEntry | None:
        """The entry when ``secret`` is the valid, unexpired secret of ``token_id``.

        None for every failure alike; the same hashing work is done whatever
        the reason, so the caller cannot tell an unknown id from a bad secret.
        """
        entry = self._entries.get(token_id)
        salt = entry.salt if entry is not None else _DUMMY_SALT
        expected = entry.digest if entry is not None else bytes(32)
        # The id inside the secret must be the one it is presented for.
        shaped = token_id_of(secret) == token_id
        matches = hmac.compare_digest(_digest(salt, secret), expected)
        if entry is None or not (matches and shaped) or entry.revoked:
            return None
        if entry.expires is not None and self._clock() >= entry.expires:
            return None
        return entry


def parse_tokens(document: Any, *, clock: Clock = _now) -> TokenStore:
    """The :class:`TokenStore` for a parsed tokens file; raises TokensFileError."""
    if document is None:
        document = {}
    if not isinstance(document, dict) or set(document) - {"tokens"}:
        raise TokensFileError("the tokens file must be a mapping with one key, 'tokens'")
    items = document.get("tokens")
    items = [] if items is None else items
    if not isinstance(items, list):
        raise TokensFileError("'tokens' must be a list")
    entries: dict[str, TokenEntry] = {}
    for index, item in enumerate(items):
        where = f"tokens[{index}]"
        if not isinstance(item, dict):
            raise TokensFileError(f"{where} must be a mapping")
        unknown = set(item) - {"id", "hash", "expires", "revoked", "description"}
        if unknown:
            raise TokensFileError(
                f"{where} has unknown keys: {', '.join(sorted(map(str, unknown)))}"
            )
        token_id = item.get("id")
        if not isinstance(token_id, str) or TOKEN_ID_RE.fullmatch(token_id) is None:
            raise TokensFileError(f"{where}: 'id' is missing or not a valid token id")
        if token_id in entries:
            raise TokensFileError(f"{where}: the id {token_id!r} appears twice")
        hashed = _HASH_RE.fullmatch(str(item.get("hash", "")))
        if hashed is None:
            # Never echo the value: someone may have pasted the secret itself.
            raise TokensFileError(f"{where}: 'hash' must be {HASH_SCHEME}:<salt>:<digest>")
        revoked = item.get("revoked", False)
        if not isinstance(revoked, bool):
            raise TokensFileError(f"{where}: 'revoked' must be true or false")
        entries[token_id] = TokenEntry(
            token_id,
            bytes.fromhex(hashed.group("salt")),
            bytes.fromhex(hashed.group("digest")),
            _expiry(item.get("expires"), where),
            revoked,
        )
    return TokenStore(entries, clock=clock)


def _expiry(value: Any, where: str) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise TokensFileError(f"{where}: 'expires' is not an ISO 8601 time") from None
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise TokensFileError(f"{where}: 'expires' is not a time")
    # A time without zone is taken as UTC, as YAML timestamps are.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
