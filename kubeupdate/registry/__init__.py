"""Container registries: does an image exist, for which platforms, signed by whom (issue 15).

Layers, from the entry point down:

- ``verifier``     :class:`ImageVerifier` ``.check(image, requirements) -> VerifiedImage``
- ``resolution``   tag → digest with single-flight and a short cache; content LRUs
- ``signatures``   cosign's signature tag and sigstore bundles, verified offline
- ``platforms``    ``os/arch[/variant]`` parsing and matching
- ``manifests``    OCI / Docker manifests and indexes
- ``client``       the distribution API over aiohttp: auth challenge, TLS, retries
- ``challenges``   ``WWW-Authenticate`` parsing
- ``credentials``  the operator's Docker ``config.json``, reloaded on change
- ``hosts``        per-registry CA file and plain HTTP for loopback registries
- ``endpoints``    Docker Hub's aliases, in one place
- ``errors``       this package's error tree

Nothing here imports gRPC, the policy or Kubernetes: the set path calls
:meth:`ImageVerifier.check` and translates :mod:`kubeupdate.registry.errors`
into domain errors with ErrorInfo reasons. The proposed table (not wired yet):

    ImageNotFound         NOT_FOUND            IMAGE_NOT_FOUND
    PlatformMissing       FAILED_PRECONDITION  IMAGE_PLATFORM_MISSING
    SignatureMissing      FAILED_PRECONDITION  IMAGE_SIGNATURE_MISSING
    SignatureInvalid      FAILED_PRECONDITION  IMAGE_SIGNATURE_INVALID
    AccessDenied          UNAVAILABLE          REGISTRY_ACCESS_DENIED  (our credentials:
                                                an operator problem, not the caller's)
    RegistryUnavailable   UNAVAILABLE          REGISTRY_UNAVAILABLE    (retry_after kept)
    ProtocolError         UNAVAILABLE          REGISTRY_PROTOCOL_ERROR
    ConfigurationError    at start-up: the service refuses to start

Keyless signatures are verified against a CA the operator names (a private
Fulcio), at the time of the check. The public Sigstore instance issues
10-minute certificates whose signing time is proven by the transparency log
(Rekor) and whose issuance by SCTs; verifying those is what sigstore-python
(``sigstore`` on PyPI) does, and is the follow-up for public-good keyless
signatures: its ``Verifier`` requires exactly that log entry and SCT, so it
cannot verify the log-less bundles of a private CA that this package accepts.
"""

from kubeupdate.registry.client import RegistryClient
from kubeupdate.registry.credentials import RegistryCredentials, watch_credentials
from kubeupdate.registry.hosts import HostSettings, RegistryHosts
from kubeupdate.registry.platforms import Platform
from kubeupdate.registry.signatures import (
    CertificateAuthority,
    Identity,
    PublicKey,
    SignatureRule,
    SignatureVerdict,
)
from kubeupdate.registry.verifier import ImageVerifier, Requirements, VerifiedImage

__all__ = [
    "CertificateAuthority",
    "HostSettings",
    "Identity",
    "ImageVerifier",
    "Platform",
    "PublicKey",
    "RegistryClient",
    "RegistryCredentials",
    "RegistryHosts",
    "Requirements",
    "SignatureRule",
    "SignatureVerdict",
    "VerifiedImage",
    "watch_credentials",
]
