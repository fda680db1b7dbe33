"""Tests for kubeupdate.images: the image reference grammar."""

from __future__ import annotations

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from kubeupdate.errors import InvalidArgument
from kubeupdate.images import ImageReference, parse_image, parse_registry

SHA = "0123456789abcdef" * 4
SHA512 = SHA * 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx", ImageReference(None, "nginx")),
        ("nginx:1.25", ImageReference(None, "nginx", "1.25")),
        ("library/nginx", ImageReference(None, "library/nginx")),
        ("localhost/x", ImageReference("localhost", "x")),
        ("localhost:5000/a/b:v1", ImageReference("localhost:5000", "a/b", "v1")),
        ("localhost:5000", ImageReference(None, "localhost", "5000")),
        (f"[::1]:5000/x@sha256:{SHA}", ImageReference("[::1]:5000", "x", None, f"sha256:{SHA}")),
        ("[fe80::1]/x", ImageReference("[fe80::1]", "x")),
        ("ghcr.io/acme/web:1.4.2", ImageReference("ghcr.io", "acme/web", "1.4.2")),
        ("a/b/c/d", ImageReference(None, "a/b/c/d")),
        (
            f"registry.example.com:5000/team/app:v1@sha256:{SHA}",
            ImageReference("registry.example.com:5000", "team/app", "v1", f"sha256:{SHA}"),
        ),
        ("Registry.Example.COM/app", ImageReference("Registry.Example.COM", "app")),
        ("10.0.0.1:5000/app", ImageReference("10.0.0.1:5000", "app")),
        ("a__b", ImageReference(None, "a__b")),
        ("a---b", ImageReference(None, "a---b")),
        ("a.b_c-d", ImageReference(None, "a.b_c-d")),
        ("my-registry/app", ImageReference(None, "my-registry/app")),  # no '.', ':': a path
        ("app:_v1", ImageReference(None, "app", "_v1")),
        ("app:V1.0-rc_1", ImageReference(None, "app", "V1.0-rc_1")),
        ("app:" + "t" * 128, ImageReference(None, "app", "t" * 128)),
        (f"app@sha512:{SHA512}", ImageReference(None, "app", None, f"sha512:{SHA512}")),
        ("app@md5+x.y:" + "A" * 32, ImageReference(None, "app", None, "md5+x.y:" + "A" * 32)),
        ("a" * 237, ImageReference(None, "a" * 237)),  # 255 as docker.io/library/...
        ("example.com/" + "a" * 243, ImageReference("example.com", "a" * 243)),
    ],
)
def test_parse_valid(text: str, expected: ImageReference) -> None:
    reference = parse_image(text)
    assert reference == expected
    assert str(reference) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "image is required"),
        ("Nginx", "repository names must be lowercase"),
        ("acme/Web:v1", "repository names must be lowercase"),
        ("ghcr.io/Acme/web", "repository names must be lowercase"),
        ("nginx 1", "whitespace, control or non-ASCII"),
        (" nginx", "whitespace, control or non-ASCII"),
        ("nginx\n", "whitespace, control or non-ASCII"),
        ("nginx\t", "whitespace, control or non-ASCII"),
        ("ngi\x00nx", "whitespace, control or non-ASCII"),
        ("nginx\x7f", "whitespace, control or non-ASCII"),
        ("nginé", "whitespace, control or non-ASCII"),
        ("/nginx", "must not be empty, start or end with '/'"),
        ("nginx/", "must not be empty, start or end with '/'"),
        ("ghcr.io/", "must not be empty, start or end with '/'"),
        ("a//b", "empty part"),
        ("-x", "each part of the repository name"),
        ("x-", "each part of the repository name"),
        ("a_-b", "each part of the repository name"),
        ("a___b", "each part of the repository name"),
        ("a..b", "each part of the repository name"),
        ("a/.b", "each part of the repository name"),
        (":tag", "the repository name is missing"),
        ("@sha256:" + SHA, "the repository name is missing"),
        ("app:", "the tag after ':' is empty"),
        ("app:" + "t" * 129, "the tag is too long (129 characters, at most 128)"),
        ("app:.v1", "the tag must consist"),
        ("app:-v1", "the tag must consist"),
        ("app:v+1", "the tag must consist"),
        ("app@sha256:" + SHA[:63], "exactly 64 hexadecimal characters, not 63"),
        ("app@sha256:" + SHA + "0", "exactly 64 hexadecimal characters, not 65"),
        ("app@sha256:" + SHA.upper(), "sha256 digest must be lowercase"),
        ("app@sha512:" + SHA, "exactly 128 hexadecimal characters, not 64"),
        ("app@sha256:", "exactly 64 hexadecimal characters, not 0"),
        ("app@", "the digest after '@' must have the form algorithm:hex"),
        ("app@" + SHA, "the digest after '@' must have the form algorithm:hex"),
        ("app@1sha:" + SHA, "the digest after '@' must have the form algorithm:hex"),
        ("app@sha256:" + SHA + "@x", "exactly 64 hexadecimal characters"),
        ("app@foo:" + "a" * 31, "at least 32 hexadecimal characters"),
        ("app@foo:" + "g" * 32, "at least 32 hexadecimal characters"),
        ("-bad.io/app", "the registry"),
        ("bad_host.io/app", "the registry"),
        ("host.io:port/app", "the registry"),
        ("[::g]/app", "the registry"),
        ("a.b_c/app", "the registry"),  # '.' makes it a registry, and '_' is no host
        (SHA, "image ID"),
        ("a" * 238, "with its registry spelled out"),
        ("example.com/" + "a" * 244, "the name is 256 characters long"),
    ],
)
def test_parse_invalid(text: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_image(text)
    assert reason in info.value.message
    if text:
        assert info.value.message.startswith("image ")
        assert "is not a valid image reference: " in info.value.message


@pytest.mark.parametrize("value", [5, ["nginx"], b"nginx"])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidArgument, match=r"^image must be a string$"):
        parse_image(value)  # type: ignore[arg-type]


