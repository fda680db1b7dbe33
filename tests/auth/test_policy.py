"""Policy decisions: subjects, targets, access, image rules, default deny."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kubeupdate.auth import policy as p
from kubeupdate.auth.policy import Policy, PolicyError, Request, parse_policy
from kubeupdate.caller import Caller
from kubeupdate.errors import InvalidArgument
from kubeupdate.images import parse_image

DIGEST = "sha256:" + "a" * 64

POLICY = parse_policy(
    yaml.safe_load(
        r"""
rules:
  - name: release-bot on web
    subjects: [{token: release-bot}]
    targets:
      - {namespace: default, deployment: web, container: app}
      - {namespace: "team-*", deployment: "api-?"}
    access: [read, write]
    images:
      registries: [ghcr.io, docker.io]
      repositories: [acme/app, acme/tools/, library/nginx]
      tag: '^v?\d+\.\d+(\.\d+)?$'
  - name: production from main
    subjects:
      - github:
          repository: acme/web
          repository_id: "123456"
          ref: refs/heads/main
          environment: production
          event_name: push
          job_workflow_ref: acme/web/.github/workflows/deploy.yml@refs/heads/main
    targets: [{namespace: prod, deployment: web}]
    access: [write]
    images:
      registries: [ghcr.io]
      repositories: [acme/web]
      digest: required
  - name: readers
    subjects: [{token: reader}, {cert: ops.acme.internal}]
    targets: [{namespace: "*"}]
    access: [read]
