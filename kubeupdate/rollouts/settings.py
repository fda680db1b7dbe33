"""How long waits may last and how they watch: the server's side of every wait."""

from __future__ import annotations

from dataclasses import dataclass

from kubeupdate.kube.informers import DEFAULT_LINGER
from kubeupdate.kube.reflector import DEFAULT_WATCH_SECONDS


@dataclass(frozen=True)
class RolloutSettings:
    """Server-side limits and delays of waits (``kubeupdate serve`` flags)."""

    #: The wait's timeout when the request sets none.
    default_timeout: float = 300.0
    #: Longer requested timeouts are cut to this.
    max_timeout: float = 1800.0
    #: How long a new Pod may stay unready with a container in trouble (ImagePullBackOff,
    #: CrashLoopBackOff...) before the rollout fails; seconds of the cluster's clock.
    stuck_grace: float = 30.0
    #: While a Pod's grace runs, the cluster's time is read again at least this often
    #: (one ``GET /version`` per process), so a clock that jumped is noticed.
    clock_sync: float = 10.0
    #: timeoutSeconds of each watch request; the watch then starts again.
    watch_seconds: int = DEFAULT_WATCH_SECONDS
    #: Seconds a shared watch outlives the last rollout that read it.
    watch_linger: float = DEFAULT_LINGER
    #: A wait ends at most this long before the caller's deadline, to answer in time.
    deadline_margin: float = 0.25
