"""Simulated time for the devcluster's controllers.

Rollouts in a real cluster take seconds to minutes; tests cannot wait that
long. The clock runs at ``speed`` times real time (0 stops it: only
``advance`` moves it), so a test can jump a rollout forward deterministically.
"""

from __future__ import annotations

import threading
import time


class SimulatedClock:
    """Seconds since the epoch, running at ``speed`` times real time."""

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._speed = speed
        self._base = time.time() if start is None else start
        self._real_base = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        with self._lock:
            return self._now_locked()

    def advance(self, seconds: float) -> None:
        """Moves the clock forward by ``seconds`` of simulated time."""
        if seconds < 0:
            raise ValueError("the clock cannot go backwards")
        with self._lock:
            self._rebase()
            self._base += seconds

    def set_speed(self, speed: float) -> None:
        if speed < 0:
            raise ValueError("speed must be zero or positive")
        with self._lock:
            self._rebase()
            self._speed = speed

    def _now_locked(self) -> float:
        return self._base + (time.monotonic() - self._real_base) * self._speed

    def _rebase(self) -> None:
        self._base = self._now_locked()
        self._real_base = time.monotonic()
