"""Image references as the kubelet reads them, and its words when it cannot.

kube-apiserver accepts any ``image`` that is not empty and has no leading or
trailing whitespace; the kubelet then parses it with the distribution
project's reference grammar (``ParseNormalizedNamed``: Docker Hub is the
default registry, ``library/`` the default namespace, ``latest`` the default
tag). What it cannot parse leaves the container waiting in
``InvalidImageName``; :func:`parse_reference` raises :class:`InvalidReference`
with the same message for the same input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

DEFAULT_REGISTRY: Final = "docker.io"
_LEGACY_DEFAULT_REGISTRY: Final = "index.docker.io"
_OFFICIAL_NAMESPACE: Final = "library/"
_MAX_NAME_LENGTH: Final = 255

# The grammar of distribution/reference, written out from its documentation.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_REFERENCE: Final = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?")
_IDENTIFIER: Final = re.compile(r"[a-f0-9]{64}")
# go-digest: the algorithms it knows and how long their hex encodings are.
_DIGEST_LENGTHS: Final = {"sha256": 64, "sha384": 96, "sha512": 128}


class InvalidReference(ValueError):
    """An image the kubelet cannot parse; ``str()`` is the kubelet's event and waiting message."""


@dataclass(frozen=True)
class ImageReference:
    """A parsed image: ``docker.io/library/nginx`` with tag ``1.25`` and/or a digest."""

    #: What the Pod spec says, unchanged (messages quote it).
    image: str
    registry: str
    #: The path inside the registry (``library/nginx``).
    path: str
    #: The tag; ``latest`` when neither a tag nor a digest was given.
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        """Registry and path: ``docker.io/library/nginx``."""
        return f"{self.registry}/{self.path}"

    @property
    def normalized(self) -> str:
        """The full reference a container runtime reports: ``docker.io/library/nginx:1.25``."""
        text = self.repository
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_reference(image: str) -> ImageReference:
    """Parses ``image`` as the kubelet does, or raises :class:`InvalidReference`."""
    try:
        return _parse_normalized(image)
    except ValueError as exc:
        raise InvalidReference(
            f"Failed to apply default image tag {go_quote(image)}: couldn't parse image name"
            f" {go_quote(image)}: {exc}"
        ) from None


def _parse_normalized(image: str) -> ImageReference:
    if _IDENTIFIER.fullmatch(image):
        raise ValueError(
            f"invalid repository name ({image}), cannot specify 64-byte hexadecimal strings"
        )
    registry, remainder = _split_registry(image)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise ValueError(f"invalid reference format: repository name ({remote}) must be lowercase")
    full = f"{registry}/{remainder}"
    match = _REFERENCE.fullmatch(full)
    if match is None:
        if _REFERENCE.fullmatch(full.lower()):
            raise ValueError("repository name must be lowercase")
        raise ValueError("invalid reference format")
    name, tag, digest = match.groups()
    path = name.split("/", 1)[1]
    if len(path) > _MAX_NAME_LENGTH:
        raise ValueError(f"repository name must not be more than {_MAX_NAME_LENGTH} characters")
    if digest is not None:
        _check_digest(digest)
    if tag is None and digest is None:
        tag = "latest"
    return ImageReference(image, registry, path, tag, digest)


def _split_registry(image: str) -> tuple[str, str]:
    """splitDockerDomain: the first component is a registry only if it looks like a host."""
    first, slash, rest = image.partition("/")
    looks_like_host = any(c in first for c in ".:") or first == "localhost"
    if not slash or (not looks_like_host and first.lower() == first):
        registry, remainder = DEFAULT_REGISTRY, image
    else:
        registry, remainder = first, rest
    if registry == _LEGACY_DEFAULT_REGISTRY:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in remainder:
        remainder = _OFFICIAL_NAMESPACE + remainder
    return registry, remainder


def _check_digest(digest: str) -> None:
    algorithm, _, encoded = digest.partition(":")
    length = _DIGEST_LENGTHS.get(algorithm)
    if length is None:
        raise ValueError("unsupported digest algorithm")
    if len(encoded) != length:
        raise ValueError("invalid checksum digest length")
    if not re.fullmatch(r"[a-f0-9]+", encoded):
        raise ValueError("invalid checksum digest format")


def go_quote(text: str) -> str:
    """Go's ``%q`` for the printable strings a Pod spec holds."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
