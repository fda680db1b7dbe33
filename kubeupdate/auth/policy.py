"""Who may read or change which container, and with which images. Default deny.

A policy file is a list of rules; a request is allowed when one rule's
subjects include the caller, one of its targets covers the request's
namespace/deployment/container, it grants the access (``read`` or ``write``)
and, for a write, one of its image rules accepts the new image::

    rules:
      - name: web from main            # shown in audit lines, optional
        subjects:
          - token: release-bot         # a static token id (Bearer or Basic)
          - github:                    # GitHub OIDC claims, all matched exactly;
              repository: acme/web     # repository_id or repository_owner_id required
              repository_id: "123456"
              ref: refs/heads/main
              environment: production
          - cert: deployer.acme.internal   # client certificate CN or SAN
        targets:
          - namespace: prod            # exact, or a glob with * and ?
            deployment: web            # default *
            container: app             # default *
        access: [read, write]
        images:                        # required with write: image rules, one must accept
          - repositories:              # registry + repository, as pairs
              - ghcr.io/acme/web       # exactly this repository
              - ghcr.io/acme/tools/    # every repository under ghcr.io/acme/tools/
            tag: '^v\\d+\\.\\d+\\.\\d+$'   # optional regex the whole tag must match
            allow_digest_only: false   # default: under `tag`, a digest needs its tag
            digest: required           # or optional (default), or pin: write tag@digest
            allow_latest: false        # default; true also allows no tag (which pulls latest)
            registry: check            # registry options: look the image up before writing
            platforms: [linux/amd64]   # (kubeupdate.auth.registry_options)
            signature: {keys: [release.pub]}

The full format, with examples, is in ``deploy/OPERATIONS.md`` ("The policy
file"); a test keeps that page and the key tables below in step.

Images are compared by their normalised name
(:attr:`kubeupdate.images.ImageReference.name`: ``nginx`` is
``docker.io/library/nginx``, ``index.docker.io/acme/web`` is
``docker.io/acme/web``), and rules name repositories the same way, registry
included, so a rule can never pair a registry with someone else's repository
of the same name. The old form, ``registries`` and ``repositories`` as two
lists, allowed every pairing of them: it still loads where it cannot be
misread (one registry), with a warning, and is refused with more than one,
with the new form in the message.

The image rule that accepts a write also says what the image's registry must
confirm before anything is written (``registry: check``, ``digest: pin``,
``platforms``, ``signature``: :mod:`kubeupdate.auth.registry_options`); the
first image rule, in file order, that accepts the image decides
(:attr:`Decision.check`).

An image without tag or digest pulls ``latest``, so it counts as ``latest``:
refused unless ``allow_latest`` (with its own sentence, "a tag or a digest is
required"), and matched against ``tag`` as ``latest``. A digest without a tag
says nothing a tag pattern could judge, so under ``tag`` it is refused unless
``allow_digest_only``. (The tag of ``tag@digest`` is taken at its word: the
digest is what runs, and nothing here checks that the tag points to it.)

Names and images reach the policy checked and parsed
(:func:`kubeupdate.targets.check_target`): a glob is never matched against a
name that is not a valid Kubernetes name. Requests that name a Deployment but no
container (list, rollout status, history) are reads of any container the rule
covers there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from kubeupdate.auth.oidc import BINDABLE_CLAIMS
from kubeupdate.auth.registry_options import (
    REGISTRY_OPTION_KEYS,
    RegistryOptions,
    registry_options,
)
from kubeupdate.caller import Caller
from kubeupdate.errors import ErrorReason, InvalidArgument, Reason
from kubeupdate.image_checks import ImageCheck
from kubeupdate.images import (
    DEFAULT_TAG,
    ImageReference,
    canonical_registry,
    names_registry,
    parse_image,
    parse_registry,
)

log = logging.getLogger(__name__)

Access = Literal["read", "write"]
ACCESSES: Final = ("read", "write")

# Every key the file may hold, by place (OPERATIONS.md documents each one).
RULE_KEYS: Final = ("name", "subjects", "targets", "access", "images")
SUBJECT_KINDS: Final = ("token", "github", "cert")
TARGET_KEYS: Final = ("namespace", "deployment", "container")
IMAGE_RULE_KEYS: Final = (
    "repositories",
    "tag",
    "allow_digest_only",
    "digest",
    "allow_latest",
    *REGISTRY_OPTION_KEYS,
)
DIGEST_VALUES: Final = ("optional", "required", "pin")
# The claims that identify a repository or its owner for good: numbers survive renames.
GITHUB_ID_CLAIMS: Final = ("repository_id", "repository_owner_id")
# The loud opt-in for a github subject that binds no repository or owner id.
ANY_REPOSITORY: Final = "allow_any_repository"
GITHUB_KEYS: Final = (*BINDABLE_CLAIMS, ANY_REPOSITORY)
# The old image-rule key, still read where it cannot be misread.
LEGACY_REGISTRIES: Final = "registries"

# The reasons a request is refused, as told to the caller (no policy details).
NO_RULE_FOR_CALLER: Final = "no rule of the policy names this caller"
TARGET_NOT_ALLOWED: Final = "target not allowed"
ACCESS_NOT_ALLOWED: Final = "write not allowed on this target"
REGISTRY_NOT_ALLOWED: Final = "registry not allowed"
REPOSITORY_NOT_ALLOWED: Final = "repository not allowed"
TAG_REQUIRED: Final = "a tag or a digest is required"
LATEST_NOT_ALLOWED: Final = "the tag latest is not allowed"
TAG_NOT_ALLOWED: Final = "tag does not match the allowed pattern"
DIGEST_ONLY_NOT_ALLOWED: Final = (
    "a digest without its tag is not allowed (send repository:tag@digest)"
)
DIGEST_REQUIRED: Final = "digest required"
ALLOWED: Final = "allowed"

#: The ErrorInfo reason of each refusal, for programs (the proto's ErrorReason).
DENIAL_REASONS: Final[dict[str, Reason]] = {
    NO_RULE_FOR_CALLER: ErrorReason.CALLER_NOT_ALLOWED,
    TARGET_NOT_ALLOWED: ErrorReason.TARGET_NOT_ALLOWED,
    ACCESS_NOT_ALLOWED: ErrorReason.ACCESS_NOT_ALLOWED,
    REGISTRY_NOT_ALLOWED: ErrorReason.IMAGE_REGISTRY_NOT_ALLOWED,
    REPOSITORY_NOT_ALLOWED: ErrorReason.IMAGE_REPOSITORY_NOT_ALLOWED,
    TAG_REQUIRED: ErrorReason.IMAGE_TAG_REQUIRED,
    LATEST_NOT_ALLOWED: ErrorReason.IMAGE_TAG_LATEST_REFUSED,
    TAG_NOT_ALLOWED: ErrorReason.IMAGE_TAG_NOT_ALLOWED,
    DIGEST_ONLY_NOT_ALLOWED: ErrorReason.IMAGE_DIGEST_WITHOUT_TAG,
    DIGEST_REQUIRED: ErrorReason.IMAGE_DIGEST_REQUIRED,
}


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
    #: A write whose image is known only later (UndoContainerImage): everything
    #: but the image rules is decided now; they are decided with the image.
    image_pending: bool = False


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    # The rule that allowed; for a refusal, the closest one (audit lines only).
    rule: str | None = None
    #: For an allowed write: what the image's registry must confirm first (None: nothing).
    check: ImageCheck | None = None


@dataclass(frozen=True)
class Subject:
    kind: Literal["token", "github", "cert"]
    token_id: str = ""
    claims: Mapping[str, str] = field(default_factory=dict)
    identity: str = ""
    # A github subject that binds no repository or owner id, on purpose.
    any_repository: bool = False

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

    def to_document(self) -> dict[str, Any]:
        if self.kind == "token":
            return {"token": self.token_id}
        if self.kind == "cert":
            return {"cert": self.identity}
        claims: dict[str, Any] = dict(self.claims)
        if self.any_repository:
            claims[ANY_REPOSITORY] = True
        return {"github": claims}


def cert_identities(caller: Caller) -> set[str]:
    names = set(caller.claims.get("sans", "").split())
    if caller.claims.get("common_name"):
        names.add(caller.claims["common_name"])
    return names


@dataclass(frozen=True)
class Glob:
    """A name, or a pattern with ``*`` and ``?`` (Kubernetes names hold no other special)."""

    text: str
    pattern: re.Pattern[str] = field(compare=False, repr=False)

    @classmethod
    def of(cls, text: str) -> Glob:
        parts = (".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in text)
        return cls(text, re.compile("".join(parts)))

    def matches(self, name: str) -> bool:
        return self.pattern.fullmatch(name) is not None


@dataclass(frozen=True)
class TargetPattern:
    namespace: Glob
    deployment: Glob
    container: Glob

    def covers(self, request: Request) -> bool:
        if not self.namespace.matches(request.namespace):
            return False
        if request.deployment and not self.deployment.matches(request.deployment):
            return False
        # No container named: a Deployment-level read, covered by any container rule.
        return not request.container or self.container.matches(request.container)

    def to_document(self) -> dict[str, str]:
        return {
            "namespace": self.namespace.text,
            "deployment": self.deployment.text,
            "container": self.container.text,
        }


@dataclass(frozen=True)
class RepositoryPattern:
    """``registry/repository`` exactly, or, ending in ``/``, every repository under it."""

    text: str

    @property
    def registry(self) -> str:
        return self.text.split("/", 1)[0]

    @property
    def is_prefix(self) -> bool:
        return self.text.endswith("/")

    def covers(self, name: str) -> bool:
        return name == self.text or (self.is_prefix and name.startswith(self.text))


@dataclass(frozen=True)
class ImageRule:
    """Which repositories, and what their references must look like."""

    repositories: tuple[RepositoryPattern, ...]
    tag: re.Pattern[str] | None = None
    allow_digest_only: bool = False
    digest_required: bool = False
    allow_latest: bool = False
    #: The registry options (``registry``, ``digest: pin``, ``platforms``, ``signature``).
    registry: RegistryOptions | None = None

    @property
    def check(self) -> ImageCheck | None:
        """What the image's registry must confirm before a write this rule allows."""
        return self.registry.check if self.registry is not None else None

    def covers(self, name: str) -> bool:
        return any(p.covers(name) for p in self.repositories)

    def problem(self, image: ImageReference) -> str | None:
        """Why the rule refuses ``image`` (of a repository it covers), or None."""
        tag = image.effective_tag  # no tag and no digest: latest
        if tag == DEFAULT_TAG and not self.allow_latest:
            return TAG_REQUIRED if image.tag is None else LATEST_NOT_ALLOWED
        if self.digest_required and image.digest is None:
            return DIGEST_REQUIRED
        if self.tag is not None:
            if tag is None:  # a digest alone: no tag for the pattern to judge
                return None if self.allow_digest_only else DIGEST_ONLY_NOT_ALLOWED
            if not self.tag.fullmatch(tag):
                return TAG_NOT_ALLOWED
        return None

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"repositories": [p.text for p in self.repositories]}
        if self.tag is not None:
            document["tag"] = self.tag.pattern
            document["allow_digest_only"] = self.allow_digest_only
        pin = self.check is not None and self.check.pin
        document["digest"] = "required" if self.digest_required else "pin" if pin else "optional"
        document["allow_latest"] = self.allow_latest
        if self.registry is not None:
            document.update(self.registry.document)
        return document


