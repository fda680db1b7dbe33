"""Tests for kubeupdate.names: Kubernetes name checks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kubeupdate.errors import InvalidArgument
from kubeupdate.names import check_container, check_deployment, check_namespace, quote

Check = Callable[[str], None]
LABEL_CHECKS: list[tuple[str, Check]] = [
    ("namespace", check_namespace),
    ("container", check_container),
]

VALID_LABELS = [
    "a",
    "0",
    "default",
    "kube-system",
    "web-1",
    "1-web",
    "a--b",
    "a" * 63,
]

INVALID_LABELS = [
    ("Foo", "lower case"),
    ("web_1", "lower case"),
    ("-web", "start and end"),
    ("web-", "start and end"),
    ("a.b", "lower case"),
    ("a b", "lower case"),
    ("web\n", "lower case"),
    ("\nweb", "lower case"),
    ("wéb", "lower case"),
    ("a" * 64, "at most 63 characters"),
]

VALID_SUBDOMAINS = [
    "a",
    "web",
    "web-1",
    "web.v1",
    "a.b.c.d",
    "0.1",
    "a" * 253,
    ".".join(["a" * 63] * 3 + ["a" * 61]),  # 253 characters in labels
    "a" * 100 + ".b",  # kube-apiserver sets no per-label limit on subdomains
]

INVALID_SUBDOMAINS = [
    ("Web", "lower case"),
    ("web_1", "lower case"),
    ("-web", "start and end"),
    ("web-", "start and end"),
    (".web", "start and end"),
    ("web.", "start and end"),
    ("web..v1", "start and end"),
    ("web.-v1", "start and end"),
    ("web\n", "lower case"),
    ("web/x", "lower case"),
    ("a" * 254, "at most 253 characters"),
]


@pytest.mark.parametrize(("field", "check"), LABEL_CHECKS)
@pytest.mark.parametrize("value", VALID_LABELS)
def test_label_accepts(field: str, check: Check, value: str) -> None:
    check(value)


@pytest.mark.parametrize(("field", "check"), LABEL_CHECKS)
@pytest.mark.parametrize(("value", "hint"), INVALID_LABELS)
def test_label_rejects(field: str, check: Check, value: str, hint: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check(value)
    message = info.value.message
    assert message.startswith(f"{field} {quote(value)} is not a valid Kubernetes name: ")
    assert hint in message


@pytest.mark.parametrize("value", VALID_SUBDOMAINS)
def test_deployment_accepts(value: str) -> None:
    check_deployment(value)


@pytest.mark.parametrize(("value", "hint"), INVALID_SUBDOMAINS)
def test_deployment_rejects(value: str, hint: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_deployment(value)
    message = info.value.message
    assert message.startswith(f"deployment {quote(value)} is not a valid Kubernetes name: ")
    assert hint in message


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        (check_namespace, "namespace is required"),
        (check_container, "container is required"),
        (check_deployment, "deployment is required"),
    ],
)
def test_empty_is_required(check: Check, expected: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^{expected}$"):
        check("")


def test_label_message_in_full() -> None:
    with pytest.raises(InvalidArgument) as info:
        check_namespace("Foo")
    assert info.value.message == (
        'namespace "Foo" is not a valid Kubernetes name: it must consist of lower case '
        "alphanumeric characters or '-', and start and end with an alphanumeric character "
        "(at most 63 characters)"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("web", '"web"'),
        ('a"b', '"a\\"b"'),
        ("a\nb", '"a\\nb"'),
        ("a\x00b", '"a\\u0000b"'),
        ("é", '"\\u00e9"'),
        ("x" * 81, '"' + "x" * 80 + '"... (81 characters)'),
    ],
)
def test_quote_escapes_and_truncates(value: str, expected: str) -> None:
    assert quote(value) == expected


def test_message_of_a_huge_hostile_value_stays_short_and_one_line() -> None:
    value = "\n" * 10_000
    with pytest.raises(InvalidArgument) as info:
        check_deployment(value)
    assert "\n" not in info.value.message
    assert len(info.value.message) < 300


@pytest.mark.parametrize("check", [check_namespace, check_container, check_deployment])
@pytest.mark.parametrize("value", [5, ["web"], b"web"])
def test_non_strings_are_refused(check: Check, value: object) -> None:
    with pytest.raises(InvalidArgument, match=r"must be a string$"):
        check(value)  # type: ignore[arg-type]
