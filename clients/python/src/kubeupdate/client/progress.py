"""The live progress display of rollouts: one line rewritten in place on a
terminal, plain lines (each distinct state once) otherwise, so CI logs stay
readable."""

from __future__ import annotations

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


class ProgressDisplay:
    """Shows successive rollout states on ``stream``."""

    def __init__(self, stream: TextIO, *, tty: bool | None = None) -> None:
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._last: str | None = None
        self._open = False  # a TTY line is shown and not yet ended

    def update(self, rollout: Rollout) -> None:
        line = describe(rollout)
        if line == self._last:
            return
        self._last = line
        if self._tty:
            self._stream.write(_REWRITE + line)
            self._open = True
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def finish(self) -> None:
        """Ends the in-place line, so later output starts on a fresh one."""
        if self._open:
            self._stream.write("\n")
            self._stream.flush()
            self._open = False
