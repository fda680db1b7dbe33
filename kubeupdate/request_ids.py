"""The id of the request being handled: one rule for keeping a caller's id, one variable.

The gateway takes it from ``X-Request-Id`` (or makes one) and forwards it as
``x-request-id`` metadata; the service takes it from there (or makes one) for
direct gRPC callers. Log lines (:mod:`kubeupdate.logs`) and audit lines show
it, so one grep follows a request through both processes. Each request runs
in its own task, so one context variable serves both servers even when
``kubeupdate serve`` runs them in one process.

A caller's id is kept when it is 1 to 128 visible ASCII characters (no
spaces): it ends up in headers, metadata and log lines, where anything else
could forge or break a line.
"""

from __future__ import annotations

import contextvars
import re
import secrets
from collections.abc import Iterable
from typing import Any, Final

#: The gRPC metadata key (the gateway's HTTP header is X-Request-Id).
METADATA_KEY: Final = "x-request-id"
#: What log records show outside any request.
NONE: Final = "-"

#: The id of the request this task handles.
current: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default=NONE)

_KEPT: Final = re.compile(r"[\x21-\x7e]{1,128}")


def new() -> str:
    """A fresh id: 32 hexadecimal characters."""
    return secrets.token_hex(16)


def kept(value: str | None) -> str:
    """The caller's ``value`` if it may be kept as is, else a fresh id."""
    return value if value is not None and _KEPT.fullmatch(value) else new()


def from_metadata(metadata: Iterable[tuple[str, Any]] | None) -> str:
    """The id a gRPC call carries in its metadata (kept or replaced), or a fresh one."""
    for key, value in metadata or ():
        if key == METADATA_KEY and isinstance(value, str):
            return kept(value)
    return new()
