"""metav1.Time and metav1.MicroTime: how Kubernetes writes times, and how strictly it reads them.

``Time`` is written in UTC to the second (``2026-01-02T03:04:05Z``) and read as
Go's ``time.RFC3339`` (a fraction and any offset accepted). ``MicroTime``
(Lease ``acquireTime``/``renewTime``, Event ``eventTime``) is written in UTC
with exactly six fraction digits and read with the layout
``2006-01-02T15:04:05.000000Z07:00``, which wants exactly six digits: a client
that sends ``...:05Z`` is refused. Errors carry Go's ``time.Parse`` wording,
which kube-apiserver passes on in its 400.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

TIME_LAYOUT: Final = "2006-01-02T15:04:05Z07:00"
MICRO_TIME_LAYOUT: Final = "2006-01-02T15:04:05.000000Z07:00"

# Layout elements in order: (Go's element text, pattern of what it accepts).
_NUMBERS: Final = frozenset({"2006", "01", "02", "15", "04", "05"})
_ELEMENTS: Final = (
    ("2006", r"\d{4}"),
    ("-", "-"),
    ("01", r"\d{2}"),
    ("-", "-"),
    ("02", r"\d{2}"),
    ("T", "T"),
    ("15", r"\d{2}"),
    (":", ":"),
    ("04", r"\d{2}"),
    (":", ":"),
    ("05", r"\d{2}"),
)
_ZONE = re.compile(r"Z|[+-]\d{2}:\d{2}")
_ANY_FRACTION = re.compile(r"[.,]\d+")
_MICRO_FRACTION = re.compile(r"[.,]\d{6}")


class TimeFormatError(ValueError):
    """A time Go's ``time.Parse`` would refuse; ``str()`` is its error message."""


def time_text(seconds: float) -> str:
    """A metav1.Time as Kubernetes writes it: UTC, whole seconds."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time_text(seconds: float) -> str:
    """A metav1.MicroTime as Kubernetes writes it: UTC, six fraction digits."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float:
    """Seconds since the epoch of a metav1.Time (RFC 3339; a fraction is allowed)."""
    return _parse(text, TIME_LAYOUT, _ANY_FRACTION, optional_fraction=True)


def parse_micro_time(text: str) -> float:
    """Seconds since the epoch of a metav1.MicroTime (exactly six fraction digits)."""
    return _parse(text, MICRO_TIME_LAYOUT, _MICRO_FRACTION, optional_fraction=False)


def _parse(text: str, layout: str, fraction: re.Pattern[str], *, optional_fraction: bool) -> float:
    def refuse(rest: str, element: str) -> TimeFormatError:
        return TimeFormatError(
            f'parsing time "{text}" as "{layout}": cannot parse "{rest}" as "{element}"'
        )

    rest = text
    values: list[int] = []
    for element, pattern in _ELEMENTS:
        match = re.match(pattern, rest)
        if match is None:
            raise refuse(rest, element)
        if element in _NUMBERS:
            values.append(int(match.group()))
        rest = rest[match.end() :]
    micros = 0
    match = fraction.match(rest)
    if match is not None:
        digits = match.group()[1:]
        micros = int((digits + "000000")[:6])
        rest = rest[match.end() :]
    elif not optional_fraction:
        raise refuse(rest, ".000000")
    zone = _ZONE.fullmatch(rest)
    if zone is None:
        raise refuse(rest, "Z07:00")
    year, month, day, hour, minute, second = values
    offset = UTC
    if rest != "Z":
        sign = -1 if rest[0] == "-" else 1
        offset = timezone(sign * timedelta(hours=int(rest[1:3]), minutes=int(rest[4:6])))
    try:
        moment = datetime(year, month, day, hour, minute, second, micros, offset)
    except ValueError as exc:
        # Go: "parsing time "...": month out of range" and the like.
        field = str(exc).split(" must", 1)[0].replace("day is out of range for month", "day")
        raise TimeFormatError(f'parsing time "{text}": {field} out of range') from exc
    return moment.timestamp()
