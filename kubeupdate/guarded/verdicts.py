"""What a caller learns of a guarded rollout (GetGuardedRollout): its change and verdict.

The record is read from the API server once, then, for a wait, followed
through the shared Lease informer of its namespace until it is closed or
the wait ends. A record of another Deployment counts as unknown: an id only
answers for the Deployment whose access the caller was granted.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass
from typing import Final

from kubeupdate import errors
from kubeupdate.containers import ImageChange
from kubeupdate.guarded import records
from kubeupdate.guarded.leases import RecordLeases, not_found
from kubeupdate.guarded.records import GuardedRecord, Phase
from kubeupdate.kube.api import LEASES
from kubeupdate.kube.informers import Informers, Name
from kubeupdate.rollouts.judgement import RolloutReport, RolloutState

_ID: Final = re.compile(rf"^{re.escape(records.NAME_PREFIX)}[0-9a-f]{{16}}$")


@dataclass(frozen=True)
class GuardedView:
    """A guarded rollout as a caller sees it."""

    rollout_id: str
    closed: bool
    holder: str
    change: ImageChange
    #: Where the rollout stands (the verdict once closed); None: the change was never made.
    rollout: RolloutReport | None


def check_id(rollout_id: str) -> str:
    if not _ID.match(rollout_id):
        raise errors.InvalidArgument(
            f"Id must look like {records.NAME_PREFIX}<16 hex digits> (a guarded rollout's id, "
            "as the ROLLOUT_HANDED_OVER answer gives it)",
            reason=errors.ErrorReason.NAME_INVALID,
            metadata={"field": "id"},
        )
    return rollout_id


def view(record: GuardedRecord) -> GuardedView:
    """The caller's view of ``record``."""
    intent = record.intent
    verdict = record.state.verdict
    rollout: RolloutReport | None
    if verdict is not None:
        rollout = verdict.rollout
    elif record.state.phase is Phase.INTENDED:
        rollout = None
    else:
        rollout = RolloutReport(
            RolloutState.PROGRESSING, "Guarded", f"the rollout is followed by {record.holder}"
        )
    applied = record.state.phase is not Phase.INTENDED and (verdict is None or verdict.applied)
    image = intent.image
    if rollout is not None and rollout.state is RolloutState.ROLLED_BACK:
        image = rollout.restored_image or intent.previous_image
    change = ImageChange(
        record.namespace,
        intent.deployment,
        intent.container,
        image,
        intent.previous_image,
        applied,
        record.state.generation,
    )
    return GuardedView(
        record.rollout_id, record.closed, "" if record.closed else record.holder, change, rollout
    )


class GuardedVerdicts:
    """Answers GetGuardedRollout from the records."""

    def __init__(self, leases: RecordLeases, informers: Informers) -> None:
        self._leases = leases
        self._informers = informers

    async def get(
        self,
        namespace: str,
        deployment: str,
        rollout_id: str,
        *,
        until: float | None = None,
        deadline: float | None = None,
    ) -> GuardedView:
        """The rollout now; with ``until`` (monotonic), once closed or when ``until`` passes."""
        record = await self._leases.get(namespace, check_id(rollout_id), deadline=deadline)
        if record is None or record.intent.deployment != deployment:
            raise not_found(namespace, deployment, rollout_id)
        if until is None or record.closed:
            return view(record)
        changed = asyncio.Event()
        with self._informers.read(
            LEASES, namespace, wake=changed.set, label_selector=records.LABEL_SELECTOR
        ) as leases:
            leases.follow(Name(namespace, rollout_id))
            while True:
                end = until if deadline is None else min(until, deadline)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), max(0.0, end - time.monotonic()))
                changed.clear()
                if leases.synced:
                    found = leases.get(rollout_id, namespace)
                    if found is None:
                        # Deleted (its retention ended): whatever it said last stands.
                        return view(record)
                    with contextlib.suppress(ValueError):
                        record = records.parse(found)
                if record.closed or time.monotonic() >= end:
                    return view(record)
