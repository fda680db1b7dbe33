"""Durations as people write them: ``300``, ``90s``, ``5m``, ``1h30m``, ``1.5h``, ``250ms``.

One rule for every door: the CLI's ``--timeout`` and ``--deadline``, and the
REST gateway's JSON (``"Timeout": "5m"`` next to protobuf's own ``"300s"``).
The GitHub Action's script follows the same grammar in bash. A number alone
is seconds; otherwise Go's ``time.ParseDuration`` units ``h``, ``m``, ``s`` and
``ms``, largest first or in any order, summed.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final

#: The grammar, as a regular expression (the OpenAPI document shows it too).
PATTERN: Final = r"^-?(?:[0-9]+(?:\.[0-9]+)?|(?:[0-9]+(?:\.[0-9]+)?(?:h|ms|m|s))+)$"
EXAMPLES: Final = '"90s", "5m" or "1h30m"'

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s)")
_UNITS: Final = {"h": Decimal(3600), "m": Decimal(60), "s": Decimal(1), "ms": Decimal("0.001")}
_NANOSECOND = Decimal("1e-9")
# google.protobuf.Duration's own bound.
_LONGEST = Decimal(315_576_000_000)


def parse_duration(text: str) -> Decimal:
    """The seconds ``text`` stands for; raises ValueError with a sentence for a person."""
    written = text.strip()
    if re.fullmatch(PATTERN, written) is None:
        raise ValueError(f"{text!r} is not a duration; write it like {EXAMPLES}")
    sign = -1 if written.startswith("-") else 1
    written = written.lstrip("-")
    try:
        seconds = Decimal(written)
    except InvalidOperation:
        seconds = sum(
            (Decimal(number) * _UNITS[unit] for number, unit in _PART.findall(written)),
            Decimal(0),
        )
    return sign * seconds


def protobuf_json(text: str) -> str:
    """``text`` in the JSON form of ``google.protobuf.Duration`` (``"5m"`` -> ``"300s"``)."""
    seconds = parse_duration(text)
    if abs(seconds) > _LONGEST:
        raise ValueError(f"{text!r} is longer than a duration may be (about 10,000 years)")
    seconds = seconds.quantize(_NANOSECOND)
    # normalize() drops trailing zeros, but writes 300 as 3E+2: format it back.
    return f"{seconds.normalize():f}s"


def format_duration(seconds: float) -> str:
    """``seconds`` as people write it, to the second: ``42s``, ``5m``, ``1h30m``, ``2m5s``."""
    left = round(seconds)
    if left < 60:
        return f"{seconds:g}s" if seconds < 1 else f"{left}s"
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
