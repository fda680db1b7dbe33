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
      repositories:
        - ghcr.io/acme/app
        - docker.io/acme/app
        - ghcr.io/acme/tools/
        - docker.io/acme/tools/
        - docker.io/library/nginx
      tag: '^v?\d+\.\d+(\.\d+)?$'
      allow_digest_only: true
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
      - repositories: [ghcr.io/acme/web]
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
            p.NO_RULE_FOR_CALLER,
        ),
        # a token id spoofed through another method is not the token
        (
            Caller("x", "oidc", {"token_id": "release-bot"}),
            Request("read", "default", "web"),
            p.NO_RULE_FOR_CALLER,
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
            p.NO_RULE_FOR_CALLER,
        ),
        (
            github(event_name="pull_request"),
            write("prod", "web", "a", f"ghcr.io/acme/web@{DIGEST}"),
            p.NO_RULE_FOR_CALLER,
        ),
        (
            github(environment="staging"),
            write("prod", "web", "a", f"ghcr.io/acme/web@{DIGEST}"),
            p.NO_RULE_FOR_CALLER,
        ),
        (
            github(job_workflow_ref="acme/web/.github/workflows/evil.yml@refs/heads/main"),
            write("prod", "web", "a", f"ghcr.io/acme/web@{DIGEST}"),
            p.NO_RULE_FOR_CALLER,
        ),
        (
            github(ref="refs/heads/main-evil"),
            write("prod", "web", "a", f"ghcr.io/acme/web@{DIGEST}"),
            p.NO_RULE_FOR_CALLER,
        ),
        (
            Caller(
                "github:x", "oidc", {k: v for k, v in GOOD_CLAIMS.items() if k != "environment"}
            ),
            write("prod", "web", "a", f"ghcr.io/acme/web@{DIGEST}"),
            p.NO_RULE_FOR_CALLER,
        ),
        # nobody
        (Caller("anonymous", "none"), Request("read", "default", "web"), p.NO_RULE_FOR_CALLER),
    ],
)
def test_decisions(caller: Caller, request_: Request, reason: str) -> None:
    decision = POLICY.decide(caller, request_)
    assert decision.reason == reason
    assert decision.allowed is (reason == "allowed")
    if decision.allowed:
        assert decision.rule
    else:
        assert reason in p.DENIAL_REASONS  # every refusal has its ErrorInfo reason


def test_an_empty_policy_denies_everything() -> None:
    for policy in (Policy(), parse_policy(None), parse_policy({"rules": []})):
        assert not policy.decide(BOT, Request("read", "default", "web")).allowed


def test_an_invalid_image_is_the_callers_mistake() -> None:
    with pytest.raises(InvalidArgument):
        POLICY.decide(BOT, write("default", "web", "app", "Nginx:latest"))


def test_registry_hosts_compare_case_insensitively() -> None:
    assert POLICY.decide(BOT, write("default", "web", "app", "GHCR.io/acme/app:1.0")).allowed


def test_a_digest_alone_passes_a_tag_rule_only_when_the_rule_says_so() -> None:
    images = {"repositories": ["ghcr.io/acme/web"], "tag": r"^v\d+\.\d+\.\d+$"}
    strict = parse_policy(rule(**WRITE, images=images))
    lenient = parse_policy(rule(**WRITE, images={**images, "allow_digest_only": True}))
    caller = Caller("token:a", "token", {"token_id": "a"})
    digest_only = write("x", "web", "app", f"ghcr.io/acme/web@{DIGEST}")
    tagged = write("x", "web", "app", f"ghcr.io/acme/web:v1.2.3@{DIGEST}")
    assert strict.decide(caller, digest_only).reason == p.DIGEST_ONLY_NOT_ALLOWED
    assert strict.decide(caller, tagged).allowed
    assert lenient.decide(caller, digest_only).allowed
    # Without a tag pattern there is nothing a digest could slip past.
    untagged_rule = parse_policy(rule(**WRITE, images={"repositories": ["ghcr.io/acme/web"]}))
    assert untagged_rule.decide(caller, digest_only).allowed


