"""Who is calling: the identity a request runs under.

Authentication (an interceptor) sets it once per call; the servicer reads it
to record who changed what (the change's record, the audit line). It is a
context variable, so each call's task sees its own caller.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Caller:
    """An authenticated (or knowingly anonymous) caller.

    ``name`` is what change records show, e.g. ``token:release-bot`` or
    ``github:acme/web@refs/heads/main``; ``method`` how it was established
    (``token``, ``basic``, ``oidc``, ``mtls``, ``none``); ``claims`` the
    attributes policies match on (never a secret).
    """

    name: str
    method: str
    claims: dict[str, str] = field(default_factory=dict)


ANONYMOUS = Caller(name="anonymous", method="none")

_current: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "kubeupdate_caller", default=None
)


def current() -> Caller | None:
    """The caller of the request being handled, or None when nobody set one."""
    return _current.get()


def set_current(caller: Caller) -> contextvars.Token[Caller | None]:
    return _current.set(caller)


def reset(token: contextvars.Token[Caller | None]) -> None:
    _current.reset(token)
