"""ImageVerifier.check against a real registry: platforms and cosign-format signatures
(made here with our own keys and stand-in Fulcio)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kubeupdate.images import parse_image
from kubeupdate.registry import errors
from kubeupdate.registry.manifests import DOCKER_MANIFEST_LIST
from kubeupdate.registry.platforms import Platform
from kubeupdate.registry.signatures import (
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    CertificateAuthority,
    Identity,
    PublicKey,
    SignatureRule,
)
from kubeupdate.registry.verifier import ImageVerifier, Requirements
from tests.registry.fixtures import LiveRegistry
from tests.registry.fulcio import FulcioStandIn, identity_token


def platforms(*names: str) -> Requirements:
    return Requirements(platforms=tuple(Platform.parse(n) for n in names))


def public_key(private: ec.EllipticCurvePrivateKey, name: str) -> PublicKey:
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PublicKey.from_pem(pem, name)


@pytest.fixture(scope="module")
def release_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(
    "media_type", ["application/vnd.oci.image.index.v1+json", DOCKER_MANIFEST_LIST]
)
async def test_an_index_with_the_required_platforms_passes_and_lists_them(
    registry: LiveRegistry, repository: str, media_type: str
) -> None:
    registry.publisher.index(
        repository, "1.0", ["linux/amd64", "linux/arm64/v8"], media_type=media_type,
        attestation=True,
    )  # fmt: skip
    image = parse_image(f"{registry.host}/{repository}:1.0")
    async with ImageVerifier(registry.client()) as verifier:
        verified = await verifier.check(image, platforms("linux/amd64", "linux/arm64"))
    assert [str(p) for p in verified.platforms] == ["linux/amd64", "linux/arm64/v8"]


async def test_an_index_missing_a_required_platform_is_refused_with_what_it_has(
    registry: LiveRegistry, repository: str
) -> None:
    registry.publisher.index(repository, "1.0", ["linux/arm64", "linux/arm/v7"])
    image = parse_image(f"{registry.host}/{repository}:1.0")
    async with ImageVerifier(registry.client()) as verifier:
        with pytest.raises(errors.PlatformMissing) as caught:
            await verifier.check(image)  # the default requirement: linux/amd64
    assert caught.value.missing == ("linux/amd64",)
    assert caught.value.found == ("linux/arm/v7", "linux/arm64/v8")
    assert caught.value.message == (
        f"image {registry.host}/{repository}:1.0 has no image for linux/amd64; "
        "it has linux/arm/v7, linux/arm64/v8"
    )


async def test_a_single_platform_image_is_judged_by_its_config(
    registry: LiveRegistry, repository: str
) -> None:
    registry.publisher.image(repository, "arm", platform="linux/arm64")
    image = parse_image(f"{registry.host}/{repository}:arm")
    async with ImageVerifier(registry.client()) as verifier:
        verified = await verifier.check(image, platforms("linux/arm64"))
        assert [str(p) for p in verified.platforms] == ["linux/arm64/v8"]
        with pytest.raises(errors.PlatformMissing, match="has no image for linux/amd64"):
            await verifier.check(image)


async def test_a_signature_by_the_expected_key_passes(
    registry: LiveRegistry, repository: str, release_key: ec.EllipticCurvePrivateKey
) -> None:
    pushed = registry.publisher.image(repository, "1.0")
    registry.publisher.sign(repository, pushed["digest"], release_key)
    key = public_key(release_key, "release.pub")
    rule = Requirements(signature=SignatureRule(keys=(key,)))
    async with ImageVerifier(registry.client()) as verifier:
        verified = await verifier.check(parse_image(f"{registry.host}/{repository}:1.0"), rule)
    assert verified.signature is not None
    assert verified.signature.signer == f"key release.pub ({key.fingerprint})"
    assert verified.signature.format == "cosign"


async def test_an_unsigned_image_is_refused_naming_the_expected_key(
    registry: LiveRegistry, repository: str, release_key: ec.EllipticCurvePrivateKey
) -> None:
    pushed = registry.publisher.image(repository, "1.0")
    key = public_key(release_key, "release.pub")
    rule = Requirements(signature=SignatureRule(keys=(key,)))
    async with ImageVerifier(registry.client()) as verifier:
        with pytest.raises(errors.SignatureMissing) as caught:
            await verifier.check(parse_image(f"{registry.host}/{repository}:1.0"), rule)
    digest = pushed["digest"]
    assert caught.value.message == (
        f"image {registry.host}/{repository}@{digest} is not signed: no cosign signature "
        f"(tag {digest.replace(':', '-')}.sig) is attached; expected a signature by "
        f"key release.pub ({key.fingerprint})"
    )


async def test_a_signature_by_another_key_is_refused(
    registry: LiveRegistry,
    repository: str,
    release_key: ec.EllipticCurvePrivateKey,
    other_key: ec.EllipticCurvePrivateKey,
) -> None:
    pushed = registry.publisher.image(repository, "1.0")
    registry.publisher.sign(repository, pushed["digest"], other_key)
    rule = Requirements(signature=SignatureRule(keys=(public_key(release_key, "release.pub"),)))
    async with ImageVerifier(registry.client()) as verifier:
        with pytest.raises(errors.SignatureInvalid) as caught:
            await verifier.check(parse_image(f"{registry.host}/{repository}:1.0"), rule)
    assert caught.value.found == ("a cosign signature by another key",)
    assert "has no signature by key release.pub" in caught.value.message


async def test_one_good_signature_among_several_is_enough(
    registry: LiveRegistry,
    repository: str,
    release_key: ec.EllipticCurvePrivateKey,
    other_key: ec.EllipticCurvePrivateKey,
) -> None:
    pushed = registry.publisher.image(repository, "1.0")
    registry.publisher.sign(repository, pushed["digest"], other_key)
    registry.publisher.sign(repository, pushed["digest"], release_key)
    rule = Requirements(signature=SignatureRule(keys=(public_key(release_key, "release.pub"),)))
    async with ImageVerifier(registry.client()) as verifier:
        verified = await verifier.check(parse_image(f"{registry.host}/{repository}:1.0"), rule)
    assert verified.signature is not None


async def test_a_signature_copied_from_another_image_does_not_count(
    registry: LiveRegistry, repository: str, release_key: ec.EllipticCurvePrivateKey
) -> None:
    # A genuine signature of image A, placed under image B's signature tag.
    signed = registry.publisher.image(repository, "a")
    target = registry.publisher.image(repository, "b")
    registry.publisher.sign(
        repository, target["digest"], release_key, signed_digest=signed["digest"]
    )
    rule = Requirements(signature=SignatureRule(keys=(public_key(release_key, "release.pub"),)))
    async with ImageVerifier(registry.client()) as verifier:
        with pytest.raises(errors.SignatureInvalid) as caught:
            await verifier.check(parse_image(f"{registry.host}/{repository}:b"), rule)
    key = public_key(release_key, "release.pub")
    assert caught.value.found == (
        f"a cosign signature by key release.pub ({key.fingerprint}) that does not count: "
        f"it signs another image digest ({signed['digest']})",
    )


async def test_signatures_work_behind_bearer_auth(
    token_registry: LiveRegistry, repository: str, release_key: ec.EllipticCurvePrivateKey
) -> None:
    pushed = token_registry.publisher.image(repository, "1.0")
    token_registry.publisher.sign(repository, pushed["digest"], release_key)
    rule = Requirements(signature=SignatureRule(keys=(public_key(release_key, "release.pub"),)))
    client = token_registry.client(token_registry.credentials())
    async with ImageVerifier(client) as verifier:
        verified = await verifier.check(
            parse_image(f"{token_registry.host}/{repository}:1.0"), rule
        )
    assert verified.signature is not None


async def test_a_keyless_cosign_signature_is_judged_by_its_certificate(
    registry: LiveRegistry, repository: str
) -> None:
    # cosign's older keyless format: the signature tag, plus the Fulcio certificate
    # and chain as layer annotations. Made here with our own stand-in Fulcio.
    fulcio = FulcioStandIn()
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    subject, issuer = "release@acme.example", "https://accounts.acme.example"
    public_pem = ephemeral.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    proof = ephemeral.sign(subject.encode(), ec.ECDSA(hashes.SHA256()))
    leaf, root = fulcio.issue(identity_token(issuer, subject), public_pem.decode(), proof)
    pushed = registry.publisher.image(repository, "1.0")
    registry.publisher.sign(
        repository,
        pushed["digest"],
        ephemeral,
        annotations={CERTIFICATE_ANNOTATION: leaf, CHAIN_ANNOTATION: root},
    )
    authority = CertificateAuthority.from_pem(fulcio.root_pem, "stand-in fulcio")
    image = parse_image(f"{registry.host}/{repository}:1.0")

    def wanting(*identities: Identity) -> Requirements:
        return Requirements(signature=SignatureRule(identities=identities, authority=authority))

    async with ImageVerifier(registry.client()) as verifier:
        verified = await verifier.check(image, wanting(Identity(issuer, subject)))
        assert verified.signature is not None
        assert verified.signature.signer == f"identity {subject} (issuer {issuer})"
        with pytest.raises(errors.SignatureInvalid) as caught:
            await verifier.check(image, wanting(Identity("https://other.example", subject)))
    assert caught.value.found == (f"a cosign signature by {subject} (issuer {issuer})",)
