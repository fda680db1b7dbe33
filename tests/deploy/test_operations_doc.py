"""deploy/OPERATIONS.md stays in step with the code: every flag, every variable."""

from __future__ import annotations

import argparse
import re
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "deploy" / "OPERATIONS.md"
ENTRYPOINT = ROOT / "deploy" / "image" / "entrypoint"
HEALTHCHECK = ROOT / "deploy" / "image" / "healthcheck.py"


def serve_flags() -> set[str]:
    from kubeupdate.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    serve = commands.choices["serve"]
    return {
        option
        for action in serve._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def documented(section: str) -> set[str]:
    text = DOC.read_text().split(section, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return set(re.findall(r"`(--[a-z][a-z0-9-]*)`", text))


def test_every_serve_flag_is_documented_and_nothing_else() -> None:
    assert documented("## Configuration reference") == serve_flags()


def test_image_variables_are_documented_and_used() -> None:
    text = DOC.read_text().split("### Environment of the container image", 1)[1]
    variables = set(re.findall(r"^\| `(KUBEUPDATE_[A-Z_]+)`", text, re.MULTILINE))
    used = set(re.findall(r"KUBEUPDATE_[A-Z_]+", ENTRYPOINT.read_text())) | set(
        re.findall(r"KUBEUPDATE_[A-Z_]+", HEALTHCHECK.read_text())
    )
    assert variables == used


def policy_section() -> str:
    return DOC.read_text().split("\n## The policy file\n", 1)[1].split("\n## ", 1)[0]


def table_keys(subsection: str) -> set[str]:
    text = policy_section().split(f"\n### {subsection}\n", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)`", text, re.MULTILINE))


def test_every_policy_key_is_documented_and_nothing_else() -> None:
    from kubeupdate.auth import policy

    assert table_keys("Rules") == set(policy.RULE_KEYS)
    assert table_keys("Subjects") - set(policy.GITHUB_KEYS) == set(policy.SUBJECT_KINDS)
    assert table_keys("Subjects") - set(policy.SUBJECT_KINDS) == set(policy.GITHUB_KEYS)
    assert table_keys("Targets") == set(policy.TARGET_KEYS)
    assert table_keys("Image rules") == set(policy.IMAGE_RULE_KEYS)


def yaml_blocks(text: str) -> list[str]:
    blocks = re.findall(r"^( *)```yaml\n(.*?)^\1```", text, re.MULTILINE | re.DOTALL)
    return [textwrap.dedent(body) for _, body in blocks]


def test_the_policy_examples_load_without_warnings() -> None:
    from kubeupdate.auth.policy import parse_policy

    (example,) = yaml_blocks(policy_section())
    assert parse_policy(yaml.safe_load(example)).warnings == ()


def test_the_upgrade_note_quotes_what_kubeupdate_prints() -> None:
    from kubeupdate.auth.policy import PolicyError, parse_policy

    note = DOC.read_text().split("\n### Policy files written for 0.1.0\n", 1)[1]
    printed = [
        textwrap.dedent(body).rstrip("\n")
        for _, body in re.findall(r"^( *)```text\n(.*?)^\1```", note, re.MULTILINE | re.DOTALL)
    ]
    old_files = yaml_blocks(note)
    assert len(printed) == len(old_files) == 2
    for message, old in zip(printed, old_files, strict=True):
        with pytest.raises(PolicyError) as refused:
            parse_policy(yaml.safe_load(old))
        assert str(refused.value) == message


def test_the_registry_check_example_loads_with_its_keys(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from kubeupdate.auth.policy import Request, parse_policy
    from kubeupdate.caller import Caller
    from kubeupdate.image_checks import ImageCheck
    from kubeupdate.images import parse_image
    from tests.certificates import make_cert, pem

    section = DOC.read_text().split("\n## Registry checks\n", 1)[1].split("\n## ", 1)[0]
    (example,) = yaml_blocks(section)
    (tmp_path / "keys").mkdir()
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    (tmp_path / "keys" / "release.pub").write_bytes(
        key.public_bytes(serialization.Encoding.PEM, spki)
    )
    (tmp_path / "keys" / "fulcio-root.pem").write_bytes(pem(make_cert("fulcio", [])).cert)
    policy = parse_policy(yaml.safe_load(example), base=tmp_path)
    assert policy.warnings == ()
    bot = Caller("token:release-bot", "token", {"token_id": "release-bot"})

    def check_of(image: str) -> ImageCheck | None:
        decision = policy.decide(bot, Request("write", "prod", "web", "app", parse_image(image)))
        assert decision.allowed
        return decision.check

    release = check_of("ghcr.io/acme/web:v1.4.2")
    assert release is not None
    assert release.pin
    assert release.signature is not None
    assert check_of("busybox:1.36") == ImageCheck()