PAIRS = parse_policy(
    {
        "rules": [
            {
                "subjects": [{"token": "a"}],
                "targets": [{"namespace": "x"}],
                "access": ["write"],
                "images": {
                    "repositories": [
                        "ghcr.io/acme/web",
                        "docker.io/library/nginx",
                        "quay.io/acme/",
                        "index.docker.io/acme/tools",
                    ]
                },
            }
        ]
    }
)


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("ghcr.io/acme/web:1", p.ALLOWED),
        ("nginx:1.27", p.ALLOWED),
        ("docker.io/library/nginx:1.27", p.ALLOWED),
        ("index.docker.io/nginx:1.27", p.ALLOWED),
        ("registry-1.docker.io/library/nginx:1.27", p.ALLOWED),
        ("quay.io/acme/api:1", p.ALLOWED),
        ("quay.io/acme/team/api:1", p.ALLOWED),
        ("acme/tools:2", p.ALLOWED),  # Docker Hub, written the short way
        # Only the pairs: never another account's repository of the same name.
        ("docker.io/acme/web:1", p.REPOSITORY_NOT_ALLOWED),
        ("acme/web:1", p.REPOSITORY_NOT_ALLOWED),
        ("ghcr.io/library/nginx:1.27", p.REPOSITORY_NOT_ALLOWED),
        ("ghcr.io/acme/tools:2", p.REPOSITORY_NOT_ALLOWED),
        ("quay.io/acme:1", p.REPOSITORY_NOT_ALLOWED),
        ("quay.io/acmeevil/api:1", p.REPOSITORY_NOT_ALLOWED),
        ("gcr.io/acme/web:1", p.REGISTRY_NOT_ALLOWED),
        ("ghcr.io.evil.com/acme/web:1", p.REGISTRY_NOT_ALLOWED),
    ],
)
def test_image_rules_name_whole_repositories(image: str, reason: str) -> None:
    caller = Caller("token:a", "token", {"token_id": "a"})
    assert PAIRS.decide(caller, write("x", "web", "app", image)).reason == reason


def test_repositories_are_shown_normalised() -> None:
    (image_rule,) = PAIRS.rules[0].images.rules
    assert [r.text for r in image_rule.repositories] == [
        "ghcr.io/acme/web",
        "docker.io/library/nginx",
        "quay.io/acme/",
        "docker.io/acme/tools",
    ]


def test_each_image_rule_has_its_own_constraints() -> None:
    policy = parse_policy(
        rule(
            **WRITE,
            images=[
                {"repositories": ["ghcr.io/acme/web"], "tag": r"^v\d+$"},
                {"repositories": ["ghcr.io/acme/tools/"], "digest": "required"},
            ],
        )
    )
    caller = Caller("token:a", "token", {"token_id": "a"})
    assert policy.decide(caller, write("x", "d", "c", "ghcr.io/acme/web:v1")).allowed
    assert policy.decide(caller, write("x", "d", "c", "ghcr.io/acme/tools/a:v1")).reason == (
        p.DIGEST_REQUIRED
    )
    assert policy.decide(caller, write("x", "d", "c", f"ghcr.io/acme/tools/a@{DIGEST}")).allowed


def test_the_old_form_loads_only_where_it_cannot_be_misread() -> None:
    one_registry = parse_policy(
        rule(**WRITE, images={"registries": ["ghcr.io"], "repositories": ["acme/web", "acme/x/"]})
    )
    (image_rule,) = one_registry.rules[0].images.rules
    assert [r.text for r in image_rule.repositories] == ["ghcr.io/acme/web", "ghcr.io/acme/x/"]
    (warning,) = one_registry.warnings
    assert "old form" in warning
    assert "- ghcr.io/acme/web" in warning
    whole = parse_policy(rule(**WRITE, images={"registries": ["ghcr.io", "quay.io"]}))
    assert [r.text for r in whole.rules[0].images.rules[0].repositories] == [
        "ghcr.io/",
        "quay.io/",
    ]


def test_the_old_cross_product_is_refused_with_the_new_form_in_the_message() -> None:
    images = {"registries": ["ghcr.io", "docker.io"], "repositories": ["acme/web", "library/nginx"]}
    with pytest.raises(PolicyError) as refused:
        parse_policy(rule(**WRITE, images=images))
    message = str(refused.value)
    assert message.startswith("rules[0].images: 'registries' and 'repositories' as two lists")
    for pair in (
        "ghcr.io/acme/web",
        "ghcr.io/library/nginx",
        "docker.io/acme/web",
        "docker.io/library/nginx",
    ):
        assert f"          - {pair}" in message.splitlines()
    # What the message shows is a policy that loads.
    shown = yaml.safe_load(message.split("keeping only the pairs you mean:\n", 1)[1])
    assert parse_policy(rule(**WRITE, images=shown["images"])).warnings == ()


