"""Container image references: parsing, checking and normalising.

The grammar is the one of the distribution project (``distribution/reference``),
which docker, containerd and Kubernetes' image pullers share::

    reference   := name [ ":" tag ] [ "@" digest ]
    name        := [ registry "/" ] path            at most 255 characters
    registry    := host [ ":" port ]
    host        := domain-name | "[" IPv6 "]"       (domain components may use A-Z)
    path        := component ( "/" component )*
    component   := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag         := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest      := algorithm ":" hex                hex: [0-9a-fA-F]{32,}
    algorithm   := [A-Za-z][A-Za-z0-9]* ( [-_+.] [A-Za-z][A-Za-z0-9]* )*

As in docker, the first ``/``-separated part names a registry only when it
contains ``.`` or ``:``, is ``localhost`` or is a bracketed IPv6 address;
otherwise the whole name is a Docker Hub path (``acme/web`` is
``docker.io/acme/web``, ``nginx`` is ``docker.io/library/nginx``). Digests of
known algorithms must have their exact length in lowercase hex (what
``go-digest`` enforces), e.g. 64 for sha256.

This is the one place that knows Docker Hub's names: :func:`canonical_registry`
folds ``index.docker.io`` (docker's legacy name), ``registry-1.docker.io`` (its
API host) and ``registry.hub.docker.com`` into ``docker.io``, and
:meth:`ImageReference.normalized_reference` adds ``library/`` to its official
images. The policy and the registry client (``kubeupdate.registry.endpoints``)
both compare images in that form.

Parsing splits the text without rewriting it, so ``str(parse_image(x)) == x``.
Errors are :class:`~kubeupdate.errors.InvalidArgument` (reason
``IMAGE_INVALID``) with a sentence saying what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from kubeupdate.errors import ErrorReason, InvalidArgument
from kubeupdate.names import quote

__all__ = [
    "DEFAULT_REGISTRY",
    "DEFAULT_TAG",
    "DOCKER_HUB_ALIASES",
    "NAME_MAX_LENGTH",
    "TAG_MAX_LENGTH",
    "ImageReference",
    "canonical_registry",
    "names_registry",
    "parse_image",
    "parse_registry",
]

DEFAULT_REGISTRY: Final = "docker.io"
# Docker Hub's other names: docker's legacy index, the API host, the web host.
DOCKER_HUB_ALIASES: Final = frozenset(
    {"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
DEFAULT_TAG: Final = "latest"
NAME_MAX_LENGTH: Final = 255
TAG_MAX_LENGTH: Final = 128
# Docker Hub's official images live under this namespace.
_OFFICIAL_NAMESPACE: Final = "library/"

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY_RE: Final = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE: Final = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_TAG_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_ALGORITHM_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*")
_HEX_RE: Final = re.compile(r"[0-9a-fA-F]{32,}")
# Printable ASCII without the space: everything else is rejected up front.
_PRINTABLE_RE: Final = re.compile(r"[\x21-\x7e]+")
# A bare 64-hex name is an image ID, which docker refuses as a repository.
_IMAGE_ID_RE: Final = re.compile(r"[a-f0-9]{64}")
_LOWER_HEX_RE: Final = re.compile(r"[0-9a-f]+")
_KNOWN_DIGEST_LENGTHS: Final = {"sha256": 64, "sha384": 96, "sha512": 128}

# Builds the error for the value being parsed from the reason it is wrong.
_Invalid: TypeAlias = Callable[[str], InvalidArgument]


@dataclass(frozen=True)
class ImageReference:
    """One image reference, split into its parts exactly as written.

    ``tag`` stays ``None`` when absent (see :attr:`effective_tag`), and
    ``registry`` stays ``None`` when the reference names none (see
    :meth:`normalized`).
    """

    registry: str | None
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = self.repository if self.registry is None else f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def effective_tag(self) -> str | None:
        """The tag a pull would use: ``latest`` when neither tag nor digest is given."""
        if self.tag is None and self.digest is None:
            return DEFAULT_TAG
        return self.tag

    def normalized_reference(self) -> ImageReference:
        """This reference with the registry and Docker Hub's ``library/`` made explicit.

        No tag is added: ``nginx`` becomes ``docker.io/library/nginx``; the
        registry is written as :func:`canonical_registry` writes it
        (``index.docker.io/acme/web`` is ``docker.io/acme/web``).
        """
        registry = canonical_registry(self.registry or DEFAULT_REGISTRY)
        repository = self.repository
        if registry == DEFAULT_REGISTRY and "/" not in repository:
            repository = _OFFICIAL_NAMESPACE + repository
        return ImageReference(registry, repository, self.tag, self.digest)

    def normalized(self) -> str:
        """The fully-qualified text of this reference, e.g. ``docker.io/library/nginx:1.25``.

        Idempotent: ``parse_image(r.normalized()).normalized() == r.normalized()``.
        """
        return str(self.normalized_reference())

    @property
    def name(self) -> str:
        """Registry and repository, normalised, without tag or digest: ``ghcr.io/acme/web``."""
        full = self.normalized_reference()
        return f"{full.registry}/{full.repository}"


def canonical_registry(host: str) -> str:
    """One spelling per registry: lowercase (host names are), Docker Hub as ``docker.io``."""
    host = host.lower()
    return DEFAULT_REGISTRY if host in DOCKER_HUB_ALIASES else host


def parse_registry(value: str) -> str:
    """A registry host with an optional port, checked and in canonical form; InvalidArgument."""
    if not isinstance(value, str) or _REGISTRY_RE.fullmatch(value) is None:
        raise InvalidArgument(
            f"{quote(str(value))} is not a registry: a host name or [IPv6] address "
            "with an optional port"
        )
    return canonical_registry(value)


def parse_image(value: str) -> ImageReference:
    """Parse and check an image reference; raise InvalidArgument if it is not one."""
    if not value:
        raise InvalidArgument("image is required", reason=ErrorReason.IMAGE_INVALID)
    if not isinstance(value, str):  # a JSON number or list slipped past the types
        raise InvalidArgument("image must be a string", reason=ErrorReason.IMAGE_INVALID)

    def invalid(reason: str) -> InvalidArgument:
        return InvalidArgument(
            f"image {quote(value)} is not a valid image reference: {reason}",
            reason=ErrorReason.IMAGE_INVALID,
        )

    if _PRINTABLE_RE.fullmatch(value) is None:
        raise invalid("it must not contain whitespace, control or non-ASCII characters")

    name, at, digest = value.partition("@")
    if at:
        _check_digest(digest, invalid)
    tag: str | None = None
    # A ':' after the last '/' starts the tag; an earlier one is a registry port.
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
        _check_tag(tag, invalid)

    if not name:
        raise invalid("the repository name is missing")
    registry, repository = _split_registry(name)
    if registry is not None and _REGISTRY_RE.fullmatch(registry) is None:
        raise invalid(
            f"the registry {quote(registry)} is not a valid host name or [IPv6] address "
            "with an optional port"
        )
    _check_repository(repository, invalid)
    if _IMAGE_ID_RE.fullmatch(value) is not None:
        raise invalid("a 64-character hexadecimal string is an image ID, not a repository name")
    if len(name) > NAME_MAX_LENGTH:
        raise invalid(f"the name is {len(name)} characters long, at most {NAME_MAX_LENGTH}")

    reference = ImageReference(registry, repository, tag, digest if at else None)
    # Docker checks the length once the name is normalised: the limit must hold
    # however the same image is written.
    full = reference.normalized_reference()
    full_length = len(f"{full.registry}/{full.repository}")
    if full_length > NAME_MAX_LENGTH:
        raise invalid(
            f"the name is {full_length} characters long with its registry spelled out "
            f"({full.registry}/{full.repository[: len(full.repository) - len(repository)]}...), "
            f"at most {NAME_MAX_LENGTH}"
        )
    return reference


def names_registry(component: str) -> bool:
    """Whether the first ``/``-separated part of a name is a registry (docker's rule)."""
    return (
        "." in component
        or ":" in component
        or component == "localhost"
        or (component.startswith("["))
    )


def _split_registry(name: str) -> tuple[str | None, str]:
    first, slash, rest = name.partition("/")
    if slash and names_registry(first):
        return first, rest
    return None, name


def _check_repository(repository: str, invalid: _Invalid) -> None:
    if _PATH_RE.fullmatch(repository) is not None:
        return
    if _PATH_RE.fullmatch(repository.lower()) is not None:
        raise invalid("repository names must be lowercase")
    if not repository or repository.startswith("/") or repository.endswith("/"):
        raise invalid("the repository name must not be empty, start or end with '/'")
    if "//" in repository:
        raise invalid("the repository name must not contain an empty part ('//')")
    raise invalid(
        "each part of the repository name must be lowercase letters and digits, "
        "separated inside a part by '.', '_', '__' or dashes, "
        "and must start and end with a letter or digit"
    )


def _check_tag(tag: str, invalid: _Invalid) -> None:
    if not tag:
        raise invalid("the tag after ':' is empty")
    if len(tag) > TAG_MAX_LENGTH:
        raise invalid(f"the tag is too long ({len(tag)} characters, at most {TAG_MAX_LENGTH})")
    if _TAG_RE.fullmatch(tag) is None:
        raise invalid(
            "the tag must consist of letters, digits, '_', '.' or '-' "
            "and must not start with '.' or '-'"
        )


def _check_digest(digest: str, invalid: _Invalid) -> None:
    algorithm, colon, hex_part = digest.partition(":")
    if not colon or _ALGORITHM_RE.fullmatch(algorithm) is None:
        raise invalid("the digest after '@' must have the form algorithm:hex, e.g. sha256:<hex>")
    expected = _KNOWN_DIGEST_LENGTHS.get(algorithm)
    if expected is not None:
        if len(hex_part) != expected:
            raise invalid(
                f"a {algorithm} digest must have exactly {expected} hexadecimal characters, "
                f"not {len(hex_part)}"
            )
        if _LOWER_HEX_RE.fullmatch(hex_part) is None:
            raise invalid(f"a {algorithm} digest must be lowercase hexadecimal (0-9, a-f)")
    elif _HEX_RE.fullmatch(hex_part) is None:
        raise invalid("the digest must end in at least 32 hexadecimal characters")
