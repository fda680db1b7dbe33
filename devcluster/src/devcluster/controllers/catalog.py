"""Which images exist: what the devcluster's kubelet finds when it pulls.

A real kubelet asks a registry; the devcluster's asks an :class:`ImageCatalog`.
The default, :class:`StaticCatalog`, knows some public repositories and the
tags they have (``catalog.yaml`` beside this module: the demo's images, what
the tests deploy, and common ones such as nginx 1.20-1.30 and busybox 1.x).
A tag a known repository lacks fails to pull, as a registry's "not found"
would: ``nginx:does-not-exist`` waits in ErrImagePull / ImagePullBackOff.
A repository the catalogue does not know exists with every tag, unless
``unknown_repositories`` is ``"missing"`` (then it fails as Docker Hub fails
for a repository that does not exist). Tags are globs (``1.2[0-9]``).
Digests are not checked: a reference pinned to a digest exists when its
repository and tag (if any) do.

:class:`~devcluster.controllers.failures.FailureRules` are consulted first:
a rule decides whatever the catalogue says (``-bad`` tags fail, ``crash``
tags exist and crash).

Another catalogue plugs in behind the same protocol, e.g. one that asks a
real OCI registry: ``resolve`` must answer at once and never block (it runs
on the server's event loop), so such a catalogue answers from a cache,
starts a lookup elsewhere (a thread, a task) on a miss and answers
:data:`PENDING` meanwhile; the kubelet keeps the container in
ContainerCreating and asks again a simulated second later. When a lookup
completes, the catalogue bumps ``generation`` so that every Pod is looked at
again.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final, Literal, Protocol

import yaml

from devcluster.controllers.references import (
    DEFAULT_REGISTRY,
    ImageReference,
    InvalidReference,
    go_quote,
    parse_reference,
)

#: What a catalogue says of a repository it does not know.
UnknownRepositories = Literal["exist", "missing"]


@dataclass(frozen=True)
class Found:
    """The image exists: its manifest digest and size, as a registry would report them."""

    digest: str
    size: int


@dataclass(frozen=True)
class Missing:
    """The image cannot be pulled; ``error`` is the container runtime's message."""

    error: str


@dataclass(frozen=True)
class Pending:
    """Not known yet: the kubelet keeps pulling and asks again."""


PENDING: Final = Pending()

Resolution = Found | Missing | Pending


class ImageCatalog(Protocol):
    """Answers whether an image can be pulled. ``resolve`` must not block."""

    @property
    def generation(self) -> int:
        """Grows whenever earlier answers may have changed."""
        ...

    def resolve(self, reference: ImageReference) -> Resolution: ...


def not_found(reference: ImageReference) -> Missing:
    """containerd's error when the registry has no such tag (or digest)."""
    ref = reference.normalized
    return Missing(
        f"rpc error: code = NotFound desc = failed to pull and unpack image {go_quote(ref)}:"
        f" failed to resolve reference {go_quote(ref)}: {ref}: not found"
    )


def access_denied(reference: ImageReference) -> Missing:
    """containerd's error when Docker Hub has no such repository (it answers 401, not 404)."""
    ref = reference.normalized
    return Missing(
        f"rpc error: code = Unknown desc = failed to pull and unpack image {go_quote(ref)}:"
        f" failed to resolve reference {go_quote(ref)}: pull access denied, repository does not"
        " exist or may require authorization: server message: insufficient_scope:"
        " authorization failed"
    )


def found(reference: ImageReference) -> Found:
    """A made-up but stable digest and size for an image that exists."""
    seed = hashlib.sha256(f"{reference.repository}:{reference.tag}".encode()).digest()
    digest = reference.digest or "sha256:" + hashlib.sha256(seed).hexdigest()
    size = 5_000_000 + int.from_bytes(seed[:4], "big") % 75_000_000
    return Found(digest, size)


