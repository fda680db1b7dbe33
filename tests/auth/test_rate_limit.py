"""Per-identity token buckets."""

from __future__ import annotations

import pytest

from kubeupdate.auth.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0


def test_identities_are_independent() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=Clock())
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0


def test_refused_requests_do_not_dig_deeper() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock)
    limiter.acquire("a")
    for _ in range(10):
        limiter.acquire("a")
    clock.now += 1.0
    assert limiter.acquire("a") == 0.0


def test_idle_full_buckets_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock, max_idle_buckets=2)
    for name in "abc":
        limiter.acquire(name)
    clock.now += 5
    limiter.acquire("d")
    assert len(limiter._buckets) <= 2


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_bad_settings(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate, burst)
