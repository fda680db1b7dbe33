"""The audit trail: one JSON line per call attempt, allowed, denied or failed.

A line holds when, which request, who (how they authenticated and the
identity details, never a credential), from where (``source``; with ``peer``,
the proxy's address, when a trusted proxy named the client, see
:mod:`kubeupdate.auth.proxies`), what they asked (method,
target, new image), what the policy said and why, and what happened (the
status code, the previous image and resulting generation when known)::

    {"time": "2026-11-27T14:00:00.123Z", "request_id": "4f2c...", "method": "SetContainerImage",
     "identity": {"method": "oidc", "name": "github:acme/web@refs/heads/main",
                  "repository": "acme/web", "repository_id": "123", "run_id": "9", ...},
     "source": "203.0.113.7", "peer": "10.0.3.4",
     "target": {"namespace": "prod", "deployment": "web",
     "container": "app"}, "image": "ghcr.io/acme/web:1.2.3", "previous_image": "...",
     "decision": "allow", "reason": "allowed", "rule": "web from main",
     "outcome": "OK", "changed": true, "generation": 7,
     "digest": "sha256:...", "registry_check": "passed"}

``digest`` and ``registry_check`` appear when the image was checked in its
registry: ``passed``, or ``skipped: <why>`` when the registry could not be
reached and the operator lets writes through then.

A waited change adds how its rollout ended (``"rollout": "ROLLED_BACK"``); a
dry run says ``"dry_run": true``; a call cut short after its write still says
what it wrote (``changed``, ``previous_image``, ``rollout_id``). What the
guardian does for a caller (taking a rollout over, its verdict and rollback)
is audited with the method ``GuardedRollout/take-over`` or
``GuardedRollout/verdict`` and the identity ``kubeupdate on behalf of
<caller>, request <id>`` (:func:`kubeupdate.guarded.guardian.audited`).

A line is written before the call is authenticated, so every text in it that
may come from a caller is cut at :data:`FIELD_LIMIT` characters (a valid image
reference is shorter), the cut marked with how much was left out: a caller
cannot grow the audit file by more than a few kilobytes per call, whatever it
sends. (The gRPC server refuses messages over its size limit before they reach
this code.)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from kubeupdate.caller import Caller

log = logging.getLogger(__name__)

# json.dumps with options builds a new encoder per call; one line per call is hot.
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode

#: The longest text of one field of an audit line, in characters.
FIELD_LIMIT: Final = 1024


def capped(text: str, limit: int = FIELD_LIMIT) -> str:
    """``text``, or its first ``limit`` characters and how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...(+{len(text) - limit} characters)"


@dataclass
class AuditRecord:
    """One attempt, filled in as the call proceeds."""

    request_id: str
    method: str
    source: str
    time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    # The connection's address, when the source is a client a proxy named.
    peer: str | None = None
    # An x-forwarded-for that was not believed (not from a trusted proxy, or not addresses).
    forwarded_for_ignored: str | None = None
    caller: Caller | None = None
    auth_method: str | None = None  # what was tried, for failed authentication
    target: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    previous_image: str | None = None
    decision: str = "deny"
    reason: str = ""
    # "source" or "token_id": failed authentications put it in back-off.
    limited: str | None = None
    rule: str | None = None
    outcome: str = ""
    changed: bool | None = None
    generation: int | None = None
    # A waited change: how its rollout ended (COMPLETE, ROLLED_BACK, ...), and
    # the guarded rollout (Lease) that followed it.
    rollout: str | None = None
    rollout_id: str | None = None
    dry_run: bool | None = None
    digest: str | None = None
    registry_check: str | None = None

    def to_json(self) -> str:
        line: dict[str, Any] = {
            "time": self.time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "request_id": capped(self.request_id),
            "method": self.method,
            "identity": {k: capped(v) for k, v in _identity(self.caller, self.auth_method).items()},
            "source": capped(self.source),
            "peer": self.peer,
            "forwarded_for_ignored": (
                None if self.forwarded_for_ignored is None else capped(self.forwarded_for_ignored)
            ),
            "target": {k: capped(v) for k, v in self.target.items()},
            "image": None if self.image is None else capped(self.image),
            "previous_image": self.previous_image,
            "decision": self.decision,
            "reason": capped(self.reason),
            "limited": self.limited,
            "rule": self.rule,
            "outcome": self.outcome,
            "changed": self.changed,
            "generation": self.generation,
            "digest": self.digest,
            "registry_check": self.registry_check,
            "rollout": self.rollout,
            "rollout_id": self.rollout_id,
            "dry_run": self.dry_run,
        }
        return _ENCODE({k: v for k, v in line.items() if v is not None})


def _identity(caller: Caller | None, attempted: str | None) -> dict[str, str]:
    if caller is None:
        return {"method": attempted or "none"}
    # Claims never hold a secret: tokens store ids, OIDC only the listed claims.
    return {"method": caller.method, "name": caller.name, **caller.claims}


class AuditLog:
    """Writes audit lines to a stream (stderr by default) or appends them to a file."""

    def __init__(self, destination: str = "-") -> None:
        self.destination = destination
        self._owned: IO[str] | None = None
        # Lines sent to /dev/null are neither formatted nor written.
        self.enabled = destination != os.devnull
        if destination in {"-", "stderr"}:
            self._stream: IO[str] = sys.stderr
        else:
            # Held open for the life of the server; close() releases it.
            self._owned = Path(destination).open("a", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._stream = self._owned

    @classmethod
    def to_stream(cls, stream: IO[str]) -> AuditLog:
        audit = cls()
        audit._stream = stream
        return audit

    def write(self, record: AuditRecord) -> None:
        if not self.enabled:
            return
        try:
            self._stream.write(record.to_json() + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            # Losing an audit line must be visible, but must not fail the call after the fact.
            log.exception("cannot write the audit line of request %s", record.request_id)

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None
