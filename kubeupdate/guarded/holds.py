"""A record this replica holds: renewed in the background, written compare-and-swap.

While a replica follows a guarded rollout it holds the record's Lease and
renews it every third of its duration (:class:`~kubeupdate.guarded.terms.LeaseTerms`).
Every write (renewal, phase, verdict, release) is made from the last record
written, so when another replica took the record over the write fails
(:class:`~kubeupdate.guarded.leases.HoldLost`) and this one stops acting on
it. A holder that could not renew for the renew deadline counts its hold as
lost too: by then another replica may be about to take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from types import TracebackType

from kubeupdate import errors
from kubeupdate.guarded import records
from kubeupdate.guarded.leases import HoldLost, RecordLeases
from kubeupdate.guarded.records import GuardedRecord, RecordState, Verdict
from kubeupdate.guarded.terms import LeaseTerms
from kubeupdate.kube.api import JsonObject

log = logging.getLogger(__name__)


class Hold:
    """Holds ``record`` (already written with this replica as holder) until closed or released.

    ``now`` is the cluster's clock (the times written in the Lease).
    """

    def __init__(
        self,
        leases: RecordLeases,
        record: GuardedRecord,
        terms: LeaseTerms,
        now: Callable[[], float],
    ) -> None:
        self.record = record
        #: Set when another replica took the record over, or renewals kept failing.
        self.lost = asyncio.Event()
        self._leases = leases
        self._terms = terms
        self._now = now
        self._writing = asyncio.Lock()
        self._renewed_at = time.monotonic()
        self._renewals: asyncio.Task[None] | None = None
        self._done = False

    async def __aenter__(self) -> Hold:
        self._renewals = asyncio.create_task(self._renew(), name=f"renew {self.record.name}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stop_renewing()
        if not self._done and not self.lost.is_set():
            # Cut short (the caller left, this replica stops, Kubernetes failed):
            # whoever comes next takes over at once instead of after a full duration.
            with contextlib.suppress(HoldLost, errors.KubeupdateError):
                await asyncio.shield(self.release())

    @property
    def rollout_id(self) -> str:
        return self.record.name

    async def write(self, state: RecordState) -> None:
        """Write the next phase (before the step it announces)."""
        await self._update(records.with_state(self.record, state, now=self._now()))

    async def retarget(self, previous_image: str) -> None:
        """The container ran another image before the patch: the intent replaces that one."""
        await self._update(
            records.with_previous_image(self.record, previous_image, now=self._now())
        )

    async def close(self, verdict: Verdict) -> None:
        """Close the record with the verdict; it is kept for the retention, then deleted."""
        await self._update(
            records.closed(
                self.record,
                verdict,
                holder=self.record.holder,
                retention=self._terms.retention,
                now=self._now(),
            )
        )
        self._done = True

    async def release(self) -> None:
        """Let the record go: no holder, so another replica takes it over at once."""
        await self._stop_renewing()
        if self._done:
            return
        await self._update(records.released(self.record, now=self._now()))
        self._done = True

    async def _update(self, lease: JsonObject) -> None:
        async with self._writing:
            if self.lost.is_set():
                raise HoldLost(f"guarded rollout {self.record.name} is held by another replica")
            try:
                self.record = await self._leases.update(self.record, lease)
            except HoldLost:
                self.lost.set()
                raise
            self._renewed_at = time.monotonic()

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._terms.renew_every)
            try:
                await self._update(records.renewed(self.record, now=self._now()))
            except HoldLost:
                log.warning(
                    "guarded rollout %s was taken over by another replica", self.record.name
                )
                return
            except errors.KubeupdateError as exc:
                silent = time.monotonic() - self._renewed_at
                if silent >= self._terms.renew_deadline:
                    log.warning(
                        "guarded rollout %s: not renewed for %.1fs (%s); letting it go",
                        self.record.name,
                        silent,
                        exc.message,
                    )
                    self.lost.set()
                    return

    async def _stop_renewing(self) -> None:
        task, self._renewals = self._renewals, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
