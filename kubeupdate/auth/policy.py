"""Who may read or change which container, and with which images. Default deny.

A policy file is a list of rules; a request is allowed when one rule's
subjects include the caller, one of its targets covers the request's
namespace/deployment/container, it grants the access (``read`` or ``write``)
and, for a write, its image rules accept the new image::

    rules:
      - name: web from main            # shown in audit lines, optional
        subjects:
          - token: release-bot         # a static token id (Bearer or Basic)
          - github:                    # GitHub OIDC claims, all matched exactly
              repository: acme/web
              repository_id: "123456"
              ref: refs/heads/main
              environment: production
          - cert: deployer.acme.internal   # client certificate CN or SAN
        targets:
          - namespace: prod            # exact, or a glob with * and ?
            deployment: web            # default *
            container: app             # default *
        access: [read, write]
        images:                        # required with write
          registries: [ghcr.io]        # exact hosts (docker.io for Docker Hub)
          repositories: [acme/web, acme/tools/]   # exact, or a prefix ending at /
          tag: '^v\\d+\\.\\d+\\.\\d+$'     # optional regex the tag must match
          digest: required             # or optional (default)
          allow_latest: false          # default; true also allows no tag (which pulls latest)

Images are compared in normalised form (``nginx`` is
``docker.io/library/nginx``), so rules name repositories as normalised, e.g.
``library/nginx``. An image without tag or digest pulls ``latest``, so it counts
as ``latest``: refused unless ``allow_latest`` (with its own sentence, "a tag or
a digest is required"), and matched against ``tag`` as ``latest``.

Names and images reach the policy checked and parsed
(:func:`kubeupdate.targets.check_target`): a glob is never matched against a
name that is not a valid Kubernetes name. Requests that name a Deployment but no container (list,
rollout status, history) are reads of any container the rule covers there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from kubeupdate.auth.oidc import BINDABLE_CLAIMS
from kubeupdate.caller import Caller
from kubeupdate.images import DEFAULT_TAG, ImageReference

Access = Literal["read", "write"]
ACCESSES: Final = ("read", "write")

# The reasons a request is refused, as told to the caller (no policy details).
TARGET_NOT_ALLOWED: Final = "target not allowed"
ACCESS_NOT_ALLOWED: Final = "write not allowed on this target"
REGISTRY_NOT_ALLOWED: Final = "registry not allowed"
REPOSITORY_NOT_ALLOWED: Final = "repository not allowed"
TAG_REQUIRED: Final = "a tag or a digest is required"
LATEST_NOT_ALLOWED: Final = "the tag latest is not allowed"
TAG_NOT_ALLOWED: Final = "tag does not match the allowed pattern"
DIGEST_REQUIRED: Final = "digest required"


class PolicyError(ValueError):
    """The policy file is not valid; the message says where."""


@dataclass(frozen=True)
class Request:
    """What a call asks for, as the policy sees it (names checked, the image parsed)."""

    access: Access
    namespace: str
    deployment: str = ""
    container: str = ""
    image: ImageReference | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    rule: str | None = None


@dataclass(frozen=True)
class Subject:
    kind: Literal["token", "github", "cert"]
    token_id: str = ""
    claims: Mapping[str, str] = field(default_factory=dict)
    identity: str = ""

    def matches(self, caller: Caller) -> bool:
        if self.kind == "token":
            return caller.method in {"token", "basic"} and (
                caller.claims.get("token_id") == self.token_id
            )
        if self.kind == "github":
            return caller.method == "oidc" and all(
                caller.claims.get(name) == value for name, value in self.claims.items()
            )
        return caller.method == "mtls" and self.identity in cert_identities(caller)


def cert_identities(caller: Caller) -> set[str]:
    names = set(caller.claims.get("sans", "").split())
    if caller.claims.get("common_name"):
        names.add(caller.claims["common_name"])
    return names


def _glob(pattern: str) -> re.Pattern[str]:
    # Only * and ?: Kubernetes names hold no other special characters.
    parts = (".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts))


@dataclass(frozen=True)
class TargetPattern:
    namespace: re.Pattern[str]
    deployment: re.Pattern[str]
    container: re.Pattern[str]

    def covers(self, request: Request) -> bool:
        if not self.namespace.fullmatch(request.namespace):
            return False
        if request.deployment and not self.deployment.fullmatch(request.deployment):
            return False
        # No container named: a Deployment-level read, covered by any container rule.
        return not request.container or bool(self.container.fullmatch(request.container))


@dataclass(frozen=True)
class ImageRules:
    registries: frozenset[str]
    repositories: tuple[str, ...] = ()
    tag: re.Pattern[str] | None = None
    digest_required: bool = False
    allow_latest: bool = False

    def problem(self, image: ImageReference) -> str | None:
        """Why ``image`` (normalised) is refused, or None."""
        registry = (image.registry or "").lower()
        if registry not in self.registries:
            return REGISTRY_NOT_ALLOWED
        if self.repositories and not any(
            image.repository == allowed
            or (allowed.endswith("/") and image.repository.startswith(allowed))
            for allowed in self.repositories
        ):
            return REPOSITORY_NOT_ALLOWED
        tag = image.effective_tag  # no tag and no digest: latest
        if tag == DEFAULT_TAG and not self.allow_latest:
            return TAG_REQUIRED if image.tag is None else LATEST_NOT_ALLOWED
        if self.digest_required and image.digest is None:
            return DIGEST_REQUIRED
        if self.tag is not None and tag is not None and not self.tag.fullmatch(tag):
            return TAG_NOT_ALLOWED
        return None


@dataclass(frozen=True)
class Rule:
    name: str
    subjects: tuple[Subject, ...]
    targets: tuple[TargetPattern, ...]
    access: frozenset[str]
    images: ImageRules | None = None


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...] = ()

    def decide(self, caller: Caller, request: Request) -> Decision:
        """Allowed by the first rule that grants everything; else the most telling refusal."""
        reason = TARGET_NOT_ALLOWED
        image: ImageReference | None = None
        if request.access == "write" and request.image is not None:
            image = request.image.normalized_reference()
        for rule in self.rules:
            if not any(s.matches(caller) for s in rule.subjects):
                continue
            if not any(t.covers(request) for t in rule.targets):
                continue
            if request.access not in rule.access:
                reason = ACCESS_NOT_ALLOWED if reason == TARGET_NOT_ALLOWED else reason
                continue
            if request.access == "write":
                if rule.images is None or image is None:
                    continue
                problem = rule.images.problem(image)
                if problem is not None:
                    reason = problem
                    continue
            return Decision(True, "allowed", rule.name)
        return Decision(False, reason)


def parse_policy(document: Any) -> Policy:
    """The :class:`Policy` of a parsed policy file; raises PolicyError."""
    if document is None:
        document = {}
    if not isinstance(document, dict) or set(document) - {"rules"}:
        raise PolicyError("the policy file must be a mapping with one key, 'rules'")
    items = document.get("rules")
    items = [] if items is None else items
    if not isinstance(items, list):
        raise PolicyError("'rules' must be a list")
    return Policy(tuple(_rule(item, f"rules[{i}]") for i, item in enumerate(items)))


def _rule(item: Any, where: str) -> Rule:
    _mapping(item, where, {"name", "subjects", "targets", "access", "images"})
    name = item.get("name", where)
    if not isinstance(name, str):
        raise PolicyError(f"{where}: 'name' must be a string")
    subjects = tuple(
        _subject(s, f"{where}.subjects[{i}]") for i, s in enumerate(_list(item, "subjects", where))
    )
    targets = tuple(
        _target(t, f"{where}.targets[{i}]") for i, t in enumerate(_list(item, "targets", where))
    )
    access = _list(item, "access", where)
    if not set(access) <= set(ACCESSES):
        raise PolicyError(f"{where}: 'access' holds read and/or write")
    images = None
    if "images" in item:
        images = _images(item["images"], f"{where}.images")
    elif "write" in access:
        raise PolicyError(f"{where}: a rule granting write needs 'images'")
    return Rule(name, subjects, targets, frozenset(access), images)


def _subject(item: Any, where: str) -> Subject:
    if not isinstance(item, dict) or len(item) != 1:
        raise PolicyError(f"{where} must have exactly one of token, github, cert")
    ((kind, value),) = item.items()
    if kind == "token" and isinstance(value, str) and value:
        return Subject("token", token_id=value)
    if kind == "cert" and isinstance(value, str) and value:
        return Subject("cert", identity=value)
    if kind == "github":
        _mapping(value, where, set(BINDABLE_CLAIMS))
        if not value:
            raise PolicyError(f"{where}: bind at least one claim")
        if "repository" in value and "repository_id" not in value:
            # A repository name can be re-registered after a rename or deletion; the id cannot.
            raise PolicyError(f"{where}: binding 'repository' needs 'repository_id' too")
        claims = {}
        for claim, expected in value.items():
            if isinstance(expected, bool) or not isinstance(expected, str | int):
                raise PolicyError(f"{where}.{claim} must be a string")
            claims[claim] = str(expected)
        return Subject("github", claims=claims)
    raise PolicyError(f"{where} must be token: ID, github: {{claims}} or cert: IDENTITY")


def _target(item: Any, where: str) -> TargetPattern:
    _mapping(item, where, {"namespace", "deployment", "container"})
    values = []
    for key in ("namespace", "deployment", "container"):
        value = item.get(key, "*" if key != "namespace" else None)
        if not isinstance(value, str) or not value:
            raise PolicyError(f"{where}: '{key}' must be a name or a glob")
        values.append(_glob(value))
    return TargetPattern(*values)


def _images(item: Any, where: str) -> ImageRules:
    _mapping(item, where, {"registries", "repositories", "tag", "digest", "allow_latest"})
    registries = _strings(item.get("registries"), f"{where}.registries")
    if not registries:
        raise PolicyError(f"{where}: 'registries' must list at least one host")
    repositories = _strings(item.get("repositories", []), f"{where}.repositories")
    tag = item.get("tag")
    pattern = None
    if tag is not None:
        try:
            pattern = re.compile(str(tag))
        except re.error as exc:
            raise PolicyError(f"{where}.tag is not a valid regular expression: {exc}") from None
    digest = item.get("digest", "optional")
    if digest not in {"required", "optional"}:
        raise PolicyError(f"{where}.digest must be required or optional")
    allow_latest = item.get("allow_latest", False)
    if not isinstance(allow_latest, bool):
        raise PolicyError(f"{where}.allow_latest must be true or false")
    return ImageRules(
        frozenset(r.lower() for r in registries),
        tuple(repositories),
        pattern,
        digest == "required",
        allow_latest,
    )


def _mapping(item: Any, where: str, allowed: Iterable[str]) -> None:
    if not isinstance(item, dict):
        raise PolicyError(f"{where} must be a mapping")
    unknown = set(item) - set(allowed)
    if unknown:
        raise PolicyError(f"{where} has unknown keys: {', '.join(sorted(map(str, unknown)))}")


def _list(item: dict[str, Any], key: str, where: str) -> list[Any]:
    value = item.get(key)
    if not isinstance(value, list) or not value:
        raise PolicyError(f"{where}: '{key}' must be a non-empty list")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{where} must be a list of strings")
    return value
