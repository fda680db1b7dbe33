"""The registry check of a write: ask the image's registry before anything is sent to Kubernetes.

What to check comes from the policy's image rule that accepted the image
(:class:`ImageCheck`: ``registry: check``, ``digest: pin``, ``platforms``,
``signature``), or from the server for every write (``kubeupdate serve
--registry-check always``). :class:`ImageChecks` runs it with the one shared
:class:`~kubeupdate.registry.verifier.ImageVerifier` and answers a
:class:`CheckedImage`: the image to write (``tag@sha256:...`` under ``digest:
pin``, resolved at the moment of the check, so what runs is what was
checked), the digest, the platforms and the signer found. A refusal is a
domain error (:func:`kubeupdate.registry.translation.translate_error`):
NOT_FOUND for an image that does not exist, FAILED_PRECONDITION for a missing
platform or signature, UNAVAILABLE when the registry cannot answer.

A registry that cannot be reached (no connection, no answer in time, 5xx,
429) fails the write, unless the operator chose ``--registry-unreachable
allow``: then a check that only asks whether the image exists (and for which
platforms) is skipped, the write goes on, and the answer and the audit line
say why. A check that pins or requires a signature is never skipped: there
is no digest to pin and no signer to vouch for the image.

The authorisation interceptor hands the rule's check to the servicer through
a context variable (:func:`requested`), as it hands over the caller. This
module does not know gRPC.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from kubeupdate.errors import InvalidArgument
from kubeupdate.images import ImageReference, parse_image
from kubeupdate.registry import errors as registry_errors
from kubeupdate.registry.config import Unreachable
from kubeupdate.registry.endpoints import ImageLocation
from kubeupdate.registry.platforms import DEFAULT_PLATFORMS, Platform
from kubeupdate.registry.translation import translate_error

if TYPE_CHECKING:
    # aiohttp and cryptography: loaded by the process that checks, not by one that
    # only reads flags (kubeupdate serve --only gateway imports the servicer's module).
    from kubeupdate.registry.signatures import SignatureRule
    from kubeupdate.registry.verifier import ImageVerifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageCheck:
    """What a write's image must pass in its registry; the default only asks that it exists.

    ``platforms`` None means the server's (``--registry-platform``, by default
    ``linux/amd64``); an empty tuple means no platform check. ``signature``
    None means no signature is required.
    """

    pin: bool = False
    platforms: tuple[Platform, ...] | None = None
    signature: SignatureRule | None = None

    @property
    def may_be_skipped(self) -> bool:
        """Whether ``--registry-unreachable allow`` may let the write through without it."""
        return not self.pin and self.signature is None


@dataclass(frozen=True)
class CheckedImage:
    """What the registry check established, and the image the write sets."""

    #: The image to write: as requested, or with the digest added under ``digest: pin``.
    image: ImageReference
    #: The manifest digest the reference pointed to at the check; None when skipped.
    digest: str | None = None
    #: The platforms found, when platforms were required.
    platforms: tuple[str, ...] = ()
    #: Who signed the digest, when a signature was required.
    signer: str = ""
    #: Why the check was skipped (the registry could not be reached); empty when it ran.
    skipped: str = ""

    def runs_in(self, running: str) -> bool:
        """Whether a container running ``running`` already runs this image.

        True when the running reference names the same repository and the
        digest the check found: setting the tag again changes nothing that
        runs, so nothing is written.
        """
        if self.digest is None:
            return False
        try:
            current = parse_image(running)
        except InvalidArgument:
            return False
        return current.digest == self.digest and current.name == self.image.name


#: The platforms required where neither the rule nor the server names any.
DEFAULT_REQUIRED: Final = tuple(Platform.parse(p) for p in DEFAULT_PLATFORMS)


class ImageChecks:
    """Runs registry checks with one shared verifier; one per process."""

    def __init__(
        self,
        verifier: ImageVerifier,
        *,
        platforms: tuple[Platform, ...] = DEFAULT_REQUIRED,
        always: bool = False,
        unreachable: Unreachable = "refuse",
        reload: Callable[[], object] | None = None,
    ) -> None:
        """``platforms``: required where a rule names none. ``always``: check every write,
        whatever the policy says. ``unreachable``: see the module's docstring.
        ``reload`` re-reads the registry credentials file (:meth:`reload`)."""
        self._verifier = verifier
        self._reload = reload
        self.platforms = platforms
        self.always = always
        self.unreachable = unreachable

    def reload(self) -> None:
        """Re-read the registry credentials file now (SIGHUP), not at the next look at it."""
        if self._reload is not None:
            self._reload()

    def wanted(self, check: ImageCheck | None) -> ImageCheck | None:
        """The check a write gets: the rule's, else the server's (``always``), else none."""
        if check is None and self.always:
            return ImageCheck()
        return check

    async def check(
        self, image: ImageReference, check: ImageCheck, *, deadline: float | None = None
    ) -> CheckedImage:
        """Check ``image`` in its registry; a domain error says why it may not be written."""
        from kubeupdate.registry.verifier import Requirements

        location = ImageLocation.of(image)
        platforms = self.platforms if check.platforms is None else check.platforms
        requirements = Requirements(platforms=platforms, signature=check.signature)
        try:
            verified = await self._verifier.check(image, requirements, deadline=deadline)
        except registry_errors.RegistryUnavailable as exc:
            if self.unreachable == "allow" and check.may_be_skipped and not _passed(deadline):
                log.warning("registry check of %s skipped: %s", image, exc.message)
                why = f"the registry could not be reached: {exc.message}"
                return CheckedImage(image, skipped=why)
            raise translate_error(exc, location, deadline=deadline) from exc
        except registry_errors.RegistryError as exc:
            raise translate_error(exc, location, deadline=deadline) from exc
        written = image
        if check.pin and image.digest is None:
            written = replace(image, digest=verified.digest)
        return CheckedImage(
            written,
            verified.digest,
            tuple(str(p) for p in verified.platforms),
            verified.signature.signer if verified.signature is not None else "",
        )

    async def __aenter__(self) -> ImageChecks:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._verifier.close()


def _passed(deadline: float | None) -> bool:
    """The caller's own deadline ran out: it gave up, so there is no write to let through."""
    return deadline is not None and time.monotonic() >= deadline


# -- the rule's check, from the authorisation interceptor to the servicer ------------------

_requested: contextvars.ContextVar[ImageCheck | None] = contextvars.ContextVar(
    "kubeupdate_image_check", default=None
)


def requested() -> ImageCheck | None:
    """The check the policy asks for the write being handled, or None."""
    return _requested.get()


def set_requested(check: ImageCheck | None) -> contextvars.Token[ImageCheck | None]:
    return _requested.set(check)


def reset_requested(token: contextvars.Token[ImageCheck | None]) -> None:
    _requested.reset(token)
