"""The registry check: does this image exist, for these platforms, signed by this signer?

:meth:`ImageVerifier.check` is the one entry point the set path calls before
any Kubernetes call. It answers a :class:`VerifiedImage` (the digest to pin,
the platforms found, who signed) or raises a
:class:`~kubeupdate.registry.errors.RegistryError` that says why not.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from cryptography import x509

from kubeupdate.images import ImageReference
from kubeupdate.registry import errors
from kubeupdate.registry.client import RegistryClient
from kubeupdate.registry.endpoints import ImageLocation
from kubeupdate.registry.manifests import INDEX_TYPES
from kubeupdate.registry.platforms import DEFAULT_PLATFORMS, Platform, missing_platforms
from kubeupdate.registry.resolution import DEFAULT_TTL, Resolver
from kubeupdate.registry.signatures import (
    BUNDLE_MEDIA_PREFIX,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    IN_TOTO_PAYLOAD,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
    VERIFYING_KEY_TYPES,
    Bundle,
    SignatureRule,
    SignatureVerdict,
    VerifyingKey,
    certificate_identity,
    check_in_toto_statement,
    check_simple_signing,
    load_certificate_pem,
    referrers_tag,
    signature_tag,
    verify_signature,
)

log = logging.getLogger(__name__)

# The artifact type sigstore-js and cosign give a bundle attached as a referrer.
_BUNDLE_ARTIFACT = "application/vnd.dev.sigstore.bundle.v0.3+json"


@dataclass(frozen=True)
class Requirements:
    """What an image must satisfy besides existing.

    ``platforms``: each must be offered (by an index, or by a single-platform
    image's config); empty means no platform check. ``signature``: a rule, or
    None for no signature check.
    """

    platforms: tuple[Platform, ...] = tuple(Platform.parse(p) for p in DEFAULT_PLATFORMS)
    signature: SignatureRule | None = None


@dataclass(frozen=True)
class VerifiedImage:
    """What the registry check established about one image reference."""

    image: ImageReference
    location: ImageLocation
    digest: str
    media_type: str
    platforms: tuple[Platform, ...]  # found; empty when no platform was required
    signature: SignatureVerdict | None

    @property
    def pinned(self) -> str:
        """The reference as written with the digest added: ``web:1.4.2@sha256:...``.

        The tag stays for people, the digest is what kubelet pulls. A reference
        that already names a digest is returned unchanged.
        """
        if self.image.digest is not None:
            return str(self.image)
        return f"{self.image}@{self.digest}"


class ImageVerifier:
    """Checks images in their registries; one per process, shared by every call."""

    def __init__(self, client: RegistryClient, *, ttl: float = DEFAULT_TTL) -> None:
        self._client = client
        self._resolver = Resolver(client, ttl=ttl)

    async def __aenter__(self) -> ImageVerifier:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._client.close()

    async def check(
        self,
        image: ImageReference,
        requirements: Requirements | None = None,
        *,
        deadline: float | None = None,
    ) -> VerifiedImage:
        """Resolve ``image`` and check ``requirements``; RegistryError if it fails."""
        requirements = requirements or Requirements()
        location = ImageLocation.of(image)
        resolution = await self._resolver.resolve(location, deadline=deadline)
        found: tuple[Platform, ...] = ()
        if requirements.platforms:
            found = await self._platforms(location, resolution.digest, deadline)
            missing = missing_platforms(requirements.platforms, found)
            if missing:
                raise errors.PlatformMissing(
                    f"image {location} has no image for "
                    f"{', '.join(map(str, missing))}; it has "
                    f"{', '.join(map(str, found)) or 'no platform information'}",
                    missing=[str(p) for p in missing],
                    found=[str(p) for p in found],
                )
        verdict = None
        if requirements.signature is not None:
            verdict = await self._signature(
                location, resolution.digest, requirements.signature, deadline
            )
        return VerifiedImage(
            image, location, resolution.digest, resolution.media_type, found, verdict
        )

    async def _platforms(
        self, location: ImageLocation, digest: str, deadline: float | None
    ) -> tuple[Platform, ...]:
        fetched = await self._resolver.manifest(location, digest, deadline=deadline)
        if fetched.manifest.is_index:
            return tuple(fetched.manifest.platforms)
        config = fetched.manifest.config
        if config is None:
            return ()
        data = await self._resolver.blob(location, config.digest, deadline=deadline)
        try:
            platform = Platform.from_json(json.loads(data))
        except ValueError:
            platform = None
        return (platform,) if platform is not None else ()

    async def _signature(
        self, location: ImageLocation, digest: str, rule: SignatureRule, deadline: float | None
    ) -> SignatureVerdict:
        """A signature of ``digest`` that ``rule`` accepts, or SignatureMissing/Invalid."""
        seen: list[str] = []
        verdict = await self._cosign_signatures(location, digest, rule, seen, deadline)
        if verdict is None and rule.identities:
            verdict = await self._bundles(location, digest, rule, seen, deadline)
        if verdict is not None:
            return verdict
        where = f"{location.name}@{digest}"
        if not seen:
            raise errors.SignatureMissing(
                f"image {where} is not signed: no cosign signature "
                f"(tag {signature_tag(digest)})"
                + (" nor sigstore bundle" if rule.identities else "")
                + f" is attached; expected a signature by {rule.expected()}"
            )
        raise errors.SignatureInvalid(
            f"image {where} has no signature by {rule.expected()}; found: " + "; ".join(seen),
            found=seen,
        )

    async def _cosign_signatures(
        self,
        location: ImageLocation,
        digest: str,
        rule: SignatureRule,
        seen: list[str],
        deadline: float | None,
    ) -> SignatureVerdict | None:
        signatures = replace(location, tag=signature_tag(digest), digest=None)
        try:
            resolution = await self._resolver.resolve(signatures, deadline=deadline)
        except errors.ImageNotFound:
            return None
        fetched = await self._resolver.manifest(signatures, resolution.digest, deadline=deadline)
        for layer in fetched.manifest.layers:
            signature_text = layer.annotations.get(SIGNATURE_ANNOTATION)
            if layer.media_type != SIMPLE_SIGNING or signature_text is None:
                continue
            payload = await self._resolver.blob(location, layer.digest, deadline=deadline)
            try:
                signature = _base64(signature_text)
            except ValueError as exc:
                seen.append(f"a cosign signature that does not count: {exc}")
                continue
            # The signature is verified before the payload is read, so what a
            # refusal says about the payload was said by a known signer.
            verdict: SignatureVerdict | str | None = None
            for key in rule.keys:
                if key.verifies(signature, payload):
                    verdict = SignatureVerdict(f"key {key.name} ({key.fingerprint})", "cosign")
                    break
            certificate_pem = layer.annotations.get(CERTIFICATE_ANNOTATION)
            if verdict is None and certificate_pem is not None and rule.identities:
                verdict = _keyless(
                    rule, certificate_pem, layer.annotations.get(CHAIN_ANNOTATION, ""),
                    signature, payload,
                )  # fmt: skip
            elif verdict is None and certificate_pem is not None:
                verdict = "a keyless cosign signature (the rule names keys only)"
            elif verdict is None:
                verdict = "a cosign signature by another key"
            if isinstance(verdict, SignatureVerdict):
                try:
                    check_simple_signing(payload, digest)
                except ValueError as exc:
                    verdict = f"a cosign signature by {verdict.signer} that does not count: {exc}"
                else:
                    return verdict
            seen.append(verdict)
        return None

    async def _bundles(
        self,
        location: ImageLocation,
        digest: str,
        rule: SignatureRule,
        seen: list[str],
        deadline: float | None,
    ) -> SignatureVerdict | None:
        descriptors = await self._resolver.referrers(
            location, digest, _BUNDLE_ARTIFACT, deadline=deadline
        )
        if descriptors is None:
            # No referrers API (distribution 2.8): the referrers tag schema's index.
            listing = replace(location, tag=referrers_tag(digest), digest=None)
            try:
                resolution = await self._resolver.resolve(listing, deadline=deadline)
            except errors.ImageNotFound:
                return None
            if resolution.media_type not in INDEX_TYPES:
                return None
            index = await self._resolver.manifest(listing, resolution.digest, deadline=deadline)
            descriptors = list(index.manifest.manifests)
        for descriptor in descriptors:
            if not (descriptor.artifact_type or "").startswith(BUNDLE_MEDIA_PREFIX):
                continue
            artifact = await self._resolver.manifest(location, descriptor.digest, deadline=deadline)
            if artifact.manifest.subject is not None and artifact.manifest.subject.digest != digest:
                continue
            for layer in artifact.manifest.layers:
                if not layer.media_type.startswith(BUNDLE_MEDIA_PREFIX):
                    continue
                data = await self._resolver.blob(location, layer.digest, deadline=deadline)
                outcome = _bundle_verdict(rule, data, digest)
                if isinstance(outcome, SignatureVerdict):
                    return outcome
                seen.append(outcome)
        return None


def _keyless(
    rule: SignatureRule, certificate_pem: str, chain_pem: str, signature: bytes, payload: bytes
) -> SignatureVerdict | str:
    """The verdict for a keyless cosign signature, or why it does not count."""
    try:
        certificate = load_certificate_pem(certificate_pem)[0]
        chain = load_certificate_pem(chain_pem) if chain_pem else ()
    except (ValueError, IndexError):
        return "a keyless cosign signature with an unreadable certificate"
    return _judge_certificate(
        rule, certificate, chain, "cosign", lambda key: verify_signature(key, signature, payload)
    )


def _bundle_verdict(rule: SignatureRule, data: bytes, digest: str) -> SignatureVerdict | str:
    """The verdict for a sigstore bundle, or why it does not count."""
    try:
        bundle = Bundle.parse(data)
    except ValueError as exc:
        return f"a sigstore bundle kubeupdate cannot verify: {exc}"
    if bundle.payload_type != IN_TOTO_PAYLOAD:
        return f"a sigstore bundle with the payload type {bundle.payload_type!r}"
    verdict = _judge_certificate(
        rule, bundle.certificate, bundle.chain, "sigstore-bundle", bundle.signed_by
    )
    if isinstance(verdict, SignatureVerdict):
        # Read only once the signer is known (see _cosign_signatures).
        try:
            check_in_toto_statement(bundle.payload, digest)
        except ValueError as exc:
            return f"a sigstore bundle by {verdict.signer} that does not count: {exc}"
    return verdict


def _judge_certificate(
    rule: SignatureRule,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate],
    kind: str,
    signed_by: Callable[[VerifyingKey], bool],
) -> SignatureVerdict | str:
    """Accept a certificate-signed signature whose chain, signature and identity all hold.

    The identity is compared last, so a refusal names the signer only once the
    certificate is known to be genuine.
    """
    identity = certificate_identity(certificate)
    if identity is None:
        return f"a keyless {kind} signature whose certificate names no issuer and subject"
    assert rule.authority is not None  # SignatureRule requires it with identities
    try:
        rule.authority.verify(certificate, chain)
    except ValueError as exc:
        return f"a keyless {kind} signature claiming {identity}, but {exc}"
    key = certificate.public_key()
    if not isinstance(key, VERIFYING_KEY_TYPES) or not signed_by(key):
        return (
            f"a keyless {kind} signature claiming {identity} that its certificate does not verify"
        )
    if identity not in rule.identities:
        return f"a {kind} signature by {identity}"
    return SignatureVerdict(f"identity {identity}", kind)


def _base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError("its signature annotation is not base64") from exc