class StaticCatalog:
    """Known repositories and the tags (globs) each one has."""

    def __init__(
        self,
        repositories: Mapping[str, Iterable[str]] | None = None,
        *,
        unknown_repositories: UnknownRepositories = "exist",
    ) -> None:
        self._tags: dict[str, tuple[str, ...]] = {}
        self._unknown: UnknownRepositories = "exist"
        self._generation = 0
        self.unknown_repositories = unknown_repositories
        for repository, tags in (repositories or {}).items():
            self.add(repository, *tags)

    @classmethod
    def default(cls) -> StaticCatalog:
        """The catalogue shipped with the devcluster (``catalog.yaml``)."""
        text = resources.files(__package__).joinpath("catalog.yaml").read_text("utf-8")
        return cls._from_yaml(text, "catalog.yaml")

    @classmethod
    def load(cls, path: Path) -> StaticCatalog:
        """A catalogue file in the format of ``catalog.yaml``; ValueError when it is not one."""
        return cls._from_yaml(path.read_text("utf-8"), str(path))

    @classmethod
    def _from_yaml(cls, text: str, origin: str) -> StaticCatalog:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{origin}: not YAML: {exc}") from None
        if not isinstance(document, dict):
            raise ValueError(f"{origin}: expected a mapping with 'repositories'")
        repositories = document.get("repositories") or {}
        unknown = document.get("unknownRepositories", "exist")
        if not isinstance(repositories, dict) or not all(
            isinstance(tags, list) and all(isinstance(t, str) for t in tags)
            for tags in repositories.values()
        ):
            raise ValueError(f"{origin}: 'repositories' must map repositories to lists of tags")
        if unknown not in ("exist", "missing"):
            raise ValueError(f"{origin}: 'unknownRepositories' must be 'exist' or 'missing'")
        try:
            return cls(repositories, unknown_repositories=unknown)
        except ValueError as exc:
            raise ValueError(f"{origin}: {exc}") from None

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def unknown_repositories(self) -> UnknownRepositories:
        return self._unknown

    @unknown_repositories.setter
    def unknown_repositories(self, value: UnknownRepositories) -> None:
        if value not in ("exist", "missing"):
            raise ValueError(f"unknown_repositories must be 'exist' or 'missing', not {value!r}")
        self._unknown = value
        self._generation += 1

    @property
    def repositories(self) -> dict[str, tuple[str, ...]]:
        """Known repositories (``docker.io/library/nginx``) and their tag globs."""
        return dict(self._tags)

    def add(self, repository: str, *tags: str) -> None:
        """Makes ``repository`` known with these tags (added to those it had)."""
        name = _repository_name(repository)
        self._tags[name] = (*self._tags.get(name, ()), *tags)
        self._generation += 1

    def remove(self, repository: str) -> None:
        """Forgets a repository (it then counts as unknown)."""
        self._tags.pop(_repository_name(repository), None)
        self._generation += 1

    def resolve(self, reference: ImageReference) -> Resolution:
        tags = self._tags.get(reference.repository)
        if tags is None:
            if self._unknown == "exist":
                return found(reference)
            if reference.registry == DEFAULT_REGISTRY:
                return access_denied(reference)
            return not_found(reference)
        if reference.tag is not None and not any(
            fnmatch.fnmatchcase(reference.tag, pattern) for pattern in tags
        ):
            return not_found(reference)
        return found(reference)


def _repository_name(repository: str) -> str:
    """``nginx`` -> ``docker.io/library/nginx``, by the kubelet's rules."""
    _, slash, rest = repository.partition("/")
    path = rest if slash else repository  # a port may follow the registry, not the path
    if not repository or "@" in repository or ":" in path:
        raise ValueError(f"a repository has neither a tag nor a digest: {repository!r}")
    try:
        return parse_reference(repository).repository
    except InvalidReference:
        raise ValueError(f"not a repository name: {repository!r}") from None
