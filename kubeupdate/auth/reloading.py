"""Files that are re-read when they change: the policy, the tokens, the registry credentials.

A change is noticed by polling the file's status at most once per
``interval`` (one ``stat``, cheap enough to do on the request path) or
immediately on :meth:`WatchedFile.reload` (SIGHUP). A file that no longer
parses keeps the previous value in force and the reason goes to the log.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import yaml

log = logging.getLogger(__name__)

T = TypeVar("T")


class WatchedFile(Generic[T]):
    """The parsed value of a YAML file (or another format, see ``decode``), kept current."""

    def __init__(
        self,
        path: Path,
        parse: Callable[[Any], T],
        *,
        what: str,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        decode: Callable[[IO[str]], Any] = yaml.safe_load,
    ) -> None:
        """``decode`` reads the open file into data for ``parse``; JSON files that may
        be indented with tabs (Docker's ``config.json``) need ``json.load``, as YAML
        refuses tabs. Its errors must be ``ValueError`` or YAML errors."""
        self.path = path
        self._parse = parse
        self._decode = decode
        self._what = what
        self._interval = interval
        self._clock = clock
        self._checked_at = clock()
        # Raises on a bad file at start: better not to serve than to serve wrong.
        self._stamp = self._stat()
        self._value = self._load()
        self.reloads = 0

    @property
    def value(self) -> T:
        """The current value; notices a changed file at most once per interval."""
        now = self._clock()
        if now - self._checked_at >= self._interval:
            self._checked_at = now
            if self._stat() != self._stamp:
                self.reload()
        return self._value

    def reload(self) -> bool:
        """Re-read the file now; True when the new content is in force."""
        self._stamp = self._stat()
        try:
            self._value = self._load()
        except (OSError, ValueError, yaml.YAMLError) as exc:
            log.error(
                "%s %s not reloaded, the previous one stays in force: %s",
                self._what,
                self.path,
                exc,
            )
            return False
        self.reloads += 1
        log.info("%s %s reloaded", self._what, self.path)
        return True

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            status = os.stat(self.path)
        except OSError:
            return None
        return (status.st_mtime_ns, status.st_size, status.st_ino)

    def _load(self) -> T:
        # The open file, not its text: YAML errors then name the file.
        with self.path.open(encoding="utf-8") as stream:
            return self._parse(self._decode(stream))