@dataclass(frozen=True)
class ImageRules:
    """A rule's image rules: an image is allowed when one that covers it accepts it."""

    rules: tuple[ImageRule, ...]

    def problem(self, image: ImageReference) -> str | None:
        """Why ``image`` is refused, or None."""
        name = image.name
        covering = [r for r in self.rules if r.covers(name)]
        if not covering:
            registry = name.split("/", 1)[0]
            named = any(p.registry == registry for r in self.rules for p in r.repositories)
            return REPOSITORY_NOT_ALLOWED if named else REGISTRY_NOT_ALLOWED
        problems = [r.problem(image) for r in covering]
        if None in problems:
            return None
        return problems[0]

    def check_for(self, image: ImageReference) -> ImageCheck | None:
        """The registry check of the first rule that accepts ``image`` (None: none asked)."""
        name = image.name
        for rule in self.rules:
            if rule.covers(name) and rule.problem(image) is None:
                return rule.check
        return None


@dataclass(frozen=True)
class Rule:
    name: str
    subjects: tuple[Subject, ...]
    targets: tuple[TargetPattern, ...]
    access: frozenset[str]
    images: ImageRules = ImageRules(())

    def names(self, caller: Caller) -> bool:
        return any(s.matches(caller) for s in self.subjects)

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": self.name,
            "subjects": [s.to_document() for s in self.subjects],
            "targets": [t.to_document() for t in self.targets],
            "access": [a for a in ACCESSES if a in self.access],
        }
        if self.images.rules:
            document["images"] = [r.to_document() for r in self.images.rules]
        return document

    def verdict(self, caller: Caller, request: Request) -> str:
        """:data:`ALLOWED`, or the reason this rule does not allow the request."""
        if not self.names(caller):
            return NO_RULE_FOR_CALLER
        if not any(t.covers(request) for t in self.targets):
            return TARGET_NOT_ALLOWED
        if request.access not in self.access:
            return ACCESS_NOT_ALLOWED
        if request.access == "write":
            if request.image is None:
                # A write without a new image has no image rule to pass: none is allowed,
                # unless the image is decided later, when it is known.
                return ALLOWED if request.image_pending else ACCESS_NOT_ALLOWED
            problem = self.images.problem(request.image)
            if problem is not None:
                return problem
        return ALLOWED


