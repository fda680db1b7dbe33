"""Image signatures in the formats sigstore's tools write to OCI registries, verified offline.

Two formats, both attached to the image's repository:

**cosign's signature tag** (``cosign sign``, the format admission controllers
read). The tag ``sha256-<hex>.sig`` holds a manifest with one layer per
signature; each layer is a *simple signing* payload (media type
``application/vnd.dev.cosign.simplesigning.v1+json``)::

    {"critical": {"identity": {"docker-reference": "registry/repo"},
                  "image": {"docker-manifest-digest": "sha256:..."},
                  "type": "cosign container image signature"},
     "optional": {...}}

and the layer's annotation ``dev.cosignproject.cosign/signature`` is the
base64 signature of the payload bytes: ECDSA or RSA PKCS#1 v1.5 over SHA-256,
or Ed25519 (what cosign's ``LoadVerifier(key, SHA256)`` accepts). A keyless
signature adds ``dev.sigstore.cosign/certificate`` (PEM of the signing
certificate) and ``dev.sigstore.cosign/chain``.

**sigstore bundles** (``sigstore attach`` of sigstore-js, cosign 2.4+'s
``--new-bundle-format``): an OCI artifact whose ``subject`` is the image and
whose one layer is a bundle (``application/vnd.dev.sigstore.bundle.v0.3+json``)
with the signing certificate and a DSSE envelope around an in-toto statement
naming the image digest. Found through the referrers API, or the referrers tag
``sha256-<hex>`` where the registry lacks it.

What is checked is the same as ``cosign verify --key`` / ``--certificate-identity``
for each: the signature over the exact bytes, that the payload names *this*
digest, and for keyless signatures the certificate chain to the operator's CA
and the identity (issuer + subject) in the certificate.

Not done here: transparency-log (Rekor) inclusion and SCT checks, which the
public Sigstore instance's short-lived certificates need; see
:class:`CertificateAuthority`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from kubeupdate.registry.errors import ConfigurationError

SIMPLE_SIGNING: Final = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION: Final = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION: Final = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION: Final = "dev.sigstore.cosign/chain"
SIMPLE_SIGNING_TYPE: Final = "cosign container image signature"
BUNDLE_MEDIA_PREFIX: Final = "application/vnd.dev.sigstore.bundle"
IN_TOTO_PAYLOAD: Final = "application/vnd.in-toto+json"

# Fulcio's certificate extensions for the OIDC issuer (1.1: raw text, deprecated;
# 1.8: a DER UTF8String). https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md
FULCIO_ISSUER_V1: Final = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
FULCIO_ISSUER_V2: Final = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")

VerifyingKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
VERIFYING_KEY_TYPES: Final = (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)


def signature_tag(digest: str) -> str:
    """cosign's tag for the signatures of a digest: ``sha256:ab..`` → ``sha256-ab...sig``."""
    return digest.replace(":", "-", 1) + ".sig"


def referrers_tag(digest: str) -> str:
    """The OCI referrers tag schema's fallback tag: ``sha256:ab..`` → ``sha256-ab..``."""
    return digest.replace(":", "-", 1)


@dataclass(frozen=True)
class PublicKey:
    """A signer's public key; ``name`` says which one in messages (e.g. its file)."""

    name: str
    key: VerifyingKey = field(repr=False)

    @classmethod
    def from_pem(cls, data: bytes, name: str) -> PublicKey:
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise ConfigurationError(f"the signing key {name} is not a PEM public key") from exc
        if not isinstance(key, VERIFYING_KEY_TYPES):
            raise ConfigurationError(
                f"the signing key {name} is a {type(key).__name__}; cosign keys are ECDSA, "
                "RSA or Ed25519"
            )
        return cls(name, key)

    @classmethod
    def from_file(cls, path: Path) -> PublicKey:
        try:
            return cls.from_pem(path.read_bytes(), str(path))
        except OSError as exc:
            raise ConfigurationError(f"cannot read the signing key {path}: {exc}") from exc

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER SubjectPublicKeyInfo, shortened: enough to tell keys apart."""
        der = self.key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return "sha256:" + hashlib.sha256(der).hexdigest()[:16]

    def verifies(self, signature: bytes, payload: bytes) -> bool:
        return verify_signature(self.key, signature, payload)


def verify_signature(key: VerifyingKey, signature: bytes, payload: bytes) -> bool:
    """True when ``signature`` is ``key``'s signature of ``payload`` as cosign makes it."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Identity:
    """A keyless signer: the OIDC issuer and the subject Fulcio wrote into the certificate.

    The subject is the certificate's SAN: an e-mail address, or a URI such as
    ``https://github.com/acme/web/.github/workflows/release.yml@refs/heads/main``.
    Both must match exactly.
    """

    issuer: str
    subject: str

    def __str__(self) -> str:
        return f"{self.subject} (issuer {self.issuer})"


