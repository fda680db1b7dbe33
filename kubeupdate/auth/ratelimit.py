"""Per-identity request budgets: one token bucket per caller name.

Each caller may burst ``burst`` requests, then ``rate`` per second. Buckets
of idle callers are forgotten once full again, so memory follows the number
of active callers, not of all callers ever seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """Token buckets by identity; :meth:`acquire` says how long to wait, 0 when allowed."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_idle_buckets: int = 10_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._max_buckets = max_idle_buckets
        # identity -> (tokens, time of the last update)
        self._buckets: dict[str, tuple[float, float]] = {}

    def acquire(self, identity: str) -> float:
        """Take one token for ``identity``: 0.0 if granted, else seconds until one is free."""
        now = self._clock()
        tokens, updated = self._buckets.get(identity, (self.burst, now))
        tokens = min(self.burst, tokens + (now - updated) * self.rate)
        if tokens < 1.0:
            self._buckets[identity] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[identity] = (tokens - 1.0, now)
        if len(self._buckets) > self._max_buckets:
            self._forget_full(now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        for identity, (tokens, updated) in list(self._buckets.items()):
            if tokens + (now - updated) * self.rate >= self.burst:
                del self._buckets[identity]
