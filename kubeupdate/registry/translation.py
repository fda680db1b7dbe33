"""Registry errors as kubeupdate reports them: the boundary between the two error trees.

The set path never lets a :mod:`kubeupdate.registry.errors` class through; it
raises :func:`translate_error`'s domain error instead. The table::

    registry error        domain error       gRPC code            ErrorInfo reason
    ImageNotFound         NotFound           NOT_FOUND            IMAGE_NOT_FOUND
    PlatformMissing       ImageRefused       FAILED_PRECONDITION  IMAGE_PLATFORM_MISSING
    SignatureMissing      ImageRefused       FAILED_PRECONDITION  IMAGE_SIGNATURE_MISSING
    SignatureInvalid      ImageRefused       FAILED_PRECONDITION  IMAGE_SIGNATURE_INVALID
    AccessDenied          Unavailable        UNAVAILABLE          REGISTRY_ACCESS_DENIED
    RegistryUnavailable   Unavailable        UNAVAILABLE          REGISTRY_UNAVAILABLE
      (a Timeout once the caller's deadline has passed: DeadlineExceeded,
       DEADLINE_EXCEEDED, CALL_DEADLINE_EXCEEDED)
    ProtocolError         Unavailable        UNAVAILABLE          REGISTRY_PROTOCOL_ERROR

AccessDenied is UNAVAILABLE, not PERMISSION_DENIED: it is kubeupdate's own
credentials that the registry refused, which an operator must fix, as a
Kubernetes 401 is. Every error's metadata names the ``registry`` and the
``repository``; the registry's sentences name them too and never hold a
credential, so they go to the caller as they are.
"""

from __future__ import annotations

import time

from kubeupdate import errors
from kubeupdate.errors import ErrorReason
from kubeupdate.registry import errors as registry_errors
from kubeupdate.registry.endpoints import ImageLocation


def translate_error(
    exc: registry_errors.RegistryError,
    location: ImageLocation,
    *,
    deadline: float | None = None,
) -> errors.KubeupdateError:
    """The domain error for a registry error met while checking the image at ``location``."""
    where = {"registry": location.registry, "repository": location.repository}
    if isinstance(exc, registry_errors.ImageNotFound):
        return errors.NotFound(
            exc.message,
            reason=ErrorReason.IMAGE_NOT_FOUND,
            metadata={**where, "reference": exc.reference},
        )
    if isinstance(exc, registry_errors.PlatformMissing):
        platforms = {"missing": ",".join(exc.missing), "found": ",".join(exc.found)}
        return errors.ImageRefused(
            exc.message, reason=ErrorReason.IMAGE_PLATFORM_MISSING, metadata={**where, **platforms}
        )
    if isinstance(exc, registry_errors.SignatureMissing):
        return errors.ImageRefused(
            exc.message, reason=ErrorReason.IMAGE_SIGNATURE_MISSING, metadata=where
        )
    if isinstance(exc, registry_errors.SignatureInvalid):
        return errors.ImageRefused(
            exc.message, reason=ErrorReason.IMAGE_SIGNATURE_INVALID, metadata=where
        )
    if isinstance(exc, registry_errors.AccessDenied):
        return errors.Unavailable(
            exc.message, reason=ErrorReason.REGISTRY_ACCESS_DENIED, metadata=where
        )
    if isinstance(exc, registry_errors.Timeout) and _passed(deadline):
        return errors.DeadlineExceeded(
            f"the call's deadline passed while checking the image in its registry: {exc.message}",
            reason=ErrorReason.CALL_DEADLINE_EXCEEDED,
            metadata=where,
        )
    if isinstance(exc, registry_errors.RegistryUnavailable):
        retry_after = exc.retry_after if isinstance(exc, registry_errors.TooManyRequests) else None
        return errors.Unavailable(
            exc.message,
            reason=ErrorReason.REGISTRY_UNAVAILABLE,
            metadata=where,
            retry_after=retry_after,
        )
    if isinstance(exc, registry_errors.ProtocolError):
        return errors.Unavailable(
            exc.message, reason=ErrorReason.REGISTRY_PROTOCOL_ERROR, metadata=where
        )
    # ConfigurationError is found at start-up, never on a call: a bug if it gets here.
    raise exc


def _passed(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline
