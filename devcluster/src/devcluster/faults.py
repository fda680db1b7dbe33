"""Fault switches: make matching requests fail the way a real cluster can fail.

A test arms a fault for a verb and a path (a glob, or a regex when it starts
with ``^``), for the next ``count`` matching requests or until cleared::

    cluster.faults.add(method="PATCH", path="/apis/apps/v1/namespaces/*/deployments/*",
                       action=faults.forbidden(), count=1)

Faults are checked after authentication (a forbidden fault imitates RBAC,
which runs after it) and before the request is handled. Admission refusals
(:func:`webhook_denied`, :func:`policy_denied`) are different: they fire where
kube-apiserver runs validating admission, after the object was read, patched
and validated and just before it would be stored, so a 404 or a failed patch
comes first and leaves them armed; reads never reach them.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from dataclasses import dataclass, field

from devcluster.statuses import POLICY_REASON_CODES

#: The service account kubeupdate runs as in deploy/; the default subject of a 403.
DEFAULT_USER = "system:serviceaccount:kubeupdate:kubeupdate"


@dataclass(frozen=True)
class Action:
    """What a fault does. Build one with the functions below."""

    kind: str  # forbidden, too_many_requests, error, delay, drop, conflict, or ADMISSION
    code: int = 0
    retry_after: int = 0
    delay_ms: int = 0
    user: str = DEFAULT_USER
    message: str = ""
    reason: str = ""
    webhook: str = ""
    policy: str = ""
    binding: str | None = None

    @property
    def at_admission(self) -> bool:
        return self.kind in ADMISSION


#: Kinds of fault that fire at validating admission rather than on arrival.
ADMISSION = frozenset({"webhook_denied", "policy_denied"})


def forbidden(user: str = DEFAULT_USER) -> Action:
    """403 Forbidden with the RBAC authorizer's message for this request."""
    return Action("forbidden", code=403, user=user)


def too_many_requests(retry_after: int = 1) -> Action:
    """429 TooManyRequests with ``Retry-After: retry_after``."""
    return Action("too_many_requests", code=429, retry_after=retry_after)


def internal_error(message: str = "injected fault") -> Action:
    """500 InternalError."""
    return Action("error", code=500, message=message)


def unavailable(message: str = "the server is currently unable to handle the request") -> Action:
    """503 ServiceUnavailable."""
    return Action("error", code=503, message=message)


def delay(milliseconds: int) -> Action:
    """Waits, then handles the request normally."""
    return Action("delay", delay_ms=milliseconds)


def drop_connection() -> Action:
    """Closes the connection without answering."""
    return Action("drop")


def conflict() -> Action:
    """409 Conflict, as if the object had changed since the client read it."""
    return Action("conflict", code=409)


def webhook_denied(
    webhook: str, message: str, *, code: int = 403, reason: str = "Forbidden"
) -> Action:
    """A validating admission webhook refuses the write.

    The defaults are what controller-runtime's ``admission.Denied`` (so Gatekeeper)
    answers: 403 Forbidden, ``admission webhook "<webhook>" denied the request:
    <message>``, no details. Kyverno sets no code or reason: ``code=0, reason=""``
    (kube-apiserver then answers 400).
    """
    return Action("webhook_denied", code=code, reason=reason, webhook=webhook, message=message)


def policy_denied(
    policy: str, message: str, *, binding: str | None = None, reason: str = "Invalid"
) -> Action:
    """A ValidatingAdmissionPolicy refuses the write.

    ``<resource> "<name>" is forbidden: ValidatingAdmissionPolicy '<policy>' with binding
    '<binding>' denied request: <message>``; the code follows ``reason``: Invalid (the
    default when a validation sets none) is 422, Forbidden 403, Unauthorized 401,
    RequestEntityTooLarge 413.
    """
    if reason not in POLICY_REASON_CODES:
        raise ValueError(
            f"a policy's reason is one of {', '.join(POLICY_REASON_CODES)}, not {reason!r}"
        )
    return Action(
        "policy_denied",
        code=POLICY_REASON_CODES[reason],
        reason=reason,
        policy=policy,
        binding=binding,
        message=message,
    )


@dataclass
class Fault:
    method: str  # upper case, or "*"
    path: str
    action: Action
    remaining: int | None  # None: until cleared
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        source = self.path if self.path.startswith("^") else fnmatch.translate(self.path)
        self._pattern = re.compile(source)

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and self._pattern.match(path) is not None


class Faults:
    """The armed faults of one devcluster; safe to change from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        method: str = "*",
        path: str = "*",
        action: Action | None = None,
        count: int | None = 1,
    ) -> Fault:
        """Arms a fault for the next ``count`` matching requests (None: until cleared).

        ``path`` is a glob over the URL path (``*`` also crosses ``/``) or, when
        it starts with ``^``, a regular expression. The first armed fault that
        matches wins.
        """
        if action is None:
            raise ValueError("a fault needs an action, e.g. faults.forbidden()")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1 (or None for until cleared)")
        fault = Fault(method.upper(), path, action, count)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)

    def take(self, method: str, path: str, *, admission: bool = False) -> Action | None:
        """The action for this request, using up one of its fault's count.

        ``admission`` False: a fault that acts on arrival; True: an admission refusal
        (asked for only by writes that reached validating admission).
        """
        if not self._faults:  # the common case, without taking the lock
            return None
        with self._lock:
            for fault in self._faults:
                if fault.action.at_admission != admission:
                    continue
                if fault.matches(method, path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining == 0:
                            self._faults.remove(fault)
                    return fault.action
        return None
