"""What can go wrong when kubeupdate asks a container registry about an image.

These errors never leave the registry boundary raw: the set path translates
each one into a ``kubeupdate.errors`` class with its ErrorInfo reason (the
table is :mod:`kubeupdate.registry.translation`). Every message names
the registry and the repository and is safe to show to the caller: it never
contains a credential or a token.

    RegistryError
    ├── ImageNotFound            the repository, the tag or the digest does not exist
    ├── AccessDenied             the registry refused us (401 after the auth flow, 403)
    ├── RegistryUnavailable      no usable answer; try again later
    │   ├── ConnectionFailed     refused, reset, TLS or DNS failure
    │   ├── Timeout              no answer within the call's timeout or the deadline
    │   ├── TooManyRequests      429 past the deadline; retry_after if the registry said
    │   └── ServerError          5xx after the bounded retries
    ├── ProtocolError            an answer that breaks the distribution spec (bad JSON,
    │                            a digest that does not match the content, ...)
    ├── ImageRefused             the image exists but does not meet a requirement
    │   ├── PlatformMissing      an index lacks a required platform
    │   ├── SignatureMissing     no signature of the required kind is attached
    │   └── SignatureInvalid     signatures exist, none by the expected key or identity
    └── ConfigurationError       the credentials file or a TLS setting is unusable
"""

from __future__ import annotations

from collections.abc import Sequence


class RegistryError(Exception):
    """Base of every error of the registry access layer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ImageNotFound(RegistryError):
    """The registry answered that the repository or the manifest does not exist."""

    def __init__(self, message: str, *, registry: str, repository: str, reference: str) -> None:
        super().__init__(message)
        self.registry = registry
        self.repository = repository
        self.reference = reference


class AccessDenied(RegistryError):
    """The registry refused our credentials, or we have none for a private repository."""


class RegistryUnavailable(RegistryError):
    """The registry could not answer usefully now; the same call may work later."""


class ConnectionFailed(RegistryUnavailable):
    """No HTTP answer: connection refused or dropped, TLS or name resolution failed."""


class Timeout(RegistryUnavailable):
    """No answer before the per-call timeout or the caller's deadline."""


class TooManyRequests(RegistryUnavailable):
    """429 that could not be waited out; ``retry_after`` is the registry's hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServerError(RegistryUnavailable):
    """5xx after the bounded retries (or on a call that is not retried)."""


class ProtocolError(RegistryError):
    """The registry's answer breaks the distribution spec, or is not what we can use."""


class ImageRefused(RegistryError):
    """The image exists but does not meet a requirement of the check."""


class PlatformMissing(ImageRefused):
    """An image lacks a required platform; ``found`` lists what it has, e.g. ``linux/arm64``."""

    def __init__(self, message: str, *, missing: Sequence[str], found: Sequence[str]) -> None:
        super().__init__(message)
        self.missing = tuple(missing)
        self.found = tuple(found)


class SignatureMissing(ImageRefused):
    """No signature of the required kind is attached to the image's digest."""


class SignatureInvalid(ImageRefused):
    """Signatures are attached, but none verifies with the expected key or identity.

    ``found`` describes each signature that was looked at and why it did not
    count (another key, another identity, a payload for another digest).
    """

    def __init__(self, message: str, *, found: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.found = tuple(found)


class ConfigurationError(RegistryError, ValueError):
    """The credentials file, a CA file or a key is unusable.

    A ValueError too, so a reloaded file that breaks keeps the previous one
    (:class:`kubeupdate.auth.reloading.WatchedFile`).
    """
