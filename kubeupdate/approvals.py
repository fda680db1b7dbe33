"""Approving the image of a write that learns it late: the call being handled's approval.

Most writes name their image, and the security interceptor decides the policy
before the call runs. UndoContainerImage knows the image it writes only once it
has read the history: it asks :func:`current` then, before writing. The
interceptor sets the approval of such a call (the policy's image rules, the
image recorded in the audit line); without one (no authentication, or a server
without the interceptor) every image is approved. A context variable, as
:mod:`kubeupdate.caller`, so each call's task sees its own.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable

from kubeupdate.images import ImageReference

#: Returns when the image may be written; raises :class:`~kubeupdate.errors.Denied` otherwise.
ImageApproval = Callable[[ImageReference], None]


def approve_any(image: ImageReference) -> None:
    """The approval where no policy applies: every image."""


_current: contextvars.ContextVar[ImageApproval | None] = contextvars.ContextVar(
    "kubeupdate_image_approval", default=None
)


def current() -> ImageApproval:
    """The approval of the call being handled (:func:`approve_any` when none was set)."""
    return _current.get() or approve_any


def set_current(approval: ImageApproval) -> contextvars.Token[ImageApproval | None]:
    return _current.set(approval)


def reset(token: contextvars.Token[ImageApproval | None]) -> None:
    _current.reset(token)
