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
    output.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    output.addFilter(RequestIdFilter())
    return output


def configure(level: str, log_format: str) -> None:
    """Replaces the root logger's handlers by one :func:`handler`."""
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler(log_format))
    root.setLevel(level.upper())
