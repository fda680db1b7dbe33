"""The distribution client against a real registry: resolution, errors, Basic and Bearer auth."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import Counter

import pytest

from kubeupdate.images import parse_image
from kubeupdate.registry import errors
from kubeupdate.registry.client import RegistryClient
from kubeupdate.registry.credentials import Credential, RegistryCredentials
from kubeupdate.registry.endpoints import ImageLocation
from kubeupdate.registry.hosts import HostSettings, RegistryHosts
from kubeupdate.registry.manifests import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from kubeupdate.registry.verifier import ImageVerifier, Requirements
from tests.registry.distribution import free_port
from tests.registry.fixtures import REFRESH_TOKEN, USER, LiveRegistry

NO_PLATFORMS = Requirements(platforms=())


def at(registry: LiveRegistry, repository: str, tag: str) -> ImageLocation:
    return ImageLocation.of(parse_image(f"{registry.host}/{repository}:{tag}"))


async def test_an_existing_tag_resolves_to_the_digest_that_was_pushed(
    registry: LiveRegistry, repository: str
) -> None:
    pushed = registry.publisher.image(repository, "1.0")
    async with ImageVerifier(registry.client()) as verifier:
        verified = await verifier.check(parse_image(f"{registry.host}/{repository}:1.0"))
    assert verified.digest == pushed["digest"]
    assert verified.media_type == OCI_MANIFEST
    assert verified.pinned == f"{registry.host}/{repository}:1.0@{pushed['digest']}"


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
async def test_manifests_of_both_formats_are_fetched_and_their_digest_checked(
    registry: LiveRegistry, repository: str, media_type: str
) -> None:
    pushed = registry.publisher.image(repository, "v1", media_type=media_type)
    async with registry.client() as client:
        fetched = await client.get_manifest(at(registry, repository, "v1"), "v1")
    assert (fetched.digest, fetched.media_type) == (pushed["digest"], media_type)
    assert fetched.manifest.config is not None


async def test_a_reference_by_digest_is_checked_to_exist(
    registry: LiveRegistry, repository: str
) -> None:
    pushed = registry.publisher.image(repository, "1.0")
    missing = "sha256:" + "0" * 64
    async with ImageVerifier(registry.client()) as verifier:
        by_digest = parse_image(f"{registry.host}/{repository}@{pushed['digest']}")
        verified = await verifier.check(by_digest, NO_PLATFORMS)
        assert verified.pinned == str(by_digest)  # already pinned: unchanged
        with pytest.raises(errors.ImageNotFound, match="has no manifest sha256:0000"):
            await verifier.check(parse_image(f"{registry.host}/{repository}@{missing}"))


async def test_a_missing_tag_is_not_found_naming_registry_and_repository(
    registry: LiveRegistry, repository: str
) -> None:
    registry.publisher.image(repository, "1.4.2")
    async with ImageVerifier(registry.client()) as verifier:
        with pytest.raises(errors.ImageNotFound) as caught:
            await verifier.check(parse_image(f"{registry.host}/{repository}:1.4.3"))
    assert caught.value.message == (
        f"image {registry.host}/{repository}:1.4.3 does not exist: in registry "
        f"{registry.host}, the repository {repository} has no tag 1.4.3"
    )
    assert (caught.value.registry, caught.value.repository) == (registry.host, repository)


async def test_a_repository_that_was_never_pushed_is_not_found(
    registry: LiveRegistry, repository: str
) -> None:
    # distribution 2.8 answers MANIFEST_UNKNOWN here, not NAME_UNKNOWN.
    async with registry.client() as client:
        with pytest.raises(errors.ImageNotFound, match=f"the repository {repository} has no tag"):
            await client.get_manifest(at(registry, repository, "v1"), "v1")


async def test_a_private_repository_needs_the_basic_credentials(
    basic_registry: LiveRegistry, repository: str
) -> None:
    pushed = basic_registry.publisher.image(repository, "1.0")
    image = parse_image(f"{basic_registry.host}/{repository}:1.0")
    async with ImageVerifier(basic_registry.client(basic_registry.credentials())) as verifier:
        assert (await verifier.check(image, NO_PLATFORMS)).digest == pushed["digest"]
    async with ImageVerifier(basic_registry.client()) as verifier:
        with pytest.raises(errors.AccessDenied, match="no credentials are configured"):
            await verifier.check(image, NO_PLATFORMS)
    wrong = basic_registry.credentials(password="wrong")
    async with ImageVerifier(basic_registry.client(wrong)) as verifier:
        with pytest.raises(errors.AccessDenied, match=r"credentials configured .* were refused"):
            await verifier.check(image, NO_PLATFORMS)


async def test_basic_credentials_are_sent_up_front_once_the_scheme_is_known(
    basic_registry: LiveRegistry, repository: str
) -> None:
    basic_registry.publisher.image(repository, "1.0")
    codes: Counter[str] = Counter()
    client = basic_registry.client(
        basic_registry.credentials(), observe=lambda m, w, code, s: codes.update([code])
    )
    async with client:
        for _ in range(3):
            await client.head_manifest(at(basic_registry, repository, "1.0"), "1.0")
    assert codes == {"401": 1, "200": 3}


async def test_tls_with_an_unknown_ca_is_refused_as_unavailable(
    basic_registry: LiveRegistry, repository: str
) -> None:
    client = RegistryClient(credentials=basic_registry.credentials)
    async with client:
        with pytest.raises(errors.ConnectionFailed, match=r"certificate .* is not trusted"):
            await client.head_manifest(at(basic_registry, repository, "1.0"), "1.0")


async def test_a_private_repository_works_with_bearer_tokens(
    token_registry: LiveRegistry, repository: str
) -> None:
    assert token_registry.tokens is not None
    pushed = token_registry.publisher.image(repository, "1.0")
    image = parse_image(f"{token_registry.host}/{repository}:1.0")
    asked = len(token_registry.tokens.requests)
    async with ImageVerifier(token_registry.client(token_registry.credentials())) as verifier:
        assert (await verifier.check(image, NO_PLATFORMS)).digest == pushed["digest"]
    assert token_registry.tokens.requests[asked:] == [(USER, f"repository:{repository}:pull")]
    async with ImageVerifier(token_registry.client()) as verifier:
        with pytest.raises(errors.AccessDenied, match="no credentials are configured"):
            await verifier.check(image, NO_PLATFORMS)


async def test_an_identity_token_is_traded_for_an_access_token(
    token_registry: LiveRegistry, repository: str
) -> None:
    pushed = token_registry.publisher.image(repository, "1.0")
    credentials = RegistryCredentials(
        {token_registry.host: Credential(identity_token=REFRESH_TOKEN)}
    )
    async with token_registry.client(credentials) as client:
        head = await client.head_manifest(at(token_registry, repository, "1.0"), "1.0")
    assert head.digest == pushed["digest"]


async def test_anonymous_tokens_open_public_repositories(token_registry: LiveRegistry) -> None:
    pushed = token_registry.publisher.image("public/app", "latest")
    async with token_registry.client() as client:
        head = await client.head_manifest(at(token_registry, "public/app", "latest"), "latest")
    assert head.digest == pushed["digest"]


async def test_a_token_is_reused_until_it_expires(
    token_registry: LiveRegistry, repository: str
) -> None:
    assert token_registry.tokens is not None
    token_registry.publisher.image(repository, "1.0")
    asked = len(token_registry.tokens.requests)
    async with token_registry.client(token_registry.credentials()) as client:
        for _ in range(3):
            await client.head_manifest(at(token_registry, repository, "1.0"), "1.0")
    assert len(token_registry.tokens.requests) == asked + 1


async def test_a_registry_that_is_down_is_unavailable() -> None:
    host = f"127.0.0.1:{free_port()}"
    hosts = RegistryHosts({host: HostSettings(plain_http=True)})
    async with ImageVerifier(RegistryClient(hosts=hosts, backoff=0.01)) as verifier:
        with pytest.raises(errors.RegistryUnavailable, match=f"cannot connect to registry {host}"):
            await verifier.check(parse_image(f"{host}/app:1.0"))


async def test_fifty_concurrent_checks_of_one_tag_send_one_request(
    registry: LiveRegistry, repository: str
) -> None:
    registry.publisher.image(repository, "1.0")
    sent: list[str] = []
    client = registry.client(observe=lambda method, what, code, seconds: sent.append(method))
    image = parse_image(f"{registry.host}/{repository}:1.0")
    async with ImageVerifier(client) as verifier:
        results = await asyncio.gather(*(verifier.check(image, NO_PLATFORMS) for _ in range(50)))
        assert len({r.digest for r in results}) == 1
        assert sent == ["HEAD"]
        await verifier.check(image, NO_PLATFORMS)  # within the TTL: still cached
        assert sent == ["HEAD"]


async def test_a_moved_tag_is_seen_once_the_cache_expires(
    registry: LiveRegistry, repository: str
) -> None:
    first = registry.publisher.image(repository, "stable")
    image = parse_image(f"{registry.host}/{repository}:stable")
    async with ImageVerifier(registry.client(), ttl=0.0) as verifier:
        assert (await verifier.check(image, NO_PLATFORMS)).digest == first["digest"]
        second = registry.publisher.image(repository, "stable")
        assert (await verifier.check(image, NO_PLATFORMS)).digest == second["digest"]


async def test_an_index_resolves_to_the_index_digest(
    registry: LiveRegistry, repository: str
) -> None:
    pushed = registry.publisher.index(repository, "multi", ["linux/amd64", "linux/arm64"])
    async with ImageVerifier(registry.client()) as verifier:
        verified = await verifier.check(parse_image(f"{registry.host}/{repository}:multi"))
    assert (verified.digest, verified.media_type) == (pushed["digest"], OCI_INDEX)


async def test_a_deadline_in_the_past_is_a_timeout(registry: LiveRegistry, repository: str) -> None:
    async with registry.client() as client:
        with pytest.raises(errors.Timeout):
            await client.head_manifest(
                at(registry, repository, "1.0"), "1.0", deadline=time.monotonic() - 1
            )


def test_the_test_ca_is_what_makes_tls_work(basic_registry: LiveRegistry) -> None:
    # Guards the TLS tests above: the registry really serves TLS.
    assert basic_registry.running.scheme == "https"
    assert basic_registry.running.ca_file is not None
    ssl.create_default_context(cafile=str(basic_registry.running.ca_file))
