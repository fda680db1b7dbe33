"""The target of a call, checked once per call.

The first layer that needs it checks it (the security interceptor, before its
policy; without one, the servicer); later layers get the same
:class:`~kubeupdate.targets.Target`. The fields are read generically: every
request names ``namespace`` and ``deployment``; some ``container``; a write
``image``.
"""

from __future__ import annotations

import contextvars
from typing import Any

from kubeupdate.targets import Target, check_target

# The request message and its checked target; the message is the same object
# for every layer of one call.
_checked: contextvars.ContextVar[tuple[Any, Target] | None] = contextvars.ContextVar(
    "kubeupdate_target", default=None
)


def target_of(request: Any) -> Target:
    """The checked target of ``request``; raises InvalidArgument as check_target does."""
    cached = _checked.get()
    if cached is not None and cached[0] is request:
        return cached[1]
    target = check_target(
        _field(request, "namespace") or "",
        _field(request, "deployment") or "",
        _field(request, "container"),
        _field(request, "image"),
    )
    _checked.set((request, target))
    return target


def _field(message: Any, name: str) -> str | None:
    """The string field ``name`` of a protobuf message; None when it has no such field."""
    descriptor = getattr(message, "DESCRIPTOR", None)
    if descriptor is None or name not in descriptor.fields_by_name:
        return None
    value = getattr(message, name)
    return value if isinstance(value, str) else None
