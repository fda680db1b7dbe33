"""The registry options of a policy's image rule: what the image's registry must confirm.

An image rule (:mod:`kubeupdate.auth.policy`) may ask that, before a write, the
image is looked up in its registry (:mod:`kubeupdate.image_checks`)::

    images:
      - repositories: [ghcr.io/acme/web]
        registry: check              # the image must exist (tag or digest)
        digest: pin                  # write repo:tag@sha256:... as resolved at the check
        platforms: [linux/amd64, linux/arm64]   # an index must offer each
        signature:                   # signed (cosign's format, or a sigstore bundle) by
          keys: [keys/release.pub]   #   one of these public keys (PEM file or inline PEM)
          identities:                #   or one of these keyless identities,
            - issuer: https://token.actions.githubusercontent.com
              subject: https://github.com/acme/web/.github/workflows/release.yml@refs/heads/main
          ca: keys/fulcio-root.pem   #   whose certificates chain to this CA

Any of ``digest: pin``, ``platforms`` and ``signature`` implies ``registry:
check``. Without ``platforms``, the server's (``--registry-platform``, by
default ``linux/amd64``) are required; ``platforms: []`` requires none. Key and
CA files are read when the policy is loaded (and at each reload); a relative
path is relative to the policy file's folder. Errors are ValueErrors naming
the place in the file; the policy turns them into its own error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from kubeupdate.auth.reloading import check_ownership
from kubeupdate.image_checks import ImageCheck
from kubeupdate.registry.platforms import Platform
from kubeupdate.registry.signatures import (
    CertificateAuthority,
    Identity,
    PublicKey,
    SignatureRule,
)

#: The image-rule keys read here (``digest: pin`` is read with the rest of ``digest``).
REGISTRY_OPTION_KEYS: Final = ("registry", "platforms", "signature")
REGISTRY_VALUES: Final = ("check",)
SIGNATURE_KEYS: Final = ("keys", "identities", "ca")
IDENTITY_KEYS: Final = ("issuer", "subject")
_PEM: Final = "-----BEGIN"


@dataclass(frozen=True)
class RegistryOptions:
    """An image rule's registry options: the check they ask for, and how they were written."""

    check: ImageCheck
    #: The options in normalised form, for ``kubeupdate policy check``.
    document: Mapping[str, Any] = field(default_factory=dict)


def registry_options(
    item: Mapping[str, Any], where: str, *, pin: bool, base: Path | None
) -> RegistryOptions | None:
    """The options of the image rule ``item`` (at ``where``); None when it asks for no check."""
    asked = [key for key in REGISTRY_OPTION_KEYS if key in item]
    if not asked and not pin:
        return None
    if "registry" in item and item["registry"] not in REGISTRY_VALUES:
        raise ValueError(f"{where}.registry must be 'check' (the image must exist in its registry)")
    document: dict[str, Any] = {"registry": "check"}
    platforms = None
    if "platforms" in item:
        platforms = _platforms(item["platforms"], f"{where}.platforms")
        document["platforms"] = [str(p) for p in platforms]
    signature = None
    if "signature" in item:
        signature, document["signature"] = _signature(item["signature"], f"{where}.signature", base)
    return RegistryOptions(ImageCheck(pin=pin, platforms=platforms, signature=signature), document)


def _platforms(value: Any, where: str) -> tuple[Platform, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list such as [linux/amd64, linux/arm64]")
    platforms = []
    for index, text in enumerate(value):
        if not isinstance(text, str):
            raise ValueError(f"{where}[{index}] must be a string such as linux/amd64")
        try:
            platforms.append(Platform.parse(text))
        except ValueError as exc:
            raise ValueError(f"{where}[{index}]: {exc}") from None
    return tuple(platforms)


def _signature(value: Any, where: str, base: Path | None) -> tuple[SignatureRule, dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a mapping with 'keys' and/or 'identities' (and 'ca')")
    unknown = set(value) - set(SIGNATURE_KEYS)
    if unknown:
        raise ValueError(f"{where} has unknown keys: {', '.join(sorted(map(str, unknown)))}")
    key_texts = _texts(value.get("keys", []), f"{where}.keys")
    identities = _identities(value.get("identities", []), f"{where}.identities")
    if not key_texts and not identities:
        raise ValueError(f"{where} needs 'keys' (public keys) or 'identities' (keyless signers)")
    ca_text = value.get("ca")
    if identities and ca_text is None:
        raise ValueError(
            f"{where}.identities need 'ca': the CA (a PEM file) their certificates chain to"
        )
    if ca_text is not None and not identities:
        raise ValueError(f"{where}.ca only means something with 'identities'")
    keys = tuple(
        _public_key(text, f"{where}.keys[{index}]", base) for index, text in enumerate(key_texts)
    )
    authority = None
    if ca_text is not None:
        if not isinstance(ca_text, str) or not ca_text:
            raise ValueError(f"{where}.ca must be a PEM file's path, or PEM text")
        authority = _authority(ca_text, f"{where}.ca", base)
    document: dict[str, Any] = {}
    if key_texts:
        document["keys"] = key_texts
    if identities:
        document["identities"] = [{"issuer": i.issuer, "subject": i.subject} for i in identities]
        document["ca"] = ca_text
    return SignatureRule(keys=keys, identities=identities, authority=authority), document


def _identities(value: Any, where: str) -> tuple[Identity, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list of {{issuer, subject}}")
    identities = []
    for index, entry in enumerate(value):
        place = f"{where}[{index}]"
        if not isinstance(entry, Mapping) or set(entry) != set(IDENTITY_KEYS):
            raise ValueError(
                f"{place} must have exactly 'issuer' (the OIDC issuer, e.g. "
                "https://token.actions.githubusercontent.com) and 'subject' (the signer's "
                "e-mail or workflow URI)"
            )
        issuer, subject = entry["issuer"], entry["subject"]
        if not isinstance(issuer, str) or not issuer or not isinstance(subject, str) or not subject:
            raise ValueError(f"{place}: 'issuer' and 'subject' must be non-empty strings")
        identities.append(Identity(issuer, subject))
    return tuple(identities)


def _public_key(text: str, where: str, base: Path | None) -> PublicKey:
    try:
        if text.lstrip().startswith(_PEM):
            return PublicKey.from_pem(text.encode(), f"inline key {where}")
        path = _path(text, base)
        return PublicKey.from_pem(_owned_bytes(path, "the signing key"), str(path))
    except ValueError as exc:  # ConfigurationError is a ValueError
        raise ValueError(f"{where}: {exc}") from None


def _authority(text: str, where: str, base: Path | None) -> CertificateAuthority:
    try:
        if text.lstrip().startswith(_PEM):
            return CertificateAuthority.from_pem(text.encode(), f"inline CA {where}")
        path = _path(text, base)
        return CertificateAuthority.from_pem(_owned_bytes(path, "the CA file"), str(path))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _path(text: str, base: Path | None) -> Path:
    path = Path(text)
    return path if path.is_absolute() or base is None else base / path


def _owned_bytes(path: Path, what: str) -> bytes:
    """A key or CA file's content. Whoever may change it decides which images deploy,
    so, as for the policy, only its owner (or root) may write it."""
    try:
        with path.open("rb") as stream:
            check_ownership(path, os.fstat(stream.fileno()))
            return stream.read()
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror}") from None


def _texts(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where} must be a list of PEM files (or PEM texts)")
    return list(value)