# The order in which refusals are told, least to most telling: a caller who
# reaches an image problem learns that the target was right.
_TELLING: Final = (
    NO_RULE_FOR_CALLER,
    TARGET_NOT_ALLOWED,
    ACCESS_NOT_ALLOWED,
)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...] = ()
    # What an operator should know about a file that loaded (old forms, wide rules).
    warnings: tuple[str, ...] = ()

    def decide(self, caller: Caller, request: Request) -> Decision:
        """Allowed by the first rule that grants everything; else the most telling refusal.

        A refusal names the rule it came from, for the audit line (never for the
        caller): the first rule that names the caller and got furthest.
        """
        reason, closest = NO_RULE_FOR_CALLER, None
        for rule in self.rules:
            verdict = rule.verdict(caller, request)
            if verdict == ALLOWED:
                check = None
                if request.access == "write" and request.image is not None:
                    check = rule.images.check_for(request.image)
                return Decision(True, ALLOWED, rule.name, check)
            if _rank(verdict) > _rank(reason):
                reason, closest = verdict, rule.name
        return Decision(False, reason, closest)

    def explain(self, caller: Caller, request: Request) -> list[tuple[Rule, str]]:
        """Every rule with its verdict for this caller and request, in file order."""
        return [(rule, rule.verdict(caller, request)) for rule in self.rules]

    def to_document(self) -> dict[str, Any]:
        """The policy in normalised form, as a document :func:`parse_policy` reads back."""
        return {"rules": [rule.to_document() for rule in self.rules]}