@pytest.mark.parametrize(
    "claims",
    [
        {"environment": "production"},
        {"job_workflow_ref": "acme/deploy/.github/workflows/d.yml@refs/heads/main"},
        {"ref": "refs/heads/main"},
        {"event_name": "push", "ref_type": "branch"},
    ],
)
def test_a_github_subject_must_bind_a_repository_or_owner_id(claims: dict[str, str]) -> None:
    with pytest.raises(PolicyError, match="binds no repository") as refused:
        parse_policy(rule(subjects=[{"github": claims}]))
    assert "repository_id" in str(refused.value)
    assert p.ANY_REPOSITORY in str(refused.value)


def test_an_owner_id_binds_every_repository_of_that_owner() -> None:
    policy = parse_policy(rule(subjects=[{"github": {"repository_owner_id": 42}}]))
    assert policy.decide(github(repository_owner_id="42"), Request("read", "x", "web")).allowed
    assert not policy.decide(github(repository_owner_id="43"), Request("read", "x", "web")).allowed


def test_any_repository_is_an_explicit_and_loud_choice() -> None:
    subject = {"github": {"environment": "production", p.ANY_REPOSITORY: True}}
    policy = parse_policy(rule(subjects=[subject]))
    (warning,) = policy.warnings
    assert "ANY repository" in warning
    stranger = github(repository="someone/else", repository_id="777")
    assert policy.decide(stranger, Request("read", "x", "web")).allowed


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
    images = {"repositories": ["ghcr.io/acme/"], "allow_latest": allow_latest}
    policy = parse_policy(rule(**WRITE, subjects=[{"token": "a"}], images=images))
    caller = Caller("token:a", "token", {"token_id": "a"})
    assert policy.decide(caller, write("x", "web", "app", image)).reason == reason


def test_a_tag_pattern_sees_a_missing_tag_as_latest() -> None:
    images = {"repositories": ["ghcr.io/acme/app"], "allow_latest": True, "tag": r"^v\d+$"}
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
        (rule(subjects=[{"github": {"repository_owner": "a"}}]), "repository_owner_id"),
        (rule(subjects=[{"github": {"repository_id": "acme/web"}}]), "numeric id"),
        (rule(subjects=[{"github": {"repository_owner_id": "0x2a"}}]), "numeric id"),
        (rule(subjects=[{"github": {}}]), "at least one"),
        (rule(subjects=[{"github": {"ref": True}}]), "string"),
        (
            rule(subjects=[{"github": {"repository_id": "1", p.ANY_REPOSITORY: True}}]),
            "contradicts",
        ),
        (rule(subjects=[{"github": {"ref": "x", p.ANY_REPOSITORY: "yes"}}]), "true or false"),
        (rule(subjects=[{"token": "a", "cert": "b"}]), "exactly one"),
        (rule(subjects=[{"user": "a"}]), "token"),
        (rule(**WRITE, images={"registries": []}), "registries"),
        (rule(**WRITE, images=[]), "non-empty list"),
        (rule(**WRITE, images={"repositories": []}), "at least one"),
        (rule(**WRITE, images={"repositories": ["acme/web"]}), "does not name its registry"),
        (rule(**WRITE, images={"repositories": ["nginx"]}), "docker.io/library/nginx"),
        (rule(**WRITE, images={"repositories": ["acme/"]}), "docker.io/acme/ for Docker Hub"),
        (rule(**WRITE, images={"repositories": ["ghcr.io"]}), "names no repository"),
        (rule(**WRITE, images={"repositories": ["ghcr.io/acme/web:1"]}), "tag or a digest"),
        (rule(**WRITE, images={"repositories": ["ghcr.io/Acme"]}), "lowercase"),
        (rule(**WRITE, images={"repositories": ["-x.io/"]}), "not a registry"),
        (rule(**WRITE, images={"repositories": ["ghcr.io/a"], "tag": "("}), "regular"),
        (rule(**WRITE, images={"repositories": ["ghcr.io/a"], "digest": "yes"}), "digest"),
        (
            rule(**WRITE, images={"repositories": ["ghcr.io/a"], "allow_latest": "no"}),
            "allow_latest",
        ),
        (
            rule(**WRITE, images={"repositories": ["ghcr.io/a"], "allow_digest_only": True}),
            "only means something with 'tag'",
        ),
        (rule(**WRITE, images={"repositories": ["ghcr.io/a"], "tags": "x"}), "unknown"),
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
