"""A container's life as the kubelet drives it, as a pure function of simulated time.

Each function here yields the :class:`Step` s of one container, soonest
first: what ``containerStatuses[]`` says from that instant on. The kubelet
(:mod:`devcluster.controllers.kubelet`) renders the current step and wakes
up for the next one. The timings follow the kubelet:

- a failed pull shows ErrImagePull, then ImagePullBackOff at the next sync,
  and is tried again when the image back-off ends: 10 s, doubling up to 5 min
  (``flowcontrol.Backoff`` keyed by Pod and image);
- a container that exits is restarted at once the first time, then after the
  crash back-off (10 s doubling up to 5 min) while it waits in
  CrashLoopBackOff; a run longer than 10 min starts the back-off over;
- a Pod being deleted stops its running containers (SIGTERM, then SIGKILL at
  the end of the grace period); containers that never ran end as
  ContainerStatusUnknown.

"The next sync" is :data:`RESYNC` after a failure: a real kubelet looks again
on its next PLEG event or pod-worker retry, a second or so later.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Final

#: The kubelet's back-offs (image pulls and crashed containers): 10 s doubling up to 5 min.
BACK_OFF_START: Final = 10.0
BACK_OFF_MAX: Final = 300.0
#: A back-off entry older than twice the maximum counts as expired (it starts over).
_BACK_OFF_EXPIRY: Final = 2 * BACK_OFF_MAX
#: Simulated seconds from a failure to the kubelet's next look at the Pod.
RESYNC: Final = 1.0
#: What SIGKILL leaves as the exit code (128 + 9).
_KILLED: Final = 137


class Phase(enum.Enum):
    """Where a container is in its life (each maps to one ``state`` shape)."""

    CREATING = "ContainerCreating"  # waiting: sandbox and pull in progress
    PULL_FAILED = "ErrImagePull"  # waiting
    PULL_BACK_OFF = "ImagePullBackOff"  # waiting
    INVALID_IMAGE = "InvalidImageName"  # waiting
    RUNNING = "Running"  # running
    EXITED = "Exited"  # terminated (the kubelet has not restarted it yet)
    CRASH_BACK_OFF = "CrashLoopBackOff"  # waiting, after a crash
    STOPPED = "Stopped"  # terminated: stopped because its Pod is being deleted


@dataclass(frozen=True)
class Termination:
    """A finished run, as ``state.terminated`` / ``lastState.terminated`` show it."""

    run: int  # which run of the container (0 = the first): names its container ID
    exit_code: int
    reason: str
    started_at: float | None
    finished_at: float | None
    message: str | None = None


@dataclass(frozen=True)
class Step:
    """The container from ``at`` on, until the next step."""

    at: float
    phase: Phase
    #: restartCount.
    restarts: int = 0
    #: The current (or last) run, for the container ID.
    run: int = 0
    #: When the current run started (RUNNING).
    started_at: float | None = None
    #: state.terminated (EXITED, STOPPED).
    terminated: Termination | None = None
    #: lastState.terminated.
    last: Termination | None = None
    #: The back-off being waited out (PULL_BACK_OFF, CRASH_BACK_OFF).
    back_off: float = 0.0

    @property
    def has_run(self) -> bool:
        """Whether the container ever started (its image was pulled)."""
        return self.started_at is not None or self.terminated is not None or self.last is not None


def creating(created: float) -> Step:
    return Step(created, Phase.CREATING)


def invalid_image(start: float) -> Iterator[Step]:
    """An image the kubelet cannot parse: InvalidImageName for good."""
    yield Step(start, Phase.INVALID_IMAGE)


def failed_pulls(start: float) -> Iterator[Step]:
    """A pull that fails at ``start``: ErrImagePull and ImagePullBackOff, retried with back-off."""
    at = start
    for attempt in itertools.count():
        back_off = _back_off(attempt)
        yield Step(at, Phase.PULL_FAILED)
        yield Step(at + RESYNC, Phase.PULL_BACK_OFF, back_off=back_off)
        at += back_off


def runs(start: float, runs_for: float | None) -> Iterator[Step]:
    """A container started at ``start``; ``runs_for`` None runs for good, else it crashes.

    The kubelet's crash back-off: the first exit restarts at once, and so does an
    exit after a run longer than 10 minutes (its back-off entry expired); others
    wait 10 s, 20 s, ... 5 min in CrashLoopBackOff.
    """
    at, last = start, None
    back_off = 0.0  # the crash back-off entry; 0: none yet
    for run in itertools.count():
        yield Step(at, Phase.RUNNING, restarts=run, run=run, started_at=at, last=last)
        if runs_for is None:
            return
        exited = at + runs_for
        exit_ = Termination(run, 1, "Error", at, exited)
        yield Step(exited, Phase.EXITED, run, run, terminated=exit_, last=last)
        if back_off == 0.0 or runs_for > _BACK_OFF_EXPIRY:
            back_off = BACK_OFF_START
            at = exited + RESYNC
        else:
            yield Step(
                exited + RESYNC, Phase.CRASH_BACK_OFF, run, run, last=exit_, back_off=back_off
            )
            at = exited + back_off
            back_off = min(back_off * 2, BACK_OFF_MAX)
        last = exit_


def completes(start: float, runs_for: float) -> Iterator[Step]:
    """An init container that runs for ``runs_for`` seconds and exits 0 (Completed)."""
    yield Step(start, Phase.RUNNING, started_at=start)
    done = Termination(0, 0, "Completed", start, start + runs_for)
    yield Step(start + runs_for, Phase.EXITED, terminated=done)


def stopped(
    steps: Iterator[Step], killed_at: float, deadline: float, stop_seconds: float
) -> Iterator[Step]:
    """``steps`` cut short by the Pod's deletion at ``killed_at``.

    A running container gets SIGTERM at ``killed_at`` and exits ``stop_seconds``
    later (0, Completed), or is killed at ``deadline`` (137, Error); one that
    exits by itself first keeps its own exit. A container that is not running
    is not restarted: it keeps its last termination, or, if it was waiting,
    ends as ContainerStatusUnknown. The last step is the container's end.
    """
    current: Step | None = None
    upcoming = iter(steps)
    for step in upcoming:
        if step.at > killed_at:
            following: Step | None = step
            break
        if current is not None:
            yield current
        current = step
    else:
        following = None
    assert current is not None, "a container's steps start before its Pod can be deleted"
    if current.phase is Phase.RUNNING:
        yield current
        end = min(killed_at + stop_seconds, deadline)
        if following is not None and following.phase is Phase.EXITED and following.at <= end:
            yield following  # it crashed before it could stop
            return
        graceful = killed_at + stop_seconds <= deadline
        termination = Termination(
            current.run,
            0 if graceful else _KILLED,
            "Completed" if graceful else "Error",
            current.started_at,
            end,
        )
        yield replace(current, at=end, phase=Phase.STOPPED, started_at=None, terminated=termination)
        return
    if current.phase in (Phase.EXITED, Phase.STOPPED):
        yield current
        return
    yield current
    unknown = Termination(
        current.run,
        _KILLED,
        "ContainerStatusUnknown",
        None,
        None,
        "The container could not be located when the pod was terminated",
    )
    yield replace(current, at=killed_at, phase=Phase.STOPPED, started_at=None, terminated=unknown)


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String``, to the millisecond: 500ms, 10s, 1m20s, 5m0s."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, fraction = divmod(rest, 1000)
    text = f"{whole}.{fraction:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def _back_off(attempt: int) -> float:
    return min(BACK_OFF_START * float(2 ** min(attempt, 16)), BACK_OFF_MAX)