def _rank(reason: str) -> int:
    # Image problems rank above every target problem; among them, the first one found wins.
    return _TELLING.index(reason) if reason in _TELLING else len(_TELLING)


def parse_policy(document: Any, *, base: Path | None = None) -> Policy:
    """The :class:`Policy` of a parsed policy file; raises PolicyError.

    ``base`` is the policy file's folder: relative key and CA files of
    signature rules are read from there.
    """
    if document is None:
        document = {}
    if not isinstance(document, dict) or set(document) - {"rules"}:
        raise PolicyError("the policy file must be a mapping with one key, 'rules'")
    items = document.get("rules")
    items = [] if items is None else items
    if not isinstance(items, list):
        raise PolicyError("'rules' must be a list")
    warnings: list[str] = []
    rules = tuple(_rule(item, f"rules[{i}]", warnings, base) for i, item in enumerate(items))
    return Policy(rules, tuple(warnings))


def load_policy(document: Any, *, base: Path | None = None) -> Policy:
    """:func:`parse_policy`, with the file's warnings logged (at every load and reload)."""
    policy = parse_policy(document, base=base)
    for warning in policy.warnings:
        log.warning("policy: %s", warning)
    return policy


def _rule(item: Any, where: str, warnings: list[str], base: Path | None) -> Rule:
    _mapping(item, where, RULE_KEYS)
    name = item.get("name", where)
    if not isinstance(name, str):
        raise PolicyError(f"{where}: 'name' must be a string")
    subjects = tuple(
        _subject(s, f"{where}.subjects[{i}]", warnings)
        for i, s in enumerate(_list(item, "subjects", where))
    )
    targets = tuple(
        _target(t, f"{where}.targets[{i}]") for i, t in enumerate(_list(item, "targets", where))
    )
    access = _list(item, "access", where)
    if not set(access) <= set(ACCESSES):
        raise PolicyError(f"{where}: 'access' holds read and/or write")
    images = ImageRules(())
    if "images" in item:
        images = _images(item["images"], f"{where}.images", warnings, base)
    elif "write" in access:
        raise PolicyError(f"{where}: a rule granting write needs 'images'")
    return Rule(name, subjects, targets, frozenset(access), images)


