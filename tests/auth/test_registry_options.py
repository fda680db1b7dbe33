"""The registry options of image rules: validated at load, and the check an allowed write gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kubeupdate.auth.policy import Policy, PolicyError, Request, parse_policy
from kubeupdate.caller import Caller
from kubeupdate.image_checks import ImageCheck
from kubeupdate.images import parse_image
from kubeupdate.registry.platforms import Platform
from kubeupdate.registry.signatures import Identity
from tests.certificates import make_cert, pem

BOT = Caller("token:release-bot", "token", {"token_id": "release-bot"})
ISSUER = "https://token.actions.githubusercontent.com"
WORKFLOW = "https://github.com/acme/web/.github/workflows/release.yml@refs/heads/main"


def public_pem() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """A policy folder with keys/release.pub and keys/fulcio.pem."""
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "release.pub").write_bytes(public_pem())
    (tmp_path / "keys" / "fulcio.pem").write_bytes(pem(make_cert("test fulcio", [])).cert)
    return tmp_path


def policy_with(*image_rules: dict[str, Any], base: Path | None = None) -> Policy:
    rule = {
        "subjects": [{"token": "release-bot"}],
        "targets": [{"namespace": "prod"}],
        "access": ["write"],
        "images": list(image_rules),
    }
    return parse_policy({"rules": [rule]}, base=base)


def check_of(policy: Policy, image: str) -> ImageCheck | None:
    decision = policy.decide(BOT, Request("write", "prod", "web", "app", parse_image(image)))
    assert decision.allowed, decision.reason
    return decision.check


def test_a_rule_without_registry_options_asks_for_no_check() -> None:
    policy = policy_with({"repositories": ["ghcr.io/acme/web"]})
    assert check_of(policy, "ghcr.io/acme/web:1.0") is None


@pytest.mark.parametrize(
    ("options", "check"),
    [
        ({"registry": "check"}, ImageCheck()),
        ({"digest": "pin"}, ImageCheck(pin=True)),
        ({"registry": "check", "digest": "pin"}, ImageCheck(pin=True)),
        (
            {"platforms": ["linux/amd64", "linux/arm64"]},
            ImageCheck(platforms=(Platform.parse("linux/amd64"), Platform.parse("linux/arm64"))),
        ),
        ({"platforms": []}, ImageCheck(platforms=())),  # exists, any platform
    ],
)
def test_each_option_implies_a_check(options: dict[str, Any], check: ImageCheck) -> None:
    policy = policy_with({"repositories": ["ghcr.io/acme/web"], **options})
    assert check_of(policy, "ghcr.io/acme/web:1.0") == check


def test_a_signature_rule_reads_keys_and_the_ca_relative_to_the_policy(keys: Path) -> None:
    signature = {
        "keys": ["keys/release.pub"],
        "identities": [{"issuer": ISSUER, "subject": WORKFLOW}],
        "ca": "keys/fulcio.pem",
    }
    policy = policy_with({"repositories": ["ghcr.io/acme/web"], "signature": signature}, base=keys)
    check = check_of(policy, "ghcr.io/acme/web:1.0")
    assert check is not None
    assert check.signature is not None
    assert [k.name for k in check.signature.keys] == [str(keys / "keys" / "release.pub")]
    assert check.signature.identities == (Identity(ISSUER, WORKFLOW),)
    assert check.signature.authority is not None
    assert not check.pin
    assert not check.may_be_skipped


def test_a_key_may_be_written_inline() -> None:
    key = public_pem().decode()
    policy = policy_with({"repositories": ["ghcr.io/acme/web"], "signature": {"keys": [key]}})
    check = check_of(policy, "ghcr.io/acme/web:1.0")
    assert check is not None
    assert check.signature is not None
    assert check.signature.keys[0].name == "inline key rules[0].images[0].signature.keys[0]"


def test_the_first_image_rule_that_accepts_the_image_decides_its_check() -> None:
    policy = policy_with(
        {"repositories": ["ghcr.io/acme/web"], "tag": r"^v\d+$", "digest": "pin"},
        {"repositories": ["ghcr.io/acme/"], "registry": "check"},
        {"repositories": ["ghcr.io/acme/web"]},
    )
    assert check_of(policy, "ghcr.io/acme/web:v2") == ImageCheck(pin=True)
    # The first rule refuses the tag; the second accepts, and its check applies.
    assert check_of(policy, "ghcr.io/acme/web:main") == ImageCheck()


def test_reads_get_no_check() -> None:
    policy = parse_policy(
        {
            "rules": [
                {
                    "subjects": [{"token": "release-bot"}],
                    "targets": [{"namespace": "prod"}],
                    "access": ["read", "write"],
                    "images": {"repositories": ["ghcr.io/acme/web"], "digest": "pin"},
                }
            ]
        }
    )
    decision = policy.decide(BOT, Request("read", "prod", "web", "app"))
    assert decision.allowed
    assert decision.check is None


def test_policy_check_prints_the_options_as_read(keys: Path) -> None:
    image_rule = {
        "repositories": ["ghcr.io/acme/web"],
        "digest": "pin",
        "platforms": ["linux/x86_64"],
        "signature": {"keys": ["keys/release.pub"]},
    }
    document = policy_with(image_rule, base=keys).to_document()
    (printed,) = document["rules"][0]["images"]
    assert printed == {
        "repositories": ["ghcr.io/acme/web"],
        "digest": "pin",
        "allow_latest": False,
        "registry": "check",
        "platforms": ["linux/amd64"],
        "signature": {"keys": ["keys/release.pub"]},
    }
    # What it prints loads again to the same checks.
    again = parse_policy(yaml.safe_load(yaml.safe_dump(document)), base=keys)
    assert check_of(again, "ghcr.io/acme/web:1.0") == check_of(
        policy_with(image_rule, base=keys), "ghcr.io/acme/web:1.0"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"registry": "yes"}, r"rules\[0\]\.images\[0\]\.registry must be 'check'"),
        ({"registry": True}, "must be 'check'"),
        ({"digest": "pinned"}, "digest must be optional, required or pin"),
        ({"platforms": "linux/amd64"}, r"platforms must be a list such as \[linux/amd64"),
        ({"platforms": ["linux"]}, r"platforms\[0\]: 'linux' is not a platform"),
        ({"platforms": [1]}, r"platforms\[0\] must be a string"),
        ({"signature": "keys/release.pub"}, "signature must be a mapping"),
        ({"signature": {}}, "signature needs 'keys'"),
        ({"signature": {"key": ["a"]}}, "signature has unknown keys: key"),
        ({"signature": {"keys": "keys/release.pub"}}, r"signature\.keys must be a list"),
        (
            {"signature": {"keys": ["keys/missing.pub"]}},
            r"signature\.keys\[0\]: cannot read the signing key .*keys/missing.pub",
        ),
        (
            {"signature": {"keys": ["keys/fulcio.pem"]}},
            r"signature\.keys\[0\]: the signing key .* is not a PEM public key",
        ),
        (
            {"signature": {"identities": [{"issuer": ISSUER, "subject": WORKFLOW}]}},
            r"identities need 'ca'",
        ),
        ({"signature": {"keys": ["keys/release.pub"], "ca": "keys/fulcio.pem"}}, "only means"),
        (
            {"signature": {"identities": [{"issuer": ISSUER}], "ca": "keys/fulcio.pem"}},
            r"identities\[0\] must have exactly 'issuer'",
        ),
        (
            {"signature": {"identities": [{"issuer": ISSUER, "subject": ""}], "ca": "x"}},
            "non-empty strings",
        ),
        (
            {
                "signature": {
                    "identities": [{"issuer": ISSUER, "subject": WORKFLOW}],
                    "ca": "keys/release.pub",
                }
            },
            r"signature\.ca: the CA file .* holds no PEM certificate",
        ),
        (
            {
                "signature": {
                    "identities": [{"issuer": ISSUER, "subject": WORKFLOW}],
                    "ca": "keys/none.pem",
                }
            },
            r"signature\.ca: cannot read the CA file .*keys/none.pem",
        ),
    ],
)
def test_broken_registry_options_are_refused_with_where_and_why(
    keys: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(PolicyError, match=message):
        policy_with({"repositories": ["ghcr.io/acme/web"], **options}, base=keys)


@pytest.mark.parametrize("name", ["release.pub", "fulcio.pem"])
def test_a_key_or_ca_file_that_others_may_write_is_refused(keys: Path, name: str) -> None:
    # Whoever may change the key decides which images deploy: as for the policy itself.
    (keys / "keys" / name).chmod(0o664)
    signature = (
        {"keys": ["keys/release.pub"]}
        if name == "release.pub"
        else {"identities": [{"issuer": ISSUER, "subject": WORKFLOW}], "ca": "keys/fulcio.pem"}
    )

    with pytest.raises(PolicyError, match=rf"keys/{name} is writable by its group"):
        policy_with({"repositories": ["ghcr.io/acme/web"], "signature": signature}, base=keys)
