"""What the client returns: frozen dataclasses, free of protobuf types.

:func:`to_json` turns any of them into JSON-ready values (enum names,
seconds for durations, RFC 3339 for times); the CLI's ``--json`` prints that.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


class RolloutState(enum.Enum):
    """Where a rollout stands (``kubeupdate.v1.Rollout.State`` without the prefix)."""

    UNSPECIFIED = 0
    PROGRESSING = 1
    COMPLETE = 2
    FAILED = 3
    TIMED_OUT = 4
    ROLLED_BACK = 5
    PAUSED = 6

    @property
    def terminal(self) -> bool:
        """True when this rollout will not change any more by itself."""
        return self not in (RolloutState.UNSPECIFIED, RolloutState.PROGRESSING)

    @property
    def failed(self) -> bool:
        """True for FAILED, TIMED_OUT, ROLLED_BACK and PAUSED: the release does not run."""
        return self in (
            RolloutState.FAILED,
            RolloutState.TIMED_OUT,
            RolloutState.ROLLED_BACK,
            RolloutState.PAUSED,
        )


@dataclass(frozen=True)
class Rollout:
    """A Deployment's rollout, as ``kubectl rollout status`` judges it."""

    namespace: str
    deployment: str
    state: RolloutState
    reason: str = ""
    message: str = ""
    replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    revision: int = 0
    # How long a server-side wait lasted (answers of set(wait=True) only).
    duration: timedelta | None = None
    # With ROLLED_BACK: the image that failed and the one running again.
    failed_image: str = ""
    restored_image: str = ""


@dataclass(frozen=True)
class ContainerImage:
    """One container of a Deployment and its image (the answer of ``get``)."""

    namespace: str
    deployment: str
    container: str
    image: str


@dataclass(frozen=True)
class Container:
    """A container of a Pod template (an item of ``list`` and of a revision)."""

    name: str
    image: str
    init_container: bool = False


@dataclass(frozen=True)
class ImageChange:
    """The answer of ``set`` and ``undo``: the container after the change."""

    namespace: str
    deployment: str
    container: str
    image: str
    previous_image: str
    # False when the container already ran ``image``: nothing written, no rollout.
    changed: bool
    generation: int
    dry_run: bool = False
    # Only when the call waited for the rollout.
    rollout: Rollout | None = None
    # ``undo`` only: the revision whose image was set again.
    revision: int = 0
    # After a hand-over: the guarded rollout whose verdict this is (GetGuardedRollout's id).
    rollout_id: str = ""


@dataclass(frozen=True)
class GuardedRollout:
    """A waited change as the service records it, so any replica can finish following it."""

    id: str
    # True when the verdict is final; until then ``holder`` names the replica following it.
    closed: bool
    holder: str
    # What was applied, and the rollout: its verdict once ``closed``.
    change: ImageChange


@dataclass(frozen=True)
class Revision:
    """One revision of a Deployment (one of its ReplicaSets), from ``history``."""

    revision: int
    replica_set: str
    change_cause: str
    containers: tuple[Container, ...]
    create_time: datetime | None
    replicas: int


def to_json(value: Any) -> Any:
    """``value`` (a result, or a list/tuple of them) as JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: to_json(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, datetime):
        return value.isoformat()
    return value
