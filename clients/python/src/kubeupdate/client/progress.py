"""The live progress display of rollouts.

On a terminal: one line rewritten in place, cut to the terminal's width (read
again at each update, so a resized window is followed), because a line longer
than the terminal wraps and ``\\r`` then only rewrites its last row. Anywhere
else (CI logs, files): one plain line per distinct state.

A waited change starts with :meth:`ProgressDisplay.start`: a line saying which
change is waited for, so the first thing shown is about this change.
"""

from __future__ import annotations

import os
import shutil
from typing import TextIO

from kubeupdate.client.results import Rollout

# Carriage return, then erase to the end of the line (ANSI EL).
_REWRITE = "\r\x1b[K"


def describe(rollout: Rollout) -> str:
    """One line for humans: state, replica counts, kubectl's sentence."""
    line = f"{rollout.namespace}/{rollout.deployment}: {rollout.state.name}"
    if rollout.replicas:
        line += (
            f" {rollout.updated_replicas}/{rollout.replicas} updated,"
            f" {rollout.available_replicas}/{rollout.replicas} available"
        )
    if rollout.message or rollout.reason:
        line += f" - {rollout.message or rollout.reason}"
    return line


def fit(line: str, width: int, ellipsis: str = "…") -> str:
    """``line`` cut to fit ``width`` columns with one to spare, ending in ``ellipsis`` if cut.

    The spare column keeps the cursor off the last one, where some terminals
    wrap at once.
    """
    room = max(width - 1, len(ellipsis) + 1)
    if len(line) <= room:
        return line
    return line[: room - len(ellipsis)] + ellipsis


def terminal_width(stream: TextIO) -> int:
    """The width of the terminal ``stream`` writes to (80 when it cannot be told)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return shutil.get_terminal_size((80, 24)).columns


class ProgressDisplay:
    """Shows successive rollout states on ``stream``; ``width`` overrides the terminal's."""

    def __init__(
        self, stream: TextIO, *, tty: bool | None = None, width: int | None = None
    ) -> None:
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._width = width
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        self._ellipsis = "…" if encoding.startswith("utf") else "..."
        self._last: str | None = None
        self._open = False  # a TTY line is shown and not yet ended

    def start(self, text: str) -> None:
        """A line of its own saying what is waited for (before any rollout state).

        It is never cut: it stays on the screen, so a long one may wrap.
        """
        self._write(text, rewrite=False, cut=False)

    def say(self, text: str) -> None:
        """A line of its own between states (e.g. the rollout was handed over), never cut."""
        self._write(text, rewrite=False, cut=False)

    def update(self, rollout: Rollout) -> None:
        line = describe(rollout)
        if line == self._last:
            return
        self._last = line
        self._write(line, rewrite=self._tty)

    def finish(self) -> None:
        """Ends the in-place line, so later output starts on a fresh one."""
        if self._open:
            self._stream.write("\n")
            self._stream.flush()
            self._open = False

    def _write(self, line: str, *, rewrite: bool, cut: bool = True) -> None:
        if self._tty and cut:
            width = self._width or terminal_width(self._stream)
            line = fit(line, width, self._ellipsis)
        if rewrite:
            self._stream.write(_REWRITE + line)
            self._open = True
        else:
            self.finish()
            self._stream.write(line + "\n")
        self._stream.flush()
