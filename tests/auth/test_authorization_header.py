"""Parsing the Authorization metadata."""

from __future__ import annotations

import base64

import pytest

from kubeupdate.auth.authorization import Basic, Bearer, parse_authorization
from kubeupdate.errors import Unauthenticated


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc.def", Bearer("abc.def")),
        ("bearer abc", Bearer("abc")),
        ("BEARER  abc ", Bearer("abc")),
        (basic("bot:s3cret"), Basic("bot", "s3cret")),
        (basic("bot:a:b"), Basic("bot", "a:b")),  # only the first colon splits
        ("basic " + base64.b64encode(b"bot:pw").decode(), Basic("bot", "pw")),
    ],
)
def test_valid_headers(header: str, expected: object) -> None:
    assert parse_authorization(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Token abc",
        "Digest username=x",
        "Basic",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        basic(":password-only"),
        basic("user-only:"),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
    ],
)
def test_malformed_headers(header: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        parse_authorization(header)
    assert caught.value.message.startswith("Authentication failed")


def test_credentials_do_not_show_in_their_repr() -> None:
    assert "s3cret" not in repr(Basic("bot", "s3cret"))
    assert "tok" not in repr(Bearer("tok"))
