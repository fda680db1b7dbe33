"""Static tokens: creation, hashing, verification, the tokens file."""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Any

import pytest

from kubeupdate.auth.tokens import (
    TokenEntry,
    TokensFileError,
    TokenStore,
    create_token,
    hash_text,
    parse_tokens,
    token_id_of,
)

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def store_of(*entries: TokenEntry) -> TokenStore:
    return TokenStore({e.id: e for e in entries}, clock=lambda: NOW)


def test_a_new_secret_verifies_and_holds_its_id() -> None:
    secret, entry = create_token("release-bot")
    assert secret.startswith("kut_release-bot_")
    assert len(secret) == len("kut_release-bot_") + 64
    assert token_id_of(secret) == "release-bot"
    assert store_of(entry).verify("release-bot", secret) == entry
    # Only the hash is kept, never the secret.
    assert secret not in entry.entry_yaml()
    assert secret.rsplit("_", 1)[1] not in repr(entry)


def test_two_tokens_never_share_secret_or_salt() -> None:
    (s1, e1), (s2, e2) = create_token("a"), create_token("a")
    assert s1 != s2
    assert e1.salt != e2.salt


@pytest.mark.parametrize(
    ("token_id", "secret_of"),
    [
        ("release-bot", lambda s: s[:-1] + ("0" if s[-1] != "0" else "1")),  # wrong secret
        ("nobody", lambda s: s),  # unknown id
        ("other", lambda s: s),  # a known id, another token's secret
        ("release-bot", lambda s: s.upper()),
        ("release-bot", lambda s: ""),
        ("release-bot", lambda s: s + "x"),
        ("", lambda s: s),
    ],
)
def test_every_failure_answers_none(token_id: str, secret_of: Any) -> None:
    secret, entry = create_token("release-bot")
    _, other = create_token("other")
    assert store_of(entry, other).verify(token_id, secret_of(secret)) is None


def test_a_secret_is_bound_to_its_id() -> None:
    # Same salt and digest filed under another id: the embedded id must match.
    secret, entry = create_token("release-bot")
    alias = TokenEntry("alias", entry.salt, entry.digest)
    assert store_of(alias).verify("alias", secret) is None


def test_expired_and_revoked_tokens_fail() -> None:
    secret, entry = create_token("bot")
    expired = TokenEntry("bot", entry.salt, entry.digest, expires=NOW)
    later = TokenEntry("bot", entry.salt, entry.digest, expires=NOW + dt.timedelta(seconds=1))
    revoked = TokenEntry("bot", entry.salt, entry.digest, revoked=True)
    assert store_of(expired).verify("bot", secret) is None
    assert store_of(later).verify("bot", secret) == later
    assert store_of(revoked).verify("bot", secret) is None


def test_unknown_ids_take_the_hashing_path_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # Constant work: the digest is computed and compared whether or not the id exists.
    compared: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(len(a))
        return bool(real(a, b))

    monkeypatch.setattr(hmac, "compare_digest", counting)
    secret, entry = create_token("bot")
    store = store_of(entry)
    store.verify("nobody", secret)
    store.verify("bot", secret + "0")
    store.verify("bot", secret)
    assert compared == [32, 32, 32]


@pytest.mark.parametrize("token_id", ["", "-x", "a b", "a:b", "x" * 64, "ü"])
def test_invalid_ids_are_refused(token_id: str) -> None:
    with pytest.raises(ValueError, match="token id"):
        create_token(token_id)


def test_the_printed_entry_parses_back() -> None:
    import yaml

    secret, entry = create_token("bot", dt.datetime(2027, 1, 31, tzinfo=dt.UTC))
    store = parse_tokens(yaml.safe_load("tokens:\n" + entry.entry_yaml()), clock=lambda: NOW)
    assert store.verify("bot", secret) == entry


@pytest.mark.parametrize(
    ("expires", "valid"),
    [
        ("2026-11-27T11:59:59Z", False),
        ("2026-11-27T12:00:01+00:00", True),
        (dt.date(2026, 11, 28), True),
        (dt.datetime(2026, 11, 26), False),  # naive: UTC
    ],
)
def test_expiry_forms(expires: Any, valid: bool) -> None:
    secret, entry = create_token("bot")
    document = {
        "tokens": [{"id": "bot", "hash": hash_text(entry.salt, entry.digest), "expires": expires}]
    }
    store = parse_tokens(document, clock=lambda: NOW)
    assert (store.verify("bot", secret) is not None) is valid


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "mapping"),
        ({"tokens": {}}, "list"),
        ({"tokens": [{"id": "a"}]}, "hash"),
        ({"tokens": [{"id": "a", "hash": "kut_a_" + "0" * 64}]}, "hash"),
        ({"tokens": [{"id": "a b", "hash": "x"}]}, "id"),
        ({"tokens": [{"id": "a", "hash": "x", "secret": "y"}]}, "unknown"),
        ({"tokens": [{"id": "a", "hash": "x", "expires": "soon"}]}, "hash|expires"),
        ({"tokens": [{"id": "a", "hash": "x", "revoked": "yes"}]}, "hash|revoked"),
    ],
)
def test_broken_files_are_refused(document: Any, message: str) -> None:
    with pytest.raises(TokensFileError, match=message):
        parse_tokens(document)


def test_a_pasted_secret_is_not_echoed_in_the_error() -> None:
    secret, _ = create_token("a")
    with pytest.raises(TokensFileError) as caught:
        parse_tokens({"tokens": [{"id": "a", "hash": secret}]})
    assert secret not in str(caught.value)


def test_duplicate_ids_are_refused() -> None:
    _, entry = create_token("a")
    line = {"id": "a", "hash": hash_text(entry.salt, entry.digest)}
    with pytest.raises(TokensFileError, match="twice"):
        parse_tokens({"tokens": [line, line]})


def test_an_empty_file_holds_no_tokens() -> None:
    assert len(parse_tokens(None)) == 0