def _subject(item: Any, where: str, warnings: list[str]) -> Subject:
    if not isinstance(item, dict) or len(item) != 1:
        raise PolicyError(f"{where} must have exactly one of token, github, cert")
    ((kind, value),) = item.items()
    if kind == "token" and isinstance(value, str) and value:
        return Subject("token", token_id=value)
    if kind == "cert" and isinstance(value, str) and value:
        return Subject("cert", identity=value)
    if kind == "github":
        return _github(value, where, warnings)
    raise PolicyError(f"{where} must be token: ID, github: {{claims}} or cert: IDENTITY")


def _github(value: Any, where: str, warnings: list[str]) -> Subject:
    _mapping(value, where, GITHUB_KEYS)
    any_repository = value.get(ANY_REPOSITORY, False)
    if not isinstance(any_repository, bool):
        raise PolicyError(f"{where}.{ANY_REPOSITORY} must be true or false")
    claims: dict[str, str] = {}
    for claim, expected in value.items():
        if claim == ANY_REPOSITORY:
            continue
        if isinstance(expected, bool) or not isinstance(expected, str | int):
            raise PolicyError(f"{where}.{claim} must be a string")
        claims[claim] = str(expected)
        if claim in GITHUB_ID_CLAIMS and not claims[claim].isdigit():
            raise PolicyError(f'{where}.{claim} must be GitHub\'s numeric id, e.g. "123456"')
    if not claims:
        raise PolicyError(f"{where}: bind at least one claim")
    # A name can be registered again after a rename or deletion; the id cannot.
    for name, number in (
        ("repository", "repository_id"),
        ("repository_owner", "repository_owner_id"),
    ):
        if name in claims and number not in claims:
            raise PolicyError(f"{where}: binding '{name}' needs '{number}' too")
    bound = [c for c in GITHUB_ID_CLAIMS if c in claims]
    if bound and any_repository:
        raise PolicyError(f"{where}: {ANY_REPOSITORY} contradicts {bound[0]}; drop one of them")
    if not bound:
        if not any_repository:
            raise PolicyError(
                f"{where} binds no repository: the audience is not a secret, so any "
                "workflow of any repository on GitHub can get a token that matches "
                f"{_claims_text(claims)}. Bind repository_id (the repository's number: "
                "gh api repos/OWNER/NAME --jq .id) or repository_owner_id (gh api "
                f"users/OWNER --jq .id), or, if every repository is meant, add "
                f"{ANY_REPOSITORY}: true"
            )
        warnings.append(
            f"{where} matches OIDC tokens of ANY repository on GitHub with "
            f"{_claims_text(claims)} ({ANY_REPOSITORY})"
        )
    return Subject("github", claims=claims, any_repository=any_repository)


def _claims_text(claims: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in claims.items())


def _target(item: Any, where: str) -> TargetPattern:
    _mapping(item, where, TARGET_KEYS)
    values = []
    for key in TARGET_KEYS:
        value = item.get(key, "*" if key != "namespace" else None)
        if not isinstance(value, str) or not value:
            raise PolicyError(f"{where}: '{key}' must be a name or a glob")
        values.append(Glob.of(value))
    return TargetPattern(*values)


def _images(item: Any, where: str, warnings: list[str], base: Path | None) -> ImageRules:
    # One image rule may be written as a mapping instead of a list of one.
    items = [item] if isinstance(item, dict) else item
    if not isinstance(items, list) or not items:
        raise PolicyError(f"{where} must be a non-empty list of image rules")
    rules = []
    for index, entry in enumerate(items):
        place = where if isinstance(item, dict) else f"{where}[{index}]"
        rules.append(_image_rule(entry, place, warnings, base))
    return ImageRules(tuple(rules))


