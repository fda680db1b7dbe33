"""Failure rules: images marked to fail, and how, whatever the catalogue says.

Three ways an image can fail, named after what ``kubectl get pods`` shows:

- ``ImagePullBackOff``: the pull fails ("not found"); the container waits in
  ErrImagePull, then ImagePullBackOff, alternating with the kubelet's back-off;
- ``CrashLoopBackOff``: the image exists; the container starts, exits with an
  error after ``runs_for`` seconds, and is restarted with the kubelet's
  back-off; it is never Ready (its readiness probe never passed);
- ``Unready``: the container runs but never becomes Ready (its readiness
  probe keeps failing).

The defaults keep the devcluster's long-standing markers: a tag ending in
``-bad`` cannot be pulled, a tag containing ``crash`` crash-loops, and a tag
containing ``unready`` never becomes Ready.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

IMAGE_PULL_BACK_OFF: Final = "ImagePullBackOff"
CRASH_LOOP_BACK_OFF: Final = "CrashLoopBackOff"
UNREADY: Final = "Unready"

#: How long a crashing container runs before it exits, unless a rule says otherwise.
DEFAULT_RUNS_FOR: Final = 1.0

#: Globs over the whole image reference (so ``reg:5000/crashy/app:1`` crash-loops too).
DEFAULT_FAILURE_RULES: Final = (
    ("*:*-bad", IMAGE_PULL_BACK_OFF),
    ("*:*crash*", CRASH_LOOP_BACK_OFF),
    ("*:*unready*", UNREADY),
)


@dataclass(frozen=True)
class Failure:
    """How an image fails: a reason above, and for crashes how long each run lasts."""

    reason: str
    runs_for: float = DEFAULT_RUNS_FOR


class FailureRules:
    """Which images fail in the devcluster, and how.

    A pattern with ``*``, ``?`` or ``[`` is a glob over the whole image
    reference; any other pattern matches as a substring. The most recently
    added rule that matches wins, so ``add`` can override a default.
    """

    REASONS: Final = (IMAGE_PULL_BACK_OFF, CRASH_LOOP_BACK_OFF, UNREADY)

    def __init__(self, rules: Iterable[tuple[str, str]] = DEFAULT_FAILURE_RULES) -> None:
        self._rules: list[tuple[str, Failure]] = []
        self._generation = 0
        for pattern, reason in rules:
            self.add(pattern, reason)

    @property
    def generation(self) -> int:
        """Grows with every change, so a cache of what the rules decided knows it is stale."""
        return self._generation

    @property
    def rules(self) -> list[tuple[str, str]]:
        """(pattern, reason) pairs, in the order they were added."""
        return [(pattern, failure.reason) for pattern, failure in self._rules]

    def add(self, pattern: str, reason: str, *, runs_for: float = DEFAULT_RUNS_FOR) -> None:
        """Marks images matching ``pattern`` to fail with ``reason``.

        ``runs_for`` (CrashLoopBackOff only) is how many seconds each run lasts;
        past 10 minutes the kubelet's back-off starts over at 10 s.
        """
        if reason not in self.REASONS:
            raise ValueError(f"reason must be one of {', '.join(self.REASONS)}, not {reason!r}")
        if not pattern:
            raise ValueError("pattern must not be empty")
        if runs_for <= 0:
            raise ValueError("runs_for must be positive")
        self._rules.append((pattern, Failure(reason, runs_for)))
        self._generation += 1

    def remove(self, pattern: str) -> None:
        """Forgets every rule with this pattern."""
        self._rules = [rule for rule in self._rules if rule[0] != pattern]
        self._generation += 1

    def clear(self) -> None:
        self._rules.clear()
        self._generation += 1

    def failure_for(self, image: str) -> str | None:
        """The reason ``image`` fails with (see above), or None for an image that works."""
        failure = self.lookup(image)
        return failure.reason if failure is not None else None

    def lookup(self, image: str) -> Failure | None:
        """The newest rule's :class:`Failure` for ``image``, or None."""
        for pattern, failure in reversed(self._rules):
            if any(c in pattern for c in "*?["):
                if fnmatch.fnmatchcase(image, pattern):
                    return failure
            elif pattern in image:
                return failure
        return None
