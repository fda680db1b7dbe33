"""Process-wide logging for ``kubeupdate``: text for a terminal, JSON lines for collectors.

``configure(level, "json")`` writes one JSON object per line to stderr::

    {"time": "2026-11-27T14:00:00.123Z", "level": "INFO", "logger": "gateway.access",
     "message": "GET /deployment/default/web/app 200 1.2ms", "request_id": "4f2c...",
     "method": "GET", "path": "/deployment/default/web/app", "status": 200, ...}

``request_id`` is there inside a request (:mod:`kubeupdate.request_ids`): the
id the gateway gave it (or took from ``X-Request-Id``), which the service
receives as ``x-request-id`` metadata, so one grep follows a request through
both processes. Fields passed with ``extra=`` are added when they are plain
JSON values; nothing else from the request is logged (no headers, so no
credentials).

The text format writes one line per record whatever the record holds: control
characters in the message (a ``%0A`` in a URL path, say) are escaped, and the
lines of a traceback after the first are indented, so nothing a caller sends
can start a line that reads as a record of its own. (JSON escapes them anyway.)
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Final, TextIO

from kubeupdate import request_ids

FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"

# What every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every log record, for formats that show it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_ids.current.get()
        return True


# C0 and C1 controls, DEL and Unicode's line and paragraph separators: what may end a line.
_CONTROLS: Final = {code: f"\\x{code:02x}" for code in (*range(0x00, 0x20), *range(0x7F, 0xA0))} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``)."""
    return text.translate(_CONTROLS)


class TextFormatter(logging.Formatter):
    """:data:`TEXT_FORMAT`, one line per record (plus indented traceback lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        # A traceback's last line quotes the exception, which may quote a caller.
        return "\n    ".join(escape_controls(line) for line in text.split("\n"))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request_id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        document: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", request_ids.NONE)
        if rid != request_ids.NONE:
            document["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and isinstance(value, str | int | float | bool):
                document.setdefault(key, value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, ensure_ascii=False, default=str)


def handler(log_format: str, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing ``log_format`` ("text" or "json") that knows the request id.

    It writes to ``stream``, by default stderr.
    """
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; use one of {', '.join(FORMATS)}")
    output = logging.StreamHandler(stream if stream is not None else sys.stderr)
    output.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(TEXT_FORMAT))
    output.addFilter(RequestIdFilter())
    return output


def configure(level: str, log_format: str) -> None:
    """Replaces the root logger's handlers by one :func:`handler`."""
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler(log_format))
    root.setLevel(level.upper())
