"""Files that are re-read when they change: the policy, the tokens, the registry credentials.

A change is noticed by polling the file's status at most once per
``interval`` (one ``stat``, cheap enough to do on the request path) or
immediately on :meth:`WatchedFile.reload` (SIGHUP). A file that no longer
parses keeps the previous value in force and the reason goes to the log.

These files decide who may do what, so only their owner may write them: a file
that its group or every user of the host may write, or that belongs to another
user than this process's or root, is refused like a broken one (at start the
service does not start). The checks look at the file itself, through symlinks,
so Kubernetes' mounts of ConfigMaps and Secrets (``policy.yaml ->
..data/policy.yaml``, files owned by root, mode 0644) pass; the directories are
not checked, since Kubernetes mounts those read-only but shows them as 0777.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import yaml

log = logging.getLogger(__name__)

T = TypeVar("T")


class UnsafeFileError(ValueError):
    """Someone other than the file's owner may change it; the message says who and what to do."""


def check_ownership(path: Path, status: os.stat_result) -> None:
    """Raise UnsafeFileError unless only this process's user or root can write the file."""
    mode = stat.S_IMODE(status.st_mode)
    if mode & stat.S_IWOTH:
        raise UnsafeFileError(
            f"{path} is writable by every user of the host (mode {mode:04o}): run chmod go-w {path}"
        )
    if mode & stat.S_IWGRP:
        raise UnsafeFileError(
            f"{path} is writable by its group (mode {mode:04o}): run chmod g-w {path}"
        )
    owners = {os.geteuid(), 0}
    if status.st_uid not in owners:
        raise UnsafeFileError(
            f"{path} belongs to user {status.st_uid}, neither this process's user "
            f"({os.geteuid()}) nor root, who could change it: chown it"
        )


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

    def _stat(self) -> tuple[int, ...] | None:
        try:
            status = os.stat(self.path)
        except OSError:
            return None
        # Mode and owner too: a chmod or chown that makes a refused file safe is a change.
        return (status.st_mtime_ns, status.st_size, status.st_ino, status.st_mode, status.st_uid)

    def _load(self) -> T:
        # The open file, not its text: YAML errors then name the file.
        with self.path.open(encoding="utf-8") as stream:
            # Checked on what was opened, so a swap after the check cannot slip through.
            check_ownership(self.path, os.fstat(stream.fileno()))
            return self._parse(self._decode(stream))