@dataclass(frozen=True)
class CertificateAuthority:
    """The CA certificates that keyless signing certificates must chain to.

    For a private Fulcio (or any CA the operator runs), whose certificates the
    operator trusts without a transparency log. A certificate is checked at
    the time of verification, as ``cosign verify --insecure-ignore-tlog``
    does, so it must still be valid then; the public Sigstore instance's
    10-minute certificates need the log's signed timestamps instead, which
    :mod:`sigstore` (sigstore-python) verifies: see the registry package's
    docstring for that follow-up.
    """

    certificates: tuple[x509.Certificate, ...]

    @classmethod
    def from_pem(cls, data: bytes, name: str) -> CertificateAuthority:
        try:
            certificates = tuple(x509.load_pem_x509_certificates(data))
        except ValueError as exc:
            raise ConfigurationError(f"the CA file {name} holds no PEM certificate") from exc
        return cls(certificates)

    def verify(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate] = (),
        *,
        at: dt.datetime | None = None,
    ) -> None:
        """ValueError with a sentence unless ``leaf`` chains to these CAs and may sign code."""
        # Fulcio certificates carry the code-signing EKU, not client-auth, which a
        # client verifier requires by default: allow any EKU, check code signing below.
        ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
            x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
        )
        ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
        )
        verifier = (
            PolicyBuilder()
            .store(Store(list(self.certificates)))
            .time(at or dt.datetime.now(dt.UTC))
            .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
            .build_client_verifier()
        )
        try:
            verifier.verify(leaf, list(intermediates))
        except VerificationError as exc:
            raise ValueError(
                f"its certificate does not chain to the configured CA ({exc})"
            ) from exc
        try:
            usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is None or ExtendedKeyUsageOID.CODE_SIGNING not in usage:
            raise ValueError("its certificate is not for code signing")


@dataclass(frozen=True)
class SignatureRule:
    """What counts as a good signature: one by any of ``keys``, or by any of ``identities``.

    ``identities`` need ``authority`` (the CA their certificates chain to).
    """

    keys: tuple[PublicKey, ...] = ()
    identities: tuple[Identity, ...] = ()
    authority: CertificateAuthority | None = None

    def __post_init__(self) -> None:
        if not self.keys and not self.identities:
            raise ConfigurationError("a signature rule needs a key or an identity")
        if self.identities and self.authority is None:
            raise ConfigurationError("keyless identities need the CA their certificates chain to")

    def expected(self) -> str:
        """What the rule wants, as a refusal states it."""
        wanted = [f"key {k.name} ({k.fingerprint})" for k in self.keys]
        wanted += [f"identity {i}" for i in self.identities]
        return " or ".join(wanted)


@dataclass(frozen=True)
class SignatureVerdict:
    """Who signed the digest, and in which format."""

    signer: str  # "key NAME (sha256:...)" or "identity SUBJECT (issuer ISSUER)"
    format: str  # "cosign" (signature tag) or "sigstore-bundle"


