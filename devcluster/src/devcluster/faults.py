"""Fault switches: make matching requests fail the way a real cluster can fail.

A test arms a fault for a verb and a path (a glob, or a regex when it starts
with ``^``), for the next ``count`` matching requests or until cleared::

    cluster.faults.add(method="PATCH", path="/apis/apps/v1/namespaces/*/deployments/*",
                       action=faults.forbidden(), count=1)

Faults are checked after authentication (a forbidden fault imitates RBAC,
which runs after it) and before the request is handled.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from dataclasses import dataclass, field

#: The service account kubeupdate runs as in deploy/; the default subject of a 403.
DEFAULT_USER = "system:serviceaccount:kubeupdate:kubeupdate"


@dataclass(frozen=True)
class Action:
    """What a fault does. Build one with the functions below."""

    kind: str  # forbidden, too_many_requests, error, delay, drop, conflict
    code: int = 0
    retry_after: int = 0
    delay_ms: int = 0
    user: str = DEFAULT_USER
    message: str = ""


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

    def take(self, method: str, path: str) -> Action | None:
        """The action for this request, using up one of its fault's count."""
        if not self._faults:  # the common case, without taking the lock
            return None
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining == 0:
                            self._faults.remove(fault)
                    return fault.action
        return None
