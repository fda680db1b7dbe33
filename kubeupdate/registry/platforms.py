"""Platforms (``os/architecture[/variant]``) as an image index lists them, and matching.

Names are normalised the way containerd does before comparing, so a rule
written ``linux/x86_64`` matches an index entry ``linux/amd64``, and
``linux/arm64`` matches ``linux/arm64/v8`` (v8 is arm64's only variant in
practice, and images are published both ways). A required platform without a
variant accepts any variant of its architecture (except arm64, which always
means arm64/v8); with one, only that variant.
Index entries for ``unknown/unknown`` (build attestations that buildx adds)
are not platforms and are never listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

DEFAULT_PLATFORMS: Final = ("linux/amd64",)

_ARCHITECTURES: Final = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "i386": "386",
}
# Variants implied by an architecture alias (Debian's names for ARM ABIs).
_IMPLIED_VARIANTS: Final = {"armhf": "v7", "armel": "v6"}
_DEFAULT_VARIANTS: Final = {"arm64": "v8"}


@dataclass(frozen=True, order=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/amd64`` or ``linux/arm/v7``; ValueError with a sentence otherwise."""
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"{text!r} is not a platform: write os/architecture[/variant]")
        return cls.of(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def of(cls, os: str, architecture: str, variant: str | None = None) -> Platform:
        """A normalised platform from the fields of an index entry or an image config."""
        architecture = architecture.lower()
        variant = (variant or "").lower() or _IMPLIED_VARIANTS.get(architecture)
        architecture = _ARCHITECTURES.get(architecture, architecture)
        if variant is None:
            variant = _DEFAULT_VARIANTS.get(architecture)
        return cls(os.lower(), architecture, variant)

    @classmethod
    def from_json(cls, value: Any) -> Platform | None:
        """The platform of an OCI descriptor's ``platform`` or an image config; None if absent."""
        if not isinstance(value, Mapping):
            return None
        os, architecture = value.get("os"), value.get("architecture")
        variant = value.get("variant")
        if not isinstance(os, str) or not isinstance(architecture, str) or not os:
            return None
        if os == "unknown" or architecture == "unknown":
            return None
        return cls.of(os, architecture, variant if isinstance(variant, str) else None)

    def satisfied_by(self, found: Platform) -> bool:
        """True when ``found`` is an image for this (required) platform."""
        if (self.os, self.architecture) != (found.os, found.architecture):
            return False
        return self.variant is None or self.variant == found.variant

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


def missing_platforms(required: Iterable[Platform], found: Sequence[Platform]) -> list[Platform]:
    """The required platforms that no found platform satisfies, in the order required."""
    return [want for want in required if not any(want.satisfied_by(have) for have in found)]