def test_message_in_full() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_image("Nginx")
    assert info.value.message == (
        'image "Nginx" is not a valid image reference: repository names must be lowercase'
    )


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("nginx", "docker.io/library/nginx"),
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("library/nginx", "docker.io/library/nginx"),
        ("docker.io/nginx", "docker.io/library/nginx"),
        ("docker.io/library/nginx", "docker.io/library/nginx"),
        ("acme/web:v1", "docker.io/acme/web:v1"),
        (f"nginx@sha256:{SHA}", f"docker.io/library/nginx@sha256:{SHA}"),
        ("ghcr.io/acme/web:1.4.2", "ghcr.io/acme/web:1.4.2"),
        ("localhost/nginx", "localhost/nginx"),
        ("quay.io/nginx", "quay.io/nginx"),
        # Docker Hub's other names are Docker Hub; host names are case-insensitive.
        ("index.docker.io/nginx:1", "docker.io/library/nginx:1"),
        ("index.docker.io/acme/web", "docker.io/acme/web"),
        ("registry-1.docker.io/acme/web:2", "docker.io/acme/web:2"),
        ("registry.hub.docker.com/library/nginx", "docker.io/library/nginx"),
        ("GHCR.io/acme/web", "ghcr.io/acme/web"),
    ],
)
def test_normalized(text: str, normalized: str) -> None:
    assert parse_image(text).normalized() == normalized
    assert str(parse_image(text).normalized_reference()) == normalized


@pytest.mark.parametrize(
    ("text", "effective_tag"),
    [
        ("nginx", "latest"),
        ("nginx:1.25", "1.25"),
        (f"nginx@sha256:{SHA}", None),
        (f"nginx:1.25@sha256:{SHA}", "1.25"),
    ],
)
def test_effective_tag(text: str, effective_tag: str | None) -> None:
    reference = parse_image(text)
    assert reference.effective_tag == effective_tag
    assert reference.tag == text.partition(":")[2].partition("@")[0] or reference.tag is None


