"""Per-identity token buckets."""

from __future__ import annotations

import pytest

from kubeupdate.auth.ratelimit import FailureBackoff, RateLimiter


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


def test_failures_past_the_allowance_back_off_doubling() -> None:
    clock = Clock()
    backoff = FailureBackoff(3, first_delay=1.0, max_delay=8.0, clock=clock)
    assert [backoff.failed("source:a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert backoff.blocked("source:a") == 0.0
    assert [backoff.failed("source:a") for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert backoff.blocked("source:a") == 8.0
    assert backoff.blocked("source:b") == 0.0
    clock.now += 3
    assert backoff.blocked("source:a") == 5.0


def test_a_key_that_stops_failing_starts_afresh() -> None:
    clock = Clock()
    backoff = FailureBackoff(2, first_delay=1.0, max_delay=8.0, clock=clock)
    for _ in range(4):
        backoff.failed("token:bot")
    clock.now += 8
    assert backoff.blocked("token:bot") == 0.0
    assert backoff.failed("token:bot") == 0.0


def test_a_success_forgets_the_failures() -> None:
    backoff = FailureBackoff(1, clock=Clock())
    backoff.failed("token:bot")
    assert backoff.failed("token:bot") == 1.0
    backoff.succeeded("token:bot")
    assert backoff.blocked("token:bot") == 0.0
    assert backoff.failed("token:bot") == 0.0


def test_memory_is_bounded_by_the_least_recent_failures() -> None:
    backoff = FailureBackoff(1, clock=Clock(), max_keys=3)
    for key in "abcd":
        backoff.failed(key)
    assert list(backoff._keys) == ["b", "c", "d"]


@pytest.mark.parametrize(
    ("allowed", "first", "longest"), [(0, 1.0, 10.0), (1, 0.0, 10.0), (1, 5.0, 1.0)]
)
def test_bad_backoff_settings(allowed: int, first: float, longest: float) -> None:
    with pytest.raises(ValueError, match="at least one failure"):
        FailureBackoff(allowed, first_delay=first, max_delay=longest)
