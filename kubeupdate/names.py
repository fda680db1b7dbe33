"""Kubernetes object names, checked before any Kubernetes call.

A bad name must never reach the API server: it would come back as a 404 or a
400 that says nothing useful, and it would end up in a URL path. The rules are
kube-apiserver's (``k8s.io/apimachinery/pkg/util/validation``):

- namespaces and container names are DNS-1123 *labels*: at most 63 characters
  of ``[a-z0-9]([-a-z0-9]*[a-z0-9])?``;
- Deployment names are DNS-1123 *subdomains*: at most 253 characters, labels
  as above joined by dots (kube-apiserver sets no length limit per label).

Every check raises :class:`~kubeupdate.errors.InvalidArgument` (reason
``NAME_INVALID``, ``metadata.field`` the field) with a sentence that names the
field and shows the value, escaped and shortened by
:func:`quote` so that a hostile value cannot forge log lines or bloat answers.
"""

from __future__ import annotations

import json
import re
from typing import Final

from kubeupdate.errors import ErrorReason, InvalidArgument

__all__ = [
    "LABEL_MAX_LENGTH",
    "SUBDOMAIN_MAX_LENGTH",
    "check_container",
    "check_deployment",
    "check_namespace",
    "quote",
]

LABEL_MAX_LENGTH: Final = 63
SUBDOMAIN_MAX_LENGTH: Final = 253

# How much of a caller's value a message may show.
_QUOTE_LIMIT: Final = 80

_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
# fullmatch, never match: `$` would accept a trailing newline.
_LABEL_RE: Final = re.compile(_LABEL)
_SUBDOMAIN_RE: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")

_LABEL_RULE: Final = (
    "it must consist of lower case alphanumeric characters or '-', "
    "and start and end with an alphanumeric character"
)
_SUBDOMAIN_RULE: Final = (
    "it must consist of lower case alphanumeric characters, '-' or '.', "
    "and start and end with an alphanumeric character"
)


def quote(value: str, limit: int = _QUOTE_LIMIT) -> str:
    """Show a caller-supplied *value* safely inside a message.

    The result is a double-quoted, ASCII-only string (control, quote and
    non-ASCII characters escaped the JSON way); values longer than *limit*
    characters are cut and followed by ``... (N characters)``.
    """
    if len(value) <= limit:
        return json.dumps(value)
    return f"{json.dumps(value[:limit])}... ({len(value)} characters)"


def check_namespace(value: str) -> None:
    """Raise InvalidArgument unless *value* is a valid namespace name."""
    _check_label("namespace", value)


def check_container(value: str) -> None:
    """Raise InvalidArgument unless *value* is a valid container name."""
    _check_label("container", value)


def check_deployment(value: str) -> None:
    """Raise InvalidArgument unless *value* is a valid Deployment name."""
    _check("deployment", value, _SUBDOMAIN_RE, SUBDOMAIN_MAX_LENGTH, _SUBDOMAIN_RULE)


def _check_label(field: str, value: str) -> None:
    _check(field, value, _LABEL_RE, LABEL_MAX_LENGTH, _LABEL_RULE)


def _check(field: str, value: str, pattern: re.Pattern[str], max_length: int, rule: str) -> None:
    def invalid(message: str) -> InvalidArgument:
        return InvalidArgument(message, reason=ErrorReason.NAME_INVALID, metadata={"field": field})

    if not value:
        raise invalid(f"{field} is required")
    if not isinstance(value, str):  # a JSON number or list slipped past the types
        raise invalid(f"{field} must be a string")
    if len(value) > max_length:
        raise invalid(
            f"{field} {quote(value)} is not a valid Kubernetes name: "
            f"it must be at most {max_length} characters long"
        )
    if pattern.fullmatch(value) is None:
        raise invalid(
            f"{field} {quote(value)} is not a valid Kubernetes name: "
            f"{rule} (at most {max_length} characters)"
        )
