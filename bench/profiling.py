"""Where the CPU goes: py-spy samples of a running process, summed per function.

``py-spy record --format raw`` writes one line per distinct stack
("frame;frame;... count"); the summary counts, for each function, the
samples where it is on top of the stack (self) and anywhere in it (total).
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    """py-spy from PATH or from this interpreter's venv."""
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


class Recorder:
    """``py-spy record`` of one process for ``seconds``, started in the background."""

    def __init__(self, pid: int, seconds: float, rate: int = 250) -> None:
        self._directory = tempfile.TemporaryDirectory()
        self._output = Path(self._directory.name) / "stacks.txt"
        command = [
            py_spy() or "py-spy", "record", "--pid", str(pid),
            "--duration", str(max(1, round(seconds))), "--rate", str(rate),
            "--format", "raw", "--nonblocking", "--output", str(self._output),
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def summary(self, top: int = 15) -> dict[str, Any]:
        _, stderr = self._process.communicate(timeout=120)
        try:
            if self._process.returncode != 0 or not self._output.exists():
                return {"error": stderr.decode("utf-8", "replace").strip()[-500:]}
            return summarise(self._output.read_text(), top)
        finally:
            self._directory.cleanup()


def summarise(raw: str, top: int) -> dict[str, Any]:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [_short(frame) for frame in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / samples, 1)) for name, n in counter.most_common(top)]

    return {"samples": samples, "self_percent": share(own), "total_percent": share(total)}


def _short(frame: str) -> str:
    """``function (path/to/module.py:line)`` -> ``function (module.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    return f"{name} ({'/'.join(parts[-2:])})" if parts else name