def _image_rule(item: Any, where: str, warnings: list[str], base: Path | None) -> ImageRule:
    _mapping(item, where, (*IMAGE_RULE_KEYS, LEGACY_REGISTRIES))
    if LEGACY_REGISTRIES in item:
        texts = _legacy_repositories(item, where, warnings)
    else:
        texts = _strings(item.get("repositories"), f"{where}.repositories")
        if not texts:
            raise PolicyError(f"{where}.repositories must name at least one repository")
    patterns = tuple(_repository(text, f"{where}.repositories") for text in texts)
    for repository in patterns:
        if repository.text.count("/") == 1 and repository.is_prefix:
            warnings.append(
                f"{where} allows every repository on {repository.registry}, anyone's "
                "(name repositories, or a namespace such as "
                f"{repository.registry}/acme/, instead)"
            )
    tag = item.get("tag")
    tag_pattern = None
    if tag is not None:
        try:
            tag_pattern = re.compile(str(tag))
        except re.error as exc:
            raise PolicyError(f"{where}.tag is not a valid regular expression: {exc}") from None
    digest_only = _flag(item, "allow_digest_only", where)
    if digest_only and tag_pattern is None:
        raise PolicyError(f"{where}.allow_digest_only only means something with 'tag'")
    digest = item.get("digest", "optional")
    if digest not in DIGEST_VALUES:
        raise PolicyError(f"{where}.digest must be {', '.join(DIGEST_VALUES[:-1])} or pin")
    try:
        registry = registry_options(item, where, pin=digest == "pin", base=base)
    except ValueError as exc:
        raise PolicyError(str(exc)) from None
    return ImageRule(
        patterns,
        tag_pattern,
        allow_digest_only=digest_only,
        digest_required=digest == "required",
        allow_latest=_flag(item, "allow_latest", where),
        registry=registry,
    )


def _legacy_repositories(item: dict[str, Any], where: str, warnings: list[str]) -> list[str]:
    """The new form of ``registries`` + ``repositories``; refused where it can be misread."""
    registries = _strings(item.get(LEGACY_REGISTRIES), f"{where}.{LEGACY_REGISTRIES}")
    if not registries:
        raise PolicyError(f"{where}: '{LEGACY_REGISTRIES}' must list at least one host")
    if "repositories" not in item:
        texts = [f"{registry}/" for registry in registries]
    else:
        paths = _strings(item["repositories"], f"{where}.repositories")
        texts = [f"{registry}/{path}" for registry in registries for path in paths]
        if len(registries) > 1 and paths:
            raise PolicyError(
                f"{where}: '{LEGACY_REGISTRIES}' and 'repositories' as two lists allow every "
                f"pairing of them, and {registries[1]}/{paths[0]} is not "
                f"{registries[0]}/{paths[0]}: they are refused with more than one registry. "
                "Name each repository with its registry, keeping only the pairs you mean:\n"
                + _new_form(texts)
            )
    warnings.append(
        f"{where} uses the old form '{LEGACY_REGISTRIES}' + 'repositories'; it still loads "
        "(it cannot be misread), but write instead:\n" + _new_form(texts)
    )
    return texts


def _new_form(texts: list[str]) -> str:
    lines = ["    images:", "      - repositories:", *(f"          - {t}" for t in texts)]
    return "\n".join(lines)


def _repository(text: str, where: str) -> RepositoryPattern:
    """``registry/repository`` (or ``registry/namespace/``, or ``registry/``), normalised."""
    prefix = text.endswith("/")
    body = text[:-1] if prefix else text
    try:
        if "/" not in body and names_registry(body):
            if not prefix:
                raise PolicyError(
                    f"{where}: {text!r} names no repository; write registry/repository "
                    f"(e.g. {text}/acme/web), or {text}/ for every repository there"
                )
            return RepositoryPattern(parse_registry(body) + "/")
        reference = parse_image(body)
    except InvalidArgument as exc:
        raise PolicyError(f"{where}: {exc.message}") from None
    if reference.registry is None:
        # Docker's short forms are spelled out here: a rule must show where images come from.
        spelled_out = f"docker.io/{body}/" if prefix else reference.name
        raise PolicyError(
            f"{where}: {text!r} does not name its registry; write it in full, "
            f"e.g. {spelled_out} for Docker Hub"
        )
    if reference.tag is not None or reference.digest is not None:
        raise PolicyError(
            f"{where}: {text!r} names a tag or a digest; name the repository only "
            "(and use 'tag' for a tag pattern)"
        )
    if prefix:
        # A namespace: normalise the registry only (no library/ for a prefix).
        registry = canonical_registry(reference.registry)
        return RepositoryPattern(f"{registry}/{reference.repository}/")
    return RepositoryPattern(reference.name)


def _flag(item: dict[str, Any], key: str, where: str) -> bool:
    value = item.get(key, False)
    if not isinstance(value, bool):
        raise PolicyError(f"{where}.{key} must be true or false")
    return value


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
