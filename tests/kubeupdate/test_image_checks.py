"""ImageChecks in one layer: what a check asks, what it writes, when it may be skipped.

The verifier is a stand-in that answers or fails as told; the real one, against a
real registry, is in tests/registry and tests/contract/test_registry_checks.py.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kubeupdate import errors
from kubeupdate.image_checks import CheckedImage, ImageCheck, ImageChecks
from kubeupdate.images import ImageReference, parse_image
from kubeupdate.registry import errors as registry_errors
from kubeupdate.registry.endpoints import ImageLocation
from kubeupdate.registry.platforms import Platform
from kubeupdate.registry.signatures import PublicKey, SignatureRule, SignatureVerdict
from kubeupdate.registry.verifier import ImageVerifier, Requirements, VerifiedImage

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
AMD64 = Platform.parse("linux/amd64")


class Verifier:
    """Answers every check with ``DIGEST``, or raises ``error``; records the requirements."""

    def __init__(self, error: registry_errors.RegistryError | None = None) -> None:
        self.error = error
        self.asked: list[Requirements] = []

    async def check(
        self,
        image: ImageReference,
        requirements: Requirements | None = None,
        *,
        deadline: float | None = None,
    ) -> VerifiedImage:
        assert requirements is not None
        self.asked.append(requirements)
        if self.error is not None:
            raise self.error
        signer = SignatureVerdict("key release.pub", "cosign") if requirements.signature else None
        location = ImageLocation.of(image)
        return VerifiedImage(
            image, location, DIGEST, "application/vnd.oci.image.manifest.v1+json",
            requirements.platforms, signer,
        )  # fmt: skip

    async def close(self) -> None:
        pass


def checks(verifier: Verifier, **options: Any) -> ImageChecks:
    return ImageChecks(cast(ImageVerifier, verifier), **options)


def signature_rule() -> SignatureRule:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SignatureRule(keys=(PublicKey.from_pem(pem, "release.pub"),))


@pytest.mark.parametrize(
    ("running", "same"),
    [
        (f"ghcr.io/acme/web:1.0@{DIGEST}", True),
        (f"ghcr.io/acme/web@{DIGEST}", True),
        (f"ghcr.io/acme/web:0.9@{DIGEST}", True),  # retagged: the same content runs
        (f"GHCR.io/acme/web:1.0@{DIGEST}", True),  # host names are case-insensitive
        (f"ghcr.io/acme/web:1.0@{OTHER}", False),
        ("ghcr.io/acme/web:1.0", False),  # no digest: what runs is not known
        (f"ghcr.io/acme/api:1.0@{DIGEST}", False),  # another repository
        (f"docker.io/acme/web:1.0@{DIGEST}", False),  # another registry
        ("not an image", False),
    ],
)
def test_an_image_runs_when_the_same_repository_runs_its_digest(running: str, same: bool) -> None:
    checked = CheckedImage(parse_image("ghcr.io/acme/web:1.0"), DIGEST)
    assert checked.runs_in(running) is same


def test_a_skipped_check_knows_nothing_that_runs() -> None:
    checked = CheckedImage(parse_image("ghcr.io/acme/web:1.0"), skipped="down")
    assert not checked.runs_in(f"ghcr.io/acme/web:1.0@{DIGEST}")


@pytest.mark.parametrize(
    ("always", "asked", "wanted"),
    [
        (False, None, None),
        (True, None, ImageCheck()),
        (False, ImageCheck(pin=True), ImageCheck(pin=True)),
        (True, ImageCheck(pin=True), ImageCheck(pin=True)),  # the rule's, not the default
    ],
)
def test_the_rule_decides_and_always_adds_a_check_where_it_asks_none(
    always: bool, asked: ImageCheck | None, wanted: ImageCheck | None
) -> None:
    assert checks(Verifier(), always=always).wanted(asked) == wanted


async def test_pin_adds_the_digest_and_keeps_the_tag() -> None:
    checked = await checks(Verifier()).check(
        parse_image("ghcr.io/acme/web:1.0"), ImageCheck(pin=True)
    )
    assert str(checked.image) == f"ghcr.io/acme/web:1.0@{DIGEST}"
    assert checked.digest == DIGEST


async def test_without_pin_the_image_is_written_as_asked() -> None:
    checked = await checks(Verifier()).check(parse_image("ghcr.io/acme/web:1.0"), ImageCheck())
    assert str(checked.image) == "ghcr.io/acme/web:1.0"
    assert checked.digest == DIGEST
    assert checked.platforms == ("linux/amd64",)


async def test_the_servers_platforms_apply_unless_the_rule_names_its_own() -> None:
    verifier = Verifier()
    arm = (Platform.parse("linux/arm64"),)
    image = parse_image("ghcr.io/acme/web:1.0")
    await checks(verifier, platforms=arm).check(image, ImageCheck())
    await checks(verifier, platforms=arm).check(image, ImageCheck(platforms=(AMD64,)))
    await checks(verifier, platforms=arm).check(image, ImageCheck(platforms=()))
    assert [r.platforms for r in verifier.asked] == [arm, (AMD64,), ()]


@pytest.mark.parametrize(
    ("failure", "error", "reason"),
    [
        (
            registry_errors.ImageNotFound("no tag", registry="r", repository="a", reference="1"),
            errors.NotFound,
            "IMAGE_NOT_FOUND",
        ),
        (
            registry_errors.PlatformMissing("no arm64", missing=["linux/arm64"], found=[]),
            errors.ImageRefused,
            "IMAGE_PLATFORM_MISSING",
        ),
        (
            registry_errors.SignatureMissing("unsigned"),
            errors.ImageRefused,
            "IMAGE_SIGNATURE_MISSING",
        ),
        (registry_errors.SignatureInvalid("other"), errors.ImageRefused, "IMAGE_SIGNATURE_INVALID"),
        (registry_errors.AccessDenied("refused"), errors.Unavailable, "REGISTRY_ACCESS_DENIED"),
        (registry_errors.ConnectionFailed("down"), errors.Unavailable, "REGISTRY_UNAVAILABLE"),
        (registry_errors.ServerError("503"), errors.Unavailable, "REGISTRY_UNAVAILABLE"),
        (registry_errors.ProtocolError("bad json"), errors.Unavailable, "REGISTRY_PROTOCOL_ERROR"),
    ],
)
async def test_registry_errors_become_domain_errors_with_their_reasons(
    failure: registry_errors.RegistryError, error: type[errors.KubeupdateError], reason: str
) -> None:
    with pytest.raises(error) as raised:
        await checks(Verifier(failure)).check(parse_image("r.example/a:1"), ImageCheck())
    assert raised.value.message == failure.message
    assert raised.value.reason_name == reason
    assert raised.value.metadata["registry"] == "r.example"
    assert raised.value.metadata["repository"] == "a"


async def test_what_is_missing_and_found_is_told_to_programs_too() -> None:
    failure = registry_errors.PlatformMissing(
        "no arm64", missing=["linux/arm64"], found=["linux/amd64", "linux/s390x"]
    )
    with pytest.raises(errors.ImageRefused) as raised:
        await checks(Verifier(failure)).check(parse_image("r.example/a:1"), ImageCheck())
    assert raised.value.metadata == {
        "registry": "r.example",
        "repository": "a",
        "missing": "linux/arm64",
        "found": "linux/amd64,linux/s390x",
    }


async def test_a_registry_that_asks_to_wait_says_when() -> None:
    failure = registry_errors.TooManyRequests("slow down", retry_after=7)
    with pytest.raises(errors.Unavailable) as raised:
        await checks(Verifier(failure)).check(parse_image("r/a:1"), ImageCheck())
    assert raised.value.retry_after == 7
    assert raised.value.reason_name == "REGISTRY_UNAVAILABLE"


async def test_the_callers_deadline_passing_is_deadline_exceeded() -> None:
    failure = registry_errors.Timeout("no time left to ask registry r")
    with pytest.raises(errors.DeadlineExceeded) as raised:
        await checks(Verifier(failure), unreachable="allow").check(
            parse_image("r/a:1"), ImageCheck(), deadline=0.0
        )
    assert raised.value.reason_name == "CALL_DEADLINE_EXCEEDED"


async def test_allow_skips_a_check_of_existence_when_the_registry_is_down() -> None:
    down = registry_errors.ConnectionFailed("cannot connect to registry r")
    checked = await checks(Verifier(down), unreachable="allow").check(
        parse_image("r/a:1"), ImageCheck(platforms=(AMD64,))
    )
    assert checked.skipped == "the registry could not be reached: cannot connect to registry r"
    assert checked.digest is None
    assert str(checked.image) == "r/a:1"


@pytest.mark.parametrize("failure", [registry_errors.AccessDenied("refused"),
                                     registry_errors.ProtocolError("bad json")])  # fmt: skip
async def test_allow_skips_nothing_but_an_unreachable_registry(
    failure: registry_errors.RegistryError,
) -> None:
    with pytest.raises(errors.Unavailable):
        await checks(Verifier(failure), unreachable="allow").check(
            parse_image("r/a:1"), ImageCheck()
        )


async def test_allow_never_skips_a_pin_or_a_signature() -> None:
    down = registry_errors.ConnectionFailed("cannot connect to registry r")
    for check in (ImageCheck(pin=True), ImageCheck(signature=signature_rule())):
        with pytest.raises(errors.Unavailable, match="cannot connect"):
            await checks(Verifier(down), unreachable="allow").check(parse_image("r/a:1"), check)
