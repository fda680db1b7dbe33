"""Keyless signatures made by the real signing tool (sigstore-js), verified by ImageVerifier.

sigstore-js signs with a certificate from a test Fulcio (:mod:`tests.registry.fulcio`)
and attaches the bundle to the image in a real registry; kubeupdate finds it
through the referrers tag and checks chain, signature, digest and identity.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeupdate.images import parse_image
from kubeupdate.registry import errors
from kubeupdate.registry.signatures import CertificateAuthority, Identity, SignatureRule
from kubeupdate.registry.verifier import ImageVerifier, Requirements
from tests.registry import sigstore_js
from tests.registry.fixtures import PASSWORD, USER, LiveRegistry
from tests.registry.fulcio import FulcioStandIn, identity_token, running_fulcio

ISSUER = "https://token.actions.example"
WORKFLOW = "https://github.example/acme/web/.github/workflows/release.yml@refs/heads/main"


@pytest.fixture(scope="module")
def fulcio() -> Iterator[FulcioStandIn]:
    sigstore_js.sigstore_command()  # skip early when the tool is missing
    with running_fulcio(FulcioStandIn()) as running:
        yield running


def rule(fulcio: FulcioStandIn, *identities: Identity) -> Requirements:
    authority = CertificateAuthority.from_pem(fulcio.root_pem, "test fulcio")
    return Requirements(signature=SignatureRule(identities=identities, authority=authority))


def sign_and_attach(
    registry: LiveRegistry,
    repository: str,
    digest: str,
    fulcio: FulcioStandIn,
    subject: str,
    folder: Path,
) -> None:
    bundle = sigstore_js.attest(
        folder, f"{registry.host}/{repository}", digest,
        fulcio_url=fulcio.url, token=identity_token(ISSUER, subject),
    )  # fmt: skip
    sigstore_js.attach(bundle, f"{registry.host}/{repository}@{digest}", USER, PASSWORD)


async def test_a_bundle_by_the_expected_identity_passes(
    token_registry: LiveRegistry, repository: str, fulcio: FulcioStandIn, tmp_path: Path
) -> None:
    pushed = token_registry.publisher.image(repository, "1.0")
    sign_and_attach(token_registry, repository, pushed["digest"], fulcio, WORKFLOW, tmp_path)
    image = parse_image(f"{token_registry.host}/{repository}:1.0")
    async with ImageVerifier(token_registry.client(token_registry.credentials())) as verifier:
        verified = await verifier.check(image, rule(fulcio, Identity(ISSUER, WORKFLOW)))
    assert verified.signature is not None
    assert verified.signature.format == "sigstore-bundle"
    assert verified.signature.signer == f"identity {WORKFLOW} (issuer {ISSUER})"


async def test_a_bundle_by_another_identity_is_refused_naming_both(
    token_registry: LiveRegistry, repository: str, fulcio: FulcioStandIn, tmp_path: Path
) -> None:
    pushed = token_registry.publisher.image(repository, "1.0")
    sign_and_attach(
        token_registry, repository, pushed["digest"], fulcio, "mallory@example.com", tmp_path
    )
    image = parse_image(f"{token_registry.host}/{repository}:1.0")
    async with ImageVerifier(token_registry.client(token_registry.credentials())) as verifier:
        with pytest.raises(errors.SignatureInvalid) as caught:
            await verifier.check(image, rule(fulcio, Identity(ISSUER, WORKFLOW)))
    assert caught.value.found == (
        f"a sigstore-bundle signature by mallory@example.com (issuer {ISSUER})",
    )
    assert f"has no signature by identity {WORKFLOW} (issuer {ISSUER})" in caught.value.message


async def test_a_bundle_from_an_untrusted_ca_is_refused(
    token_registry: LiveRegistry, repository: str, fulcio: FulcioStandIn, tmp_path: Path
) -> None:
    pushed = token_registry.publisher.image(repository, "1.0")
    with running_fulcio(FulcioStandIn("rogue fulcio")) as rogue:
        sign_and_attach(token_registry, repository, pushed["digest"], rogue, WORKFLOW, tmp_path)
    image = parse_image(f"{token_registry.host}/{repository}:1.0")
    async with ImageVerifier(token_registry.client(token_registry.credentials())) as verifier:
        with pytest.raises(errors.SignatureInvalid) as caught:
            await verifier.check(image, rule(fulcio, Identity(ISSUER, WORKFLOW)))
    [found] = caught.value.found
    assert found.startswith(
        f"a keyless sigstore-bundle signature claiming {WORKFLOW} (issuer {ISSUER}), "
        "but its certificate does not chain to the configured CA"
    )


async def test_a_bundle_about_another_image_does_not_count(
    token_registry: LiveRegistry, repository: str, fulcio: FulcioStandIn, tmp_path: Path
) -> None:
    other = token_registry.publisher.image(repository, "other")
    pushed = token_registry.publisher.image(repository, "1.0")
    bundle = sigstore_js.attest(
        tmp_path, f"{token_registry.host}/{repository}", other["digest"],
        fulcio_url=fulcio.url, token=identity_token(ISSUER, WORKFLOW),
    )  # fmt: skip
    image_ref = f"{token_registry.host}/{repository}@{pushed['digest']}"
    sigstore_js.attach(bundle, image_ref, USER, PASSWORD)
    image = parse_image(f"{token_registry.host}/{repository}:1.0")
    async with ImageVerifier(token_registry.client(token_registry.credentials())) as verifier:
        with pytest.raises(errors.SignatureInvalid) as caught:
            await verifier.check(image, rule(fulcio, Identity(ISSUER, WORKFLOW)))
    assert caught.value.found == (
        f"a sigstore bundle by identity {WORKFLOW} (issuer {ISSUER}) that does not count: "
        "its in-toto statement is about another image digest",
    )


async def test_an_image_without_bundle_or_signature_is_missing_its_signature(
    token_registry: LiveRegistry, repository: str, fulcio: FulcioStandIn
) -> None:
    token_registry.publisher.image(repository, "1.0")
    image = parse_image(f"{token_registry.host}/{repository}:1.0")
    async with ImageVerifier(token_registry.client(token_registry.credentials())) as verifier:
        with pytest.raises(errors.SignatureMissing, match="nor sigstore bundle is attached"):
            await verifier.check(image, rule(fulcio, Identity(ISSUER, WORKFLOW)))
