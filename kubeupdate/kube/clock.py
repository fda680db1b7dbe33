"""The API server's clock, as kubeupdate can know it: from the ``Date`` of its answers.

Every timestamp in a Kubernetes object (``creationTimestamp``, a condition's
``lastTransitionTime``, a container's ``startedAt``...) is written by the API
server or a controller with *the cluster's* clock, which need not agree with
the clock of the machine kubeupdate runs on (and in tests is the devcluster's
simulated clock, stopped and moved by the test). Comparing a Pod's timestamps
with ``time.time()`` would judge it by the wrong clock.

kube-apiserver (Go's ``net/http``) sends a ``Date`` header with every answer:
the cluster's time to the second. :class:`ClusterClock` keeps the latest one
together with the local monotonic time it arrived at, and estimates the
cluster's time now as that ``Date`` plus the local time elapsed since (clocks
may be offset, but they run at the same rate). The estimate is a lower bound,
up to a second behind: ``Date`` is truncated to the second, so nothing is
judged late too early. Without any ``Date`` yet it falls back to the local
wall clock.

A sample that disagrees with the estimate by more than :data:`TOLERANCE` (the
cluster's clock was stepped, or is simulated and was moved) is announced to
the listeners, so whoever sleeps until a cluster time looks again.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Final

#: Seconds by which a new ``Date`` may differ from the estimate before listeners are told.
TOLERANCE: Final = 2.0


class ClusterClock:
    """The API server's time, learned from the ``Date`` headers of its answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sample: tuple[float, float] | None = None  # (cluster time, local monotonic)
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        """The cluster's time now, in seconds since the epoch (a lower bound, see above)."""
        with self._lock:
            sample = self._sample
        if sample is None:
            return time.time()
        cluster, local = sample
        return cluster + (time.monotonic() - local)

    def age(self) -> float:
        """Seconds since the last ``Date`` arrived (infinite before the first)."""
        with self._lock:
            sample = self._sample
        return float("inf") if sample is None else time.monotonic() - sample[1]

    def local(self, cluster_time: float) -> float:
        """The ``time.monotonic()`` value at which the cluster's clock reads ``cluster_time``."""
        return time.monotonic() + (cluster_time - self.now())

    def observe(self, date: str | None) -> None:
        """Learn from one answer's ``Date`` header (an HTTP date; ignored when unreadable)."""
        if not date:
            return
        try:
            cluster = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        local = time.monotonic()
        with self._lock:
            previous = self._sample
            self._sample = (cluster, local)
            listeners = list(self._listeners)
        if previous is not None and abs(cluster - (previous[0] + local - previous[1])) > TOLERANCE:
            for listener in listeners:
                listener()

    def listen(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` when the cluster's clock is found to jump; returns the way out."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove


def parse_time(value: object) -> float | None:
    """A Kubernetes timestamp (RFC 3339, ``2024-05-01T10:00:31Z``) in seconds since the epoch."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # Kubernetes always writes UTC with its zone; anything else is not ours
    return moment.timestamp()
