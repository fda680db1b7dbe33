"""Where an image lives: the registry's API host, the repository, the tag or digest.

An image reference names Docker Hub as ``docker.io`` (or not at all:
``nginx``), ``docker login`` files its credentials under
``https://index.docker.io/v1/``, and the distribution API answers at
``registry-1.docker.io``. :func:`registry_key` folds every spelling into one key
(``docker.io``) for lookups, with :func:`kubeupdate.images.canonical_registry`,
the one place that knows Docker Hub's aliases (the policy uses it too);
:func:`api_host` maps the key to the host the HTTP calls go to. The
repository's ``library/`` prefix comes from
:meth:`kubeupdate.images.ImageReference.normalized_reference`, not from here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

from kubeupdate.images import DEFAULT_REGISTRY, ImageReference, canonical_registry

DOCKER_HUB_API_HOST: Final = "registry-1.docker.io"


def registry_key(text: str) -> str:
    """The lookup key of a registry however it is written.

    ``https://index.docker.io/v1/``, ``index.docker.io`` and ``docker.io`` are
    all ``docker.io``; ``https://Registry.Example:5000/`` is
    ``registry.example:5000``. Host names are case-insensitive, paths ignored.
    """
    host = text.strip()
    for scheme in ("https://", "http://"):
        if host.lower().startswith(scheme):
            host = host[len(scheme) :]
    return canonical_registry(host.split("/", 1)[0])


def api_host(key: str) -> str:
    """The host (and port) that serves the distribution API of a registry key."""
    return DOCKER_HUB_API_HOST if key == DEFAULT_REGISTRY else key


def is_loopback(key: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``[::1]``, with or without a port."""
    if key.startswith("["):
        host = key[1 : key.find("]")] if "]" in key else key[1:]
    else:
        host = key.rsplit(":", 1)[0] if key.count(":") == 1 else key
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ImageLocation:
    """An image as the distribution API addresses it.

    ``registry`` is the key (``docker.io``), ``host`` the API host
    (``registry-1.docker.io``), ``repository`` the full path
    (``library/nginx``), and ``reference`` the tag or the digest a manifest
    request names (the digest when the image reference has both: a pull by
    ``tag@digest`` uses the digest).
    """

    registry: str
    host: str
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def of(cls, image: ImageReference) -> ImageLocation:
        full = image.normalized_reference()
        assert full.registry is not None  # normalized_reference always names one
        key = registry_key(full.registry)
        return cls(key, api_host(key), full.repository, image.effective_tag, image.digest)

    @property
    def reference(self) -> str:
        if self.digest is not None:
            return self.digest
        assert self.tag is not None  # effective_tag is set whenever digest is not
        return self.tag

    @property
    def name(self) -> str:
        """``registry/repository``, as people write it in messages."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        separator = "@" if self.digest is not None else ":"
        return f"{self.name}{separator}{self.reference}"
