"""OCI and Docker v2 manifests and indexes: media types, and the fields kubeupdate reads.

An *index* (OCI image index, Docker manifest list) lists one manifest per
platform; a *manifest* (OCI image manifest, Docker v2 schema 2) names a
config blob and layers. Both kinds share the same JSON shape for what we read,
so one parser serves the four media types. Docker's schema 1 is not accepted
(registries stopped serving it; we do not ask for it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from kubeupdate.registry.platforms import Platform

OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"

INDEX_TYPES: Final = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
#: The ``Accept`` header of a manifest request: every kind we can read, indexes first.
ACCEPT: Final = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])


@dataclass(frozen=True)
class Descriptor:
    """A pointer to content: what it is, its digest and size, and optional extras."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None

    @classmethod
    def from_json(cls, value: Any) -> Descriptor:
        if not isinstance(value, Mapping):
            raise ValueError("a descriptor must be an object")
        media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
        if not isinstance(media_type, str) or not isinstance(digest, str):
            raise ValueError("a descriptor needs a mediaType and a digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"the descriptor of {digest} has no valid size")
        annotations = value.get("annotations") or {}
        if not isinstance(annotations, Mapping) or not all(
            isinstance(v, str) for v in annotations.values()
        ):
            raise ValueError(f"the annotations of {digest} must map strings to strings")
        artifact_type = value.get("artifactType")
        return cls(
            media_type,
            digest,
            size,
            Platform.from_json(value.get("platform")),
            dict(annotations),
            artifact_type if isinstance(artifact_type, str) else None,
        )


@dataclass(frozen=True)
class Manifest:
    """A manifest or an index; ``media_type`` says which (see :attr:`is_index`)."""

    media_type: str
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str | None = None

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def platforms(self) -> list[Platform]:
        """The distinct platforms an index offers, sorted; empty for a manifest."""
        return sorted({d.platform for d in self.manifests if d.platform is not None})


def parse_manifest(body: bytes, content_type: str | None) -> Manifest:
    """Parse a manifest or an index; ValueError with a sentence if it is neither.

    The ``mediaType`` field wins over the Content-Type header when both are
    present (registries sometimes answer ``application/json``).
    """
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise ValueError("the manifest is not JSON") from exc
    if not isinstance(value, Mapping):
        raise ValueError("the manifest is not a JSON object")
    declared = value.get("mediaType")
    media_type = declared if isinstance(declared, str) and declared else _bare(content_type)
    if not media_type and "manifests" in value:
        media_type = OCI_INDEX  # the OCI spec lets mediaType be absent
    elif not media_type and "config" in value:
        media_type = OCI_MANIFEST
    if media_type not in INDEX_TYPES | MANIFEST_TYPES:
        raise ValueError(f"the manifest has the unsupported media type {media_type!r}")
    if value.get("schemaVersion") != 2:
        raise ValueError("the manifest is not schemaVersion 2")
    annotations = value.get("annotations") or {}
    if not isinstance(annotations, Mapping):
        raise ValueError("the manifest's annotations must be an object")
    subject = value.get("subject")
    artifact_type = value.get("artifactType")
    common: dict[str, Any] = {
        "annotations": dict(annotations),
        "subject": Descriptor.from_json(subject) if subject is not None else None,
        "artifact_type": artifact_type if isinstance(artifact_type, str) else None,
    }
    if media_type in INDEX_TYPES:
        entries = value.get("manifests")
        if not isinstance(entries, list):
            raise ValueError("the index has no 'manifests' list")
        return Manifest(media_type, manifests=tuple(map(Descriptor.from_json, entries)), **common)
    layers = value.get("layers")
    if not isinstance(layers, list):
        raise ValueError("the manifest has no 'layers' list")
    return Manifest(
        media_type,
        config=Descriptor.from_json(value.get("config")),
        layers=tuple(map(Descriptor.from_json, layers)),
        **common,
    )


def _bare(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()