def certificate_identity(certificate: x509.Certificate) -> Identity | None:
    """The issuer and subject Fulcio recorded in a signing certificate; None if absent."""
    issuer: str | None = None
    for extension in certificate.extensions:
        if not isinstance(extension.value, x509.UnrecognizedExtension):
            continue
        raw = extension.value.value
        if extension.oid == FULCIO_ISSUER_V2:
            issuer = _der_utf8_string(raw)
        elif extension.oid == FULCIO_ISSUER_V1 and issuer is None:
            issuer = raw.decode("utf-8", "replace")
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    subjects = names.get_values_for_type(x509.RFC822Name) + names.get_values_for_type(
        x509.UniformResourceIdentifier
    )
    if issuer is None or not subjects:
        return None
    return Identity(issuer, subjects[0])


def check_simple_signing(payload: bytes, digest: str) -> dict[str, Any]:
    """The decoded payload if it is cosign's simple signing for ``digest``; ValueError otherwise."""
    try:
        value = json.loads(payload)
        critical = value["critical"]
        named = critical["image"]["docker-manifest-digest"]
        kind = critical["type"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError("its payload is not a cosign simple signing payload") from exc
    if kind != SIMPLE_SIGNING_TYPE:
        raise ValueError(f"its payload has the type {kind!r}, not {SIMPLE_SIGNING_TYPE!r}")
    if named != digest:
        raise ValueError(f"it signs another image digest ({named})")
    return dict(value)


def check_in_toto_statement(payload: bytes, digest: str) -> None:
    """ValueError unless the in-toto statement names ``digest`` among its subjects."""
    algorithm, _, hex_value = digest.partition(":")
    try:
        statement = json.loads(payload)
        subjects = statement["subject"]
        digests = [s["digest"].get(algorithm) for s in subjects]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError("its payload is not an in-toto statement") from exc
    if hex_value not in digests:
        raise ValueError("its in-toto statement is about another image digest")


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: the bytes a DSSE signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class Bundle:
    """The parts of a sigstore bundle (v0.1 to v0.3) with a DSSE envelope that we verify."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]

    @classmethod
    def parse(cls, data: bytes) -> Bundle:
        """ValueError with a sentence when the bundle is not one we can verify."""
        try:
            value = json.loads(data)
            material = value["verificationMaterial"]
            if "certificate" in material:
                raw = [material["certificate"]["rawBytes"]]
            elif "x509CertificateChain" in material:
                raw = [c["rawBytes"] for c in material["x509CertificateChain"]["certificates"]]
            else:
                raise ValueError("the bundle has no certificate (a key-signed bundle?)")
            ders = [base64.b64decode(item, validate=True) for item in raw]
            envelope = value.get("dsseEnvelope")
            if envelope is None:
                raise ValueError("the bundle has no DSSE envelope")
            payload = base64.b64decode(envelope["payload"], validate=True)
            signatures = tuple(
                base64.b64decode(s["sig"], validate=True) for s in envelope["signatures"]
            )
            payload_type = str(envelope["payloadType"])
        except (KeyError, TypeError, binascii.Error) as exc:
            raise ValueError("the bundle is not a sigstore bundle") from exc
        certificates = [x509.load_der_x509_certificate(der) for der in ders]
        if not certificates or not signatures:
            raise ValueError("the bundle has no certificate or no signature")
        return cls(certificates[0], tuple(certificates[1:]), payload_type, payload, signatures)

    def signed_by(self, key: VerifyingKey) -> bool:
        """True when one of the envelope's signatures is ``key``'s over the DSSE encoding."""
        message = dsse_pae(self.payload_type, self.payload)
        return any(verify_signature(key, signature, message) for signature in self.signatures)


def load_certificate_pem(text: str) -> tuple[x509.Certificate, ...]:
    """Certificates from a cosign annotation (PEM, possibly several)."""
    try:
        return tuple(x509.load_pem_x509_certificates(text.encode()))
    except ValueError as exc:
        raise ValueError("its certificate annotation is not PEM") from exc


def _der_utf8_string(raw: bytes) -> str:
    # A DER UTF8String: tag 0x0c, a length (short or long form), the bytes.
    if len(raw) < 2 or raw[0] != 0x0C:
        return raw.decode("utf-8", "replace")
    length, start = raw[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, start = int.from_bytes(raw[2 : 2 + count], "big"), 2 + count
    return raw[start : start + length].decode("utf-8", "replace")
