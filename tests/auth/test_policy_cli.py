"""``kubeupdate policy check`` and ``kubeupdate policy explain``, as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kubeupdate.auth.policy import parse_policy
from kubeupdate.cli import main

DIGEST = "sha256:" + "c" * 64

POLICY = r"""
rules:
  - name: web from main
    subjects:
      - token: release-bot
      - github: {repository: acme/web, repository_id: 123456, ref: refs/heads/main}
    targets: [{namespace: prod, deployment: web}]
    access: [read, write]
    images:
      - repositories: [ghcr.io/acme/web, index.docker.io/nginx]
        tag: '^v\d+\.\d+\.\d+$'
  - name: dashboards
    subjects: [{cert: dashboard.acme.internal}]
    targets: [{namespace: "*"}]
    access: [read]
"""

CLAIMS = {"repository": "acme/web", "repository_id": "123456", "ref": "refs/heads/main"}


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


def test_check_prints_the_policy_normalised_as_a_file_that_loads(
    policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "check", str(policy_file)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"# {policy_file}: valid, 2 rules")
    printed = yaml.safe_load(out.out)
    (image_rule,) = printed["rules"][0]["images"]
    assert image_rule["repositories"] == ["ghcr.io/acme/web", "docker.io/library/nginx"]
    assert printed["rules"][0]["subjects"][1]["github"]["repository_id"] == "123456"
    assert printed["rules"][1]["targets"] == [
        {"namespace": "*", "deployment": "*", "container": "*"}
    ]
    assert parse_policy(printed).to_document() == printed
    assert out.err == ""


def test_check_shows_warnings_and_refuses_what_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.yaml"
    old.write_text(
        "rules:\n- subjects: [{token: a}]\n  targets: [{namespace: x}]\n  access: [write]\n"
        "  images: {registries: [ghcr.io], repositories: [acme/web]}\n"
    )
    assert main(["policy", "check", str(old)]) == 0
    assert "warning: rules[0].images uses the old form" in capsys.readouterr().err

    old.write_text(
        "rules:\n- subjects: [{token: a}]\n  targets: [{namespace: x}]\n  access: [write]\n"
        "  images: {registries: [ghcr.io, docker.io], repositories: [acme/web]}\n"
    )
    assert main(["policy", "check", str(old)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"kubeupdate policy check: {old}: rules[0].images: 'registries'")
    assert "- docker.io/acme/web" in err


def test_explain_names_the_rule_that_allows(
    policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "policy",
            "explain",
            "--policy",
            str(policy_file),
            "--token-claims",
            json.dumps(CLAIMS),
            "prod/web/app",
            "ghcr.io/acme/web:v1.2.3",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines() == [
        "github:acme/web@refs/heads/main asks to write prod/web/app with ghcr.io/acme/web:v1.2.3",
        "  web from main: allows it",
        "  dashboards: does not name this caller",
        "allowed by web from main",
    ]


@pytest.mark.parametrize(
    ("who", "target", "image", "verdict", "told"),
    [
        (
            ["--token-id", "release-bot"],
            "prod/web/app",
            f"ghcr.io/acme/web@{DIGEST}",
            "refuses: a digest without its tag is not allowed",
            "a digest without its tag is not allowed",
        ),
        (
            ["--token-id", "release-bot"],
            "prod/web/app",
            "docker.io/acme/web:v1.0.0",
            "refuses: repository not allowed",
            "repository not allowed",
        ),
        (
            ["--cert", "dashboard.acme.internal"],
            "prod/web/app",
            "ghcr.io/acme/web:v1.0.0",
            "does not name this caller",
            "write not allowed on this target",
        ),
        (
            ["--token-claims", "@{claims}"],
            "staging/web",
            None,
            "refuses: target not allowed",
            "target not allowed",
        ),
    ],
)
def test_explain_says_what_each_rule_holds_against_a_call(
    policy_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    who: list[str],
    target: str,
    image: str | None,
    verdict: str,
    told: str,
) -> None:
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps(CLAIMS))
    who = [w.replace("{claims}", str(claims)) for w in who]
    arguments = ["policy", "explain", "--policy", str(policy_file), *who, target]
    code = main([*arguments, image] if image else arguments)
    out = capsys.readouterr().out
    assert code == 1
    assert verdict in out
    assert out.splitlines()[-1].startswith(
        f"refused; the caller is told: Permission denied: {told}"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--token-id", "a", "prod"], "not NAMESPACE/DEPLOYMENT[/CONTAINER]"),
        (["--token-id", "a", "Prod/web"], 'namespace "Prod" is not a valid'),
        (["--token-id", "a", "prod/web/app", "Nginx:1"], "not a valid image reference"),
        (["--token-claims", "{", "prod/web"], "not JSON"),
        (["--token-claims", "{}", "prod/web"], "'repository'"),
    ],
)
def test_explain_refuses_a_question_it_cannot_answer(
    policy_file: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    assert main(["policy", "explain", "--policy", str(policy_file), *arguments]) == 2
    assert message in capsys.readouterr().err