def test_message_of_a_hostile_value_stays_short_and_one_line() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_image("x\n" * 10_000)
    assert "\n" not in info.value.message
    assert len(info.value.message) < 300


# --- properties -----------------------------------------------------------------------

_alnum = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_separator = st.sampled_from([".", "_", "__", "-", "--", "---"])


@st.composite
def _components(draw: st.DrawFn) -> str:
    parts = [draw(_alnum)]
    for _ in range(draw(st.integers(0, 3))):
        parts += [draw(_separator), draw(_alnum)]
    return "".join(parts)


_domain_component = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)
_registry = st.one_of(
    st.just("localhost"),
    st.builds(lambda a, b: f"{a}.{b}", _domain_component, _domain_component),
    st.from_regex(r"\[[0-9a-f:]{1,12}\]", fullmatch=True),
).flatmap(
    lambda host: st.one_of(st.just(host), st.integers(0, 65535).map(lambda port: f"{host}:{port}"))
)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_digest = st.one_of(
    st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True),
    st.from_regex(r"sha512:[0-9a-f]{128}", fullmatch=True),
    st.from_regex(
        r"[a-z][a-z0-9]{0,4}([+._-][a-z][a-z0-9]{0,3})?:[0-9a-fA-F]{32,40}", fullmatch=True
    ).filter(lambda d: d.partition(":")[0] not in {"sha256", "sha384", "sha512"}),
)


@st.composite
def valid_references(draw: st.DrawFn) -> str:
    """Text that the grammar accepts, built part by part."""
    components = draw(st.lists(_components(), min_size=1, max_size=4))
    path = "/".join(components)
    registry = draw(st.one_of(st.none(), _registry))
    # Without a registry, a first part holding '.' would be read as one (the docker rule).
    if registry is None and len(components) > 1:
        assume("." not in components[0])
    text = path if registry is None else f"{registry}/{path}"
    if draw(st.booleans()):
        text += ":" + draw(_tag)
    if draw(st.booleans()):
        text += "@" + draw(_digest)
    return text


@given(st.text())
@example("\x00")
@example("a:b:c")
@example("@@@")
@example("[::1]")
@example("[")
def test_parse_raises_only_invalid_argument(text: str) -> None:
    try:
        reference = parse_image(text)
    except InvalidArgument:
        return
    assert str(reference) == text


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E)))
def test_parse_raises_only_invalid_argument_on_printable_ascii(text: str) -> None:
    try:
        reference = parse_image(text)
    except InvalidArgument:
        return
    assert str(reference) == text
    assert parse_image(reference.normalized()).normalized() == reference.normalized()


@given(valid_references())
def test_valid_references_round_trip(text: str) -> None:
    reference = parse_image(text)
    assert str(reference) == text


@given(valid_references())
def test_normalized_is_idempotent(text: str) -> None:
    normalized = parse_image(text).normalized()
    assert parse_image(normalized).normalized() == normalized
    assert parse_image(normalized).registry is not None


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("nginx:1.25", "docker.io/library/nginx"),
        ("index.docker.io/acme/web@sha256:" + SHA, "docker.io/acme/web"),
        ("ghcr.io/acme/web:1", "ghcr.io/acme/web"),
        ("localhost:5000/a/b:1", "localhost:5000/a/b"),
    ],
)
def test_name_is_the_normalised_repository_without_tag_or_digest(text: str, name: str) -> None:
    assert parse_image(text).name == name


@pytest.mark.parametrize(
    ("text", "registry"),
    [
        ("docker.io", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("Quay.IO", "quay.io"),
        ("localhost:5000", "localhost:5000"),
        ("[::1]:5000", "[::1]:5000"),
    ],
)
def test_registries_have_one_spelling(text: str, registry: str) -> None:
    assert parse_registry(text) == registry


@pytest.mark.parametrize("text", ["", "ghcr.io/acme", "-bad.example", "a b", "host:port"])
def test_what_is_not_a_registry(text: str) -> None:
    with pytest.raises(InvalidArgument, match="is not a registry"):
        parse_registry(text)
