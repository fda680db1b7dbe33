"""The Lease's rules: how long a holder may stay silent, and how others tell that it did.

As client-go's leader election (``tools/leaderelection``) plays them:

- the holder renews every ``renew_every`` seconds (a third of the duration);
  a holder that could not renew for ``renew_deadline`` seconds (two thirds)
  stops acting, so it has stopped before anyone may take over;
- nobody trusts the times written in a Lease (they come from another
  machine's clock): an observer notes *when it saw* each change, on its own
  monotonic clock, and deems the Lease expired once ``leaseDurationSeconds``
  (the Lease's own value) have passed without another change
  (:class:`Sightings`). A replica that starts afresh therefore waits a full
  duration before taking over a Lease it has just seen; one released (no
  holder) may be taken at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from kubeupdate.guarded.records import GuardedRecord

DEFAULT_DURATION = 15
DEFAULT_RETENTION = 600


@dataclass(frozen=True)
class LeaseTerms:
    """How records are held (``kubeupdate serve`` flags)."""

    #: leaseDurationSeconds of a held record: others take over after this much silence.
    duration: int = DEFAULT_DURATION
    #: Seconds a closed record (its verdict) is kept after it was last written.
    retention: int = DEFAULT_RETENTION

    def __post_init__(self) -> None:
        if self.duration < 1:
            raise ValueError("the lease duration must be at least one second")
        if self.retention < 1:
            raise ValueError("the verdict retention must be at least one second")

    @property
    def follow_rollback(self) -> float:
        """Seconds a taker follows the rollout of its rollback (a waited call uses its timeout)."""
        return float(self.duration * 20)

    @property
    def renew_every(self) -> float:
        return self.duration / 3

    @property
    def renew_deadline(self) -> float:
        return self.duration * 2 / 3


class Sightings:
    """When this replica saw each record change last, on its own monotonic clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[str, float]] = {}

    def see(self, record: GuardedRecord) -> float:
        """Note the record as it is now; when its current version was first seen."""
        key = (record.namespace, record.name)
        known = self._seen.get(key)
        if known is not None and known[0] == record.resource_version:
            return known[1]
        now = self._clock()
        self._seen[key] = (record.resource_version, now)
        return now

    def expires_at(self, record: GuardedRecord) -> float:
        """When (monotonic) the record expires unless it changes before."""
        return self.see(record) + record.duration

    def expired(self, record: GuardedRecord) -> bool:
        return self._clock() >= self.expires_at(record)

    def forget(self, namespace: str, name: str) -> None:
        self._seen.pop((namespace, name), None)

    def keep_only(self, keys: set[tuple[str, str]]) -> None:
        """Forget records no longer listed (deleted)."""
        for key in [k for k in self._seen if k not in keys]:
            del self._seen[key]
