"""What decoding a body into a typed object does in kube-apiserver, for the fields where it shows.

The devcluster keeps objects as JSON, so most fields pass through as sent. A
few would not survive Go's decoding unchanged: times (``metav1.Time`` and
``MicroTime`` are parsed strictly and written back in one canonical form, see
:mod:`devcluster.timestamps`) and fields whose JSON type must match the Go
type (a Lease's ``leaseDurationSeconds`` is an int32, not ``"15"``). A body
Go could not decode is a 400 in kube-apiserver's words (``Lease in version "v1"
cannot be handled as a Lease: ...``) and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from devcluster.resources import EVENTS, LEASES, ResourceType
from devcluster.statuses import ApiError, bad_request
from devcluster.timestamps import (
    TimeFormatError,
    micro_time_text,
    parse_micro_time,
    parse_time,
    time_text,
)

Object = dict[str, Any]

_INT32: Final = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class Field:
    """One field Go decodes strictly: where it is, its Go type, and the struct holding it."""

    path: tuple[str, ...]
    go_type: str  # string, int32, Time or MicroTime
    struct: str  # the Go struct named in json's errors


_LEASE_SPEC: Final = (
    Field(("spec", "holderIdentity"), "string", "LeaseSpec"),
    Field(("spec", "leaseDurationSeconds"), "int32", "LeaseSpec"),
    Field(("spec", "acquireTime"), "MicroTime", "LeaseSpec"),
    Field(("spec", "renewTime"), "MicroTime", "LeaseSpec"),
    Field(("spec", "leaseTransitions"), "int32", "LeaseSpec"),
    Field(("spec", "strategy"), "string", "LeaseSpec"),
    Field(("spec", "preferredHolder"), "string", "LeaseSpec"),
)
_EVENT: Final = (
    Field(("firstTimestamp",), "Time", "Event"),
    Field(("lastTimestamp",), "Time", "Event"),
    Field(("eventTime",), "MicroTime", "Event"),
    Field(("count",), "int32", "Event"),
    Field(("series", "count"), "int32", "EventSeries"),
    Field(("series", "lastObservedTime"), "MicroTime", "EventSeries"),
)
_FIELDS: Final = {LEASES.name: _LEASE_SPEC, EVENTS.name: _EVENT}
_TIMES: Final[dict[str, tuple[Callable[[str], float], Callable[[float], str]]]] = {
    "Time": (parse_time, time_text),
    "MicroTime": (parse_micro_time, micro_time_text),
}


def decode(resource: ResourceType, obj: Object) -> None:
    """Checks and canonicalises ``obj`` in place (the caller's own copy); raises a 400."""
    try:
        for field in _FIELDS.get(resource.name, ()):
            _decode_field(obj, field)
    except (TypeError, TimeFormatError) as exc:
        raise undecodable(resource, str(exc)) from exc


def undecodable(resource: ResourceType, why: str) -> ApiError:
    """transformDecodeError's 400 for a body of the right kind that Go cannot decode."""
    kind, version = resource.kind, resource.version
    return bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {why}')


def _decode_field(obj: Object, field: Field) -> None:
    parent: Any = obj
    for key in field.path[:-1]:
        parent = parent.get(key) if isinstance(parent, dict) else None
    key = field.path[-1]
    if not isinstance(parent, dict) or key not in parent:
        return
    value = parent[key]
    if value is None:  # JSON null: Go leaves the zero value, which is not written back
        del parent[key]
        return
    if field.go_type in _TIMES:
        if not isinstance(value, str):
            raise TypeError(
                f"json: cannot unmarshal {_json_type(value)} into Go value of type string"
            )
        read, write = _TIMES[field.go_type]
        parent[key] = write(read(value))
        return
    wanted = str if field.go_type == "string" else int
    if not isinstance(value, wanted) or isinstance(value, bool):
        described = _json_type(value)
        if isinstance(value, float) and field.go_type == "int32":
            described = f"number {value:g}"
        raise TypeError(
            f"json: cannot unmarshal {described} into Go struct field"
            f" {field.struct}.{'.'.join(field.path)} of type {field.go_type}"
        )
    if isinstance(value, int) and not _INT32[0] <= value <= _INT32[1]:
        raise TypeError(
            f"json: cannot unmarshal number {value} into Go struct field"
            f" {field.struct}.{'.'.join(field.path)} of type int32"
        )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    return "array" if isinstance(value, list) else "object"
