"""The API server's clock, learned from the Date of its answers."""

from __future__ import annotations

import email.utils
import time

import pytest

from kubeupdate.kube.clock import TOLERANCE, ClusterClock, parse_time

# A cluster whose clock is a day behind this machine's.
BEHIND = 86_400.0


def date(seconds: float) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def test_without_a_date_the_local_clock_stands_in() -> None:
    clock = ClusterClock()

    assert abs(clock.now() - time.time()) < 5
    assert clock.age() == float("inf")


def test_the_clusters_time_is_its_date_plus_the_time_since_it_arrived() -> None:
    clock = ClusterClock()
    cluster_now = time.time() - BEHIND

    clock.observe(date(cluster_now))

    # Date has whole seconds: the estimate is at most a second behind, never ahead
    # (beyond the time this test takes).
    assert cluster_now - 1 <= clock.now() <= cluster_now + 5
    assert clock.age() < 5
    assert abs(clock.local(clock.now() + 30) - (time.monotonic() + 30)) < 1


@pytest.mark.parametrize("header", [None, "", "not a date", "Thu, 99 Foo 2026 99:99:99 GMT"])
def test_an_unreadable_date_is_ignored(header: str | None) -> None:
    clock = ClusterClock()
    clock.observe(date(time.time() - BEHIND))
    before = clock.now()

    clock.observe(header)

    assert before - 1 <= clock.now() <= before + 5


def test_listeners_hear_of_a_jump_not_of_every_answer() -> None:
    clock = ClusterClock()
    heard: list[str] = []
    remove = clock.listen(lambda: heard.append("jump"))
    start = time.time() - BEHIND

    clock.observe(date(start))  # the first sample: nothing to compare with
    clock.observe(date(start))  # agrees with the estimate
    clock.observe(date(start + TOLERANCE + 60))  # the cluster's clock moved on by a minute
    remove()
    clock.observe(date(start + 600))

    assert heard == ["jump"]


def test_kubernetes_timestamps_are_read_as_utc() -> None:
    assert parse_time("2026-05-01T10:00:31Z") == 1777629631.0
    assert parse_time("2026-05-01T10:00:31.250000Z") == 1777629631.25
    assert parse_time("2026-05-01T10:00:31") is None  # no zone: not Kubernetes'
    assert parse_time("yesterday") is None
    assert parse_time(None) is None
