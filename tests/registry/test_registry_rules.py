"""The pure parts of the registry package, table-driven: names, challenges, credentials,
platforms, signature payloads."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from kubeupdate.images import parse_image
from kubeupdate.registry.challenges import Challenge, ChallengeSyntaxError, parse_challenges
from kubeupdate.registry.credentials import (
    Credential,
    RegistryCredentials,
    parse_docker_config,
    watch_credentials,
)
from kubeupdate.registry.endpoints import ImageLocation, is_loopback, registry_key
from kubeupdate.registry.errors import ConfigurationError
from kubeupdate.registry.hosts import HostSettings, RegistryHosts
from kubeupdate.registry.platforms import Platform, missing_platforms
from kubeupdate.registry.signatures import (
    check_in_toto_statement,
    check_simple_signing,
    dsse_pae,
    referrers_tag,
    signature_tag,
)

SHA = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("image", "registry", "host", "repository", "reference"),
    [
        ("nginx", "docker.io", "registry-1.docker.io", "library/nginx", "latest"),
        ("nginx:1.25", "docker.io", "registry-1.docker.io", "library/nginx", "1.25"),
        ("acme/web:1", "docker.io", "registry-1.docker.io", "acme/web", "1"),
        ("docker.io/nginx", "docker.io", "registry-1.docker.io", "library/nginx", "latest"),
        ("index.docker.io/acme/web:1", "docker.io", "registry-1.docker.io", "acme/web", "1"),
        ("ghcr.io/acme/web:1", "ghcr.io", "ghcr.io", "acme/web", "1"),
        ("Reg.Example:5000/app:v1", "reg.example:5000", "reg.example:5000", "app", "v1"),
        (f"ghcr.io/acme/web:1@{SHA}", "ghcr.io", "ghcr.io", "acme/web", SHA),
        (f"localhost:5000/app@{SHA}", "localhost:5000", "localhost:5000", "app", SHA),
    ],
)
def test_image_locations(
    image: str, registry: str, host: str, repository: str, reference: str
) -> None:
    location = ImageLocation.of(parse_image(image))
    assert (location.registry, location.host, location.repository, location.reference) == (
        registry, host, repository, reference,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("docker.io", "docker.io"),
        ("https://Registry.Example:5000/", "registry.example:5000"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000"),
        ("ghcr.io", "ghcr.io"),
    ],
)
def test_registry_keys_fold_every_spelling(text: str, key: str) -> None:
    assert registry_key(text) == key


@pytest.mark.parametrize(
    ("key", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("[::1]:5000", True),
        ("10.0.0.1:5000", False),
        ("registry.example", False),
        ("localhost.example:5000", False),
    ],
)
def test_loopback_registries(key: str, loopback: bool) -> None:
    assert is_loopback(key) is loopback


def test_plain_http_is_refused_for_a_registry_across_a_network() -> None:
    with pytest.raises(ConfigurationError, match="only allowed for a loopback registry"):
        RegistryHosts({"registry.example": HostSettings(plain_http=True)})
    hosts = RegistryHosts({"localhost:5000": HostSettings(plain_http=True)})
    assert (hosts.scheme("localhost:5000"), hosts.scheme("ghcr.io")) == ("http", "https")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/nginx:pull"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://auth.docker.io/token",
                        "service": "registry.docker.io",
                        "scope": "repository:library/nginx:pull",
                    },
                )
            ],
        ),
        (
            'Bearer realm="https://a/token",error="insufficient_scope",scope="repository:x:pull"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://a/token",
                        "error": "insufficient_scope",
                        "scope": "repository:x:pull",
                    },
                )
            ],
        ),
        (
            'Basic realm="a", Bearer realm="b" , service=x',
            [
                Challenge("basic", {"realm": "a"}),
                Challenge("bearer", {"realm": "b", "service": "x"}),
            ],
        ),
        ("BASIC REALM=plain", [Challenge("basic", {"realm": "plain"})]),
        ('Basic realm="quote \\" inside"', [Challenge("basic", {"realm": 'quote " inside'})]),
        ("Basic", [Challenge("basic", {})]),
        ("", []),
    ],
)
def test_challenges(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


@pytest.mark.parametrize("header", ['Basic realm="open', "Basic realm=", "Basic @", '="x"'])
def test_unreadable_challenges(header: str) -> None:
    with pytest.raises(ChallengeSyntaxError):
        parse_challenges(header)


def auth(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("config", "lookup", "expected"),
    [
        ({"auths": {"ghcr.io": {"auth": auth("ci:pw")}}}, "ghcr.io", Credential("ci", "pw")),
        ({"auths": {"ghcr.io": {"auth": auth("ci:p:w")}}}, "ghcr.io", Credential("ci", "p:w")),
        (
            {"auths": {"r.example": {"username": "u", "password": "p"}}},
            "r.example",
            Credential("u", "p"),
        ),
        (
            {"auths": {"https://index.docker.io/v1/": {"auth": auth("hub:pw")}}},
            "docker.io",
            Credential("hub", "pw"),
        ),
        (
            {"auths": {"docker.io": {"identitytoken": "refresh"}}},
            "registry-1.docker.io",
            Credential(identity_token="refresh"),
        ),
        ({"auths": {"ghcr.io": {"auth": auth("ci:pw")}}}, "quay.io", None),
        ({}, "ghcr.io", None),
    ],
)
def test_credential_lookup(
    config: dict[str, Any], lookup: str, expected: Credential | None
) -> None:
    assert parse_docker_config(config).lookup(lookup) == expected


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ([], "must hold a JSON object"),
        ({"credsStore": "desktop"}, "credential helper program"),
        ({"credHelpers": {"ghcr.io": "gh"}}, "credential helper program"),
        ({"auths": {"a": {"auth": "%%%"}}}, "not base64 of user:password"),
        ({"auths": {"a": {"auth": auth("nocolon")}}}, "not base64 of user:password"),
        ({"auths": {"a": {"email": "x@y"}}}, "has no 'auth'"),
        ({"auths": {"a": {"username": 1}}}, "must be a string"),
        (
            {
                "auths": {
                    "docker.io": {"auth": auth("a:b")},
                    "index.docker.io": {"auth": auth("a:b")},
                }
            },
            "two entries for the registry docker.io",
        ),
    ],
)
def test_unusable_credentials_files(config: Any, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        parse_docker_config(config)


def test_credentials_never_show_their_secrets() -> None:
    credentials = RegistryCredentials({"ghcr.io": Credential("ci", "hunter2", "refresh-me")})
    assert "hunter2" not in repr(credentials.lookup("ghcr.io"))
    assert "refresh-me" not in repr(credentials.lookup("ghcr.io"))
    assert repr(credentials) == "RegistryCredentials(registries=['ghcr.io'])"


def test_the_credentials_file_is_reloaded_and_a_broken_one_keeps_the_old(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    # docker writes config.json indented with tabs, which YAML would refuse.
    path.write_text(json.dumps({"auths": {"ghcr.io": {"auth": auth("a:1")}}}, indent="\t"))
    watched = watch_credentials(path, interval=0)
    assert watched.value.lookup("ghcr.io") == Credential("a", "1")
    path.write_text(json.dumps({"auths": {"ghcr.io": {"auth": auth("b:2")}}}, indent="\t") + " ")
    assert watched.value.lookup("ghcr.io") == Credential("b", "2")
    path.write_text('{"auths": ')
    assert watched.value.lookup("ghcr.io") == Credential("b", "2")


@pytest.mark.parametrize(
    ("text", "platform"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("Linux/AMD64", Platform("linux", "amd64")),
        ("linux/arm64", Platform("linux", "arm64", "v8")),
        ("linux/aarch64", Platform("linux", "arm64", "v8")),
        ("linux/arm/v7", Platform("linux", "arm", "v7")),
        ("linux/armhf", Platform("linux", "arm", "v7")),
        ("windows/amd64", Platform("windows", "amd64")),
    ],
)
def test_platform_names_are_normalised(text: str, platform: Platform) -> None:
    assert Platform.parse(text) == platform


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "linux/arm/v7/x", ""])
def test_platforms_that_are_not(text: str) -> None:
    with pytest.raises(ValueError, match="is not a platform"):
        Platform.parse(text)


@pytest.mark.parametrize(
    ("required", "found", "missing"),
    [
        (["linux/amd64"], ["linux/amd64", "linux/arm64"], []),
        (["linux/amd64"], ["linux/arm64"], ["linux/amd64"]),
        (["linux/arm64"], ["linux/arm64/v8"], []),
        (["linux/arm"], ["linux/arm/v6"], []),
        (["linux/arm/v7"], ["linux/arm/v6"], ["linux/arm/v7"]),
        (["linux/amd64", "linux/s390x"], ["linux/amd64"], ["linux/s390x"]),
        (["linux/amd64"], ["windows/amd64"], ["linux/amd64"]),
        (["linux/amd64"], [], ["linux/amd64"]),
    ],
)
def test_platform_matching(required: list[str], found: list[str], missing: list[str]) -> None:
    result = missing_platforms(map(Platform.parse, required), [Platform.parse(f) for f in found])
    assert [str(p) for p in result] == missing


@pytest.mark.parametrize(
    ("value", "platform"),
    [
        ({"os": "linux", "architecture": "amd64"}, "linux/amd64"),
        ({"os": "linux", "architecture": "arm", "variant": "v7"}, "linux/arm/v7"),
        ({"os": "unknown", "architecture": "unknown"}, None),  # buildx attestations
        ({"architecture": "amd64"}, None),
        (None, None),
    ],
)
def test_platforms_of_descriptors(value: Any, platform: str | None) -> None:
    found = Platform.from_json(value)
    assert (str(found) if found else None) == platform


def payload(digest: str = SHA, kind: str = "cosign container image signature") -> bytes:
    critical = {
        "identity": {"docker-reference": "ghcr.io/acme/web"},
        "image": {"docker-manifest-digest": digest},
        "type": kind,
    }
    return json.dumps({"critical": critical, "optional": None}).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (payload(), None),
        (payload(digest="sha256:" + "cd" * 32), "it signs another image digest"),
        (payload(kind="something else"), "has the type 'something else'"),
        (b"not json", "not a cosign simple signing payload"),
        (b'{"critical": {}}', "not a cosign simple signing payload"),
        (b"[]", "not a cosign simple signing payload"),
    ],
)
def test_simple_signing_payloads(data: bytes, reason: str | None) -> None:
    if reason is None:
        assert check_simple_signing(data, SHA)["critical"]["image"]["docker-manifest-digest"] == SHA
    else:
        with pytest.raises(ValueError, match=reason):
            check_simple_signing(data, SHA)


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ({"subject": [{"name": "x", "digest": {"sha256": "ab" * 32}}]}, None),
        ({"subject": [{"name": "x", "digest": {"sha256": "cd" * 32}}]}, "another image digest"),
        ({"subject": [{"name": "x", "digest": {"sha512": "ab" * 32}}]}, "another image digest"),
        ({"predicate": {}}, "not an in-toto statement"),
    ],
)
def test_in_toto_statements(statement: dict[str, Any], reason: str | None) -> None:
    data = json.dumps(statement).encode()
    if reason is None:
        check_in_toto_statement(data, SHA)
    else:
        with pytest.raises(ValueError, match=reason):
            check_in_toto_statement(data, SHA)


def test_tags_and_encodings_of_the_signing_formats() -> None:
    assert signature_tag(SHA) == "sha256-" + "ab" * 32 + ".sig"
    assert referrers_tag(SHA) == "sha256-" + "ab" * 32
    # DSSE v1 pre-authentication encoding, from the DSSE specification's example.
    assert dsse_pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
