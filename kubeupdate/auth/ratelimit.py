"""Request budgets: one token bucket per caller, and back-off for failed authentications.

:class:`RateLimiter`: each caller may burst ``burst`` requests, then ``rate``
per second. Buckets of idle callers are forgotten once full again, so memory
follows the number of active callers, not of all callers ever seen.

:class:`FailureBackoff`: an authentication that fails costs its source (and the
token id it claimed) one of ``allowed`` failures; each failure past them blocks
the key for twice as long as the one before, from ``first_delay`` up to
``max_delay``. The security interceptor refuses a blocked source before looking
at its credentials, so guessing costs the guesser time, not us work; a blocked
token id only turns the answers to further failed attempts into 429s (its
holder, with the right secret, is never locked out by someone else's guesses).
A key that has not failed for ``max_delay`` starts afresh.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


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


@dataclass
class _Failures:
    count: int
    blocked_until: float
    last: float


class FailureBackoff:
    """Failed authentications by key (``source:ADDRESS``, ``token:ID``), with back-off."""

    def __init__(
        self,
        allowed: int = 10,
        *,
        first_delay: float = 1.0,
        max_delay: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if allowed < 1 or first_delay <= 0 or max_delay < first_delay:
            raise ValueError(
                "allow at least one failure, and a positive first delay below the longest"
            )
        self.allowed = allowed
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._clock = clock
        self._max_keys = max_keys
        # Least recently failed first, so the oldest are dropped when there are too many.
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def blocked(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0.0 when it may now."""
        entry = self._keys.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.blocked_until - self._clock())

    def failed(self, key: str) -> float:
        """Count one failure of ``key``; the block it is now under (0.0 within its allowance)."""
        now = self._clock()
        entry = self._keys.pop(key, None)
        if entry is None or now - entry.last >= self.max_delay:
            entry = _Failures(0, now, now)
        entry.count += 1
        entry.last = now
        beyond = entry.count - self.allowed
        if beyond > 0:
            # Doubles with each failure past the allowance; the exponent is capped too.
            delay = min(self.max_delay, self.first_delay * 2.0 ** min(beyond - 1, 64))
            entry.blocked_until = max(entry.blocked_until, now + delay)
        self._keys[key] = entry
        if len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)
        return max(0.0, entry.blocked_until - now)

    def succeeded(self, key: str) -> None:
        """Forget ``key``'s failures (its holder proved who it is)."""
        self._keys.pop(key, None)