"""
    )
)

BOT = Caller("token:release-bot", "basic", {"token_id": "release-bot"})
READER = Caller("token:reader", "token", {"token_id": "reader"})
OPS = Caller("cert:x", "mtls", {"common_name": "x", "sans": "ops.acme.internal spiffe://a/b"})
GOOD_CLAIMS = {
    "repository": "acme/web",
    "repository_id": "123456",
    "ref": "refs/heads/main",
    "environment": "production",
    "event_name": "push",
    "job_workflow_ref": "acme/web/.github/workflows/deploy.yml@refs/heads/main",
    "run_id": "1",
}


def github(**changes: str) -> Caller:
    return Caller("github:acme/web", "oidc", {**GOOD_CLAIMS, **changes})


def write(ns: str, dep: str, container: str, image: str) -> Request:
    return Request("write", ns, dep, container, parse_image(image))


@pytest.mark.parametrize(
    ("caller", "request_", "reason"),
    [
        (BOT, write("default", "web", "app", "ghcr.io/acme/app:1.2.3"), "allowed"),
        (BOT, write("default", "web", "app", "acme/tools/cli:v2.0"), "allowed"),
        (BOT, write("default", "web", "app", "nginx:1.27"), "allowed"),  # normalised
        (BOT, write("default", "web", "app", "docker.io/library/nginx:1.27"), "allowed"),
        (BOT, write("team-a", "api-1", "any", "ghcr.io/acme/app:1.0"), "allowed"),
        (BOT, Request("read", "default", "web", "app"), "allowed"),
        (BOT, Request("read", "default", "web"), "allowed"),  # deployment-level read
        # targets
        (BOT, write("default", "web", "sidecar", "ghcr.io/acme/app:1.0"), p.TARGET_NOT_ALLOWED),
        (BOT, write("kube-system", "web", "app", "ghcr.io/acme/app:1.0"), p.TARGET_NOT_ALLOWED),
        (BOT, write("team-a", "api-10", "x", "ghcr.io/acme/app:1.0"), p.TARGET_NOT_ALLOWED),
        (BOT, write("team-", "api-1", "x", "ghcr.io/acme/app:1.0"), "allowed"),
        (BOT, Request("read", "default", "db"), p.TARGET_NOT_ALLOWED),
        (BOT, Request("read", "default.web", "app"), p.TARGET_NOT_ALLOWED),
        # images: prefix traps, registries, tags
        (
            BOT,
            write("default", "web", "app", "ghcr.io/acme/app-evil:1.0"),
            p.REPOSITORY_NOT_ALLOWED,
        ),
        (BOT, write("default", "web", "app", "ghcr.io/acme/tools:1.0"), p.REPOSITORY_NOT_ALLOWED),
        (
            BOT,
            write("default", "web", "app", "ghcr.io/acme/toolsx/a:1.0"),
            p.REPOSITORY_NOT_ALLOWED,
        ),
        (
            BOT,
            write("default", "web", "app", "ghcr.io.evil.com/acme/app:1.0"),
            p.REGISTRY_NOT_ALLOWED,
        ),
        (BOT, write("default", "web", "app", "quay.io/acme/app:1.0"), p.REGISTRY_NOT_ALLOWED),
        (BOT, write("default", "web", "app", "acme/app:1.0"), "allowed"),  # docker.io/acme/app
        (BOT, write("default", "web", "app", "evil/nginx:1.0"), p.REPOSITORY_NOT_ALLOWED),
        (BOT, write("default", "web", "app", "ghcr.io/acme/app"), p.TAG_REQUIRED),
        (BOT, write("default", "web", "app", "ghcr.io/acme/app:latest"), p.LATEST_NOT_ALLOWED),
        (BOT, write("default", "web", "app", "ghcr.io/acme/app:main"), p.TAG_NOT_ALLOWED),
        (BOT, write("default", "web", "app", "ghcr.io/acme/app:1.0-rc1"), p.TAG_NOT_ALLOWED),
        (BOT, write("default", "web", "app", f"ghcr.io/acme/app@{DIGEST}"), "allowed"),
        # readers
        (READER, Request("read", "kube-system", "coredns", "x"), "allowed"),
        (READER, write("default", "web", "app", "ghcr.io/acme/app:1.0"), p.ACCESS_NOT_ALLOWED),
        (OPS, Request("read", "prod", "web"), "allowed"),
        (
            Caller("cert:y", "mtls", {"common_name": "y", "sans": ""}),
            Request("read", "a"),
            p.TARGET_NOT_ALLOWED,
        ),
        # a token id spoofed through another method is not the token
        (
            Caller("x", "oidc", {"token_id": "release-bot"}),
            Request("read", "default", "web"),
            p.TARGET_NOT_ALLOWED,
        ),
        # OIDC claim binding
        (github(), write("prod", "web", "app", f"ghcr.io/acme/web:1.0@{DIGEST}"), "allowed"),
        (github(), write("prod", "web", "app", "ghcr.io/acme/web:1.0"), p.DIGEST_REQUIRED),
        (
            github(),
            write("prod", "web", "app", f"ghcr.io/acme/web:latest@{DIGEST}"),
            p.LATEST_NOT_ALLOWED,
        ),
        (github(), Request("read", "prod", "web"), p.ACCESS_NOT_ALLOWED),
        (
            github(repository_id="999"),
            write("prod", "web", "app", f"ghcr.io/acme/web@{DIGEST}"),
            p.TARGET_NOT_ALLOWED,
        ),
        (
            github(event_name="pull_request"),
            write("prod", "web", "a", f"ghcr.io/acme/web@{DIGEST}"),
            p.TARGET_NOT_ALLOWED,
        ),
        (
            github(environment="staging"),
            write("prod", "web", "a", f"ghcr.io/acme/web@{DIGEST}"),
            p.TARGET_NOT_ALLOWED,
        ),
        (
            github(job_workflow_ref="acme/web/.github/workflows/evil.yml@refs/heads/main"),
            write("prod", "web", "a", f"ghcr.io/acme/web@{DIGEST}"),
            p.TARGET_NOT_ALLOWED,
        ),
        (
            github(ref="refs/heads/main-evil"),
            write("prod", "web", "a", f"ghcr.io/acme/web@{DIGEST}"),
            p.TARGET_NOT_ALLOWED,
        ),
        (
            Caller(
                "github:x", "oidc", {k: v for k, v in GOOD_CLAIMS.items() if k != "environment"}
            ),
            write("prod", "web", "a", f"ghcr.io/acme/web@{DIGEST}"),
            p.TARGET_NOT_ALLOWED,
        ),
        # nobody
        (Caller("anonymous", "none"), Request("read", "default", "web"), p.TARGET_NOT_ALLOWED),
    ],
)
def test_decisions(caller: Caller, request_: Request, reason: str) -> None:
    decision = POLICY.decide(caller, request_)
    assert decision.reason == reason
    assert decision.allowed is (reason == "allowed")
    if decision.allowed:
        assert decision.rule


def test_an_empty_policy_denies_everything() -> None:
    for policy in (Policy(), parse_policy(None), parse_policy({"rules": []})):
        assert not policy.decide(BOT, Request("read", "default", "web")).allowed


def test_an_invalid_image_is_the_callers_mistake() -> None:
    with pytest.raises(InvalidArgument):
        POLICY.decide(BOT, write("default", "web", "app", "Nginx:latest"))


def test_registry_hosts_compare_case_insensitively() -> None:
    assert POLICY.decide(BOT, write("default", "web", "app", "GHCR.io/acme/app:1.0")).allowed


def rule(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "subjects": [{"token": "a"}],
        "targets": [{"namespace": "x"}],
        "access": ["read"],
    }
    base.update(changes)
    return {"rules": [{k: v for k, v in base.items() if v is not None}]}


WRITE = {"access": ["write"]}


@pytest.mark.parametrize(
    ("image", "allow_latest", "reason"),
    [
        # Without tag or digest an image pulls latest, so it counts as latest.
        ("ghcr.io/acme/app", False, p.TAG_REQUIRED),
        ("ghcr.io/acme/app:latest", False, p.LATEST_NOT_ALLOWED),
        ("ghcr.io/acme/app", True, "allowed"),
        ("ghcr.io/acme/app:latest", True, "allowed"),
        (f"ghcr.io/acme/app@{DIGEST}", False, "allowed"),
    ],
)
def test_an_image_without_a_tag_counts_as_latest(
    image: str, allow_latest: bool, reason: str
) -> None:
    images = {"registries": ["ghcr.io"], "allow_latest": allow_latest}
    policy = parse_policy(rule(**WRITE, subjects=[{"token": "a"}], images=images))
    caller = Caller("token:a", "token", {"token_id": "a"})
    assert policy.decide(caller, write("x", "web", "app", image)).reason == reason


def test_a_tag_pattern_sees_a_missing_tag_as_latest() -> None:
    images = {"registries": ["ghcr.io"], "allow_latest": True, "tag": r"^v\d+$"}
    policy = parse_policy(rule(**WRITE, images=images))
    caller = Caller("token:a", "token", {"token_id": "a"})
    assert policy.decide(caller, write("x", "web", "app", "ghcr.io/acme/app")).reason == (
        p.TAG_NOT_ALLOWED
    )
    assert policy.decide(caller, write("x", "web", "app", "ghcr.io/acme/app:v2")).allowed


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"rule": []}, "one key"),
        ({"rules": {}}, "list"),
        (rule(access=None), "access"),
        (rule(subjects=[]), "subjects"),
        (rule(targets=[{}]), "namespace"),
        (rule(targets=[{"namespace": "x", "pod": "y"}]), "unknown"),
        (rule(access=["admin"]), "access"),
        (rule(**WRITE), "images"),
        (rule(subjects=[{"github": {"repo": "a"}}]), "unknown"),
        (rule(subjects=[{"github": {"repository": "a/b"}}]), "repository_id"),
        (rule(subjects=[{"github": {}}]), "at least one"),
        (rule(subjects=[{"github": {"ref": True}}]), "string"),
        (rule(subjects=[{"token": "a", "cert": "b"}]), "exactly one"),
        (rule(subjects=[{"user": "a"}]), "token"),
        (rule(**WRITE, images={"registries": []}), "registries"),
        (rule(**WRITE, images={"registries": ["a"], "tag": "("}), "regular"),
        (rule(**WRITE, images={"registries": ["a"], "digest": "yes"}), "digest"),
        (rule(**WRITE, images={"registries": ["a"], "allow_latest": "no"}), "allow_latest"),
        (rule(**WRITE, images={"registries": ["a"], "tags": "x"}), "unknown"),
    ],
)
def test_broken_policies_are_refused(document: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(document)


def test_numeric_claims_in_the_file_compare_as_text() -> None:
    policy = parse_policy(
        {
            "rules": [
                {
                    "subjects": [{"github": {"repository_id": 123456, "repository": "acme/web"}}],
                    "targets": [{"namespace": "prod"}],
                    "access": ["read"],
                }
            ]
        }
    )
    assert policy.decide(github(), Request("read", "prod", "web")).allowed
