"""The guardian every replica runs: it finishes guarded rollouts whose holder went silent.

It reads the records through the shared Lease informers
(:mod:`kubeupdate.kube.informers`, label ``kubeupdate.dev/guarded-rollout``),
one per watched namespace, or one for all namespaces (``namespaces=None``;
the service account then needs to list and watch Leases cluster-wide). A
replica watches the namespaces of ``kubeupdate serve --guard-namespaces``: the
namespaces it manages, whose Role grants it the Leases.

By the Lease's own rules (:mod:`kubeupdate.guarded.terms`): an open record
that has not changed for its ``leaseDurationSeconds``, as this replica saw
it, or one released by its holder, is taken over with an update that names
the resourceVersion seen; of two guardians, one wins, the other gets a 409
and leaves it. The winner finishes the rollout
(:meth:`~kubeupdate.guarded.rollouts.GuardedRollouts.resume`). A closed
record unchanged for its retention is deleted, compare-and-swap as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from kubeupdate import errors
from kubeupdate.auth.audit import AuditLog, AuditRecord
from kubeupdate.caller import Caller
from kubeupdate.guarded import records
from kubeupdate.guarded.leases import HoldLost
from kubeupdate.guarded.records import GuardedRecord
from kubeupdate.guarded.rollouts import GuardedRollouts
from kubeupdate.guarded.terms import Sightings
from kubeupdate.kube import errors as kube_errors
from kubeupdate.kube.api import LEASES, JsonObject
from kubeupdate.kube.informers import EVERYTHING, Informers, Reader

log = logging.getLogger(__name__)

#: Called with (action, record) when the guardian acts: "take-over" (the record as
#: taken), "verdict" (as closed, after any rollback), "delete".
Observer = Callable[[str, GuardedRecord], None]


def audited(audit: AuditLog) -> Observer:
    """An observer that writes the guardian's acts as audit lines, on behalf of the caller."""

    def write(action: str, record: GuardedRecord) -> None:
        if action == "delete":
            return  # forgetting a verdict changes nothing a caller asked for
        intent = record.intent
        line = AuditRecord(
            request_id=intent.request_id,
            method=f"GuardedRollout/{action}",
            source=record.holder or "guardian",
            caller=Caller(name=intent.on_behalf, method="kubeupdate"),
            target={
                "namespace": record.namespace,
                "deployment": intent.deployment,
                "container": intent.container,
            },
            image=intent.image,
            previous_image=intent.previous_image,
            decision="allow",
            reason=f"guarded rollout {record.name}, held by {record.holder}",
            rollout_id=record.name,
            outcome="OK",
        )
        verdict = record.state.verdict
        if verdict is not None:
            line.changed = verdict.applied
            line.rollout = "NOT_APPLIED" if verdict.rollout is None else verdict.rollout.state.name
        audit.write(line)

    return write


class Guardian:
    """Watches guarded-rollout records and takes over those whose holder stopped."""

    def __init__(
        self,
        rollouts: GuardedRollouts,
        informers: Informers,
        namespaces: Sequence[str] | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        observe: Observer | None = None,
    ) -> None:
        self._rollouts = rollouts
        self._informers = informers
        self._namespaces: list[str | None] = list(namespaces) if namespaces else [None]
        self._clock = clock
        self._sightings = Sightings(clock)
        # Records as parsed, by (namespace, name): a wake re-parses only what changed.
        self._parsed: dict[tuple[str, str], tuple[str, GuardedRecord | None]] = {}
        self._observe = observe
        self._busy: dict[tuple[str, str], asyncio.Task[None]] = {}
        #: Records this replica took over (for tests and the benchmark).
        self.taken_over = 0

    async def run(self) -> None:
        """Watch until cancelled; then stop following (releasing what it holds)."""
        changed = asyncio.Event()
        try:
            with contextlib.ExitStack() as stack:
                readers = [
                    stack.enter_context(
                        self._informers.read(
                            LEASES,
                            namespace,
                            wake=changed.set,
                            label_selector=records.LABEL_SELECTOR,
                        )
                    )
                    for namespace in self._namespaces
                ]
                for reader in readers:
                    reader.follow(EVERYTHING)
                while True:
                    next_look = self._look(readers)
                    timeout = None if next_look is None else max(0.0, next_look - self._clock())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), timeout)
                    changed.clear()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop following: each record followed is released for another replica."""
        tasks = list(self._busy.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _look(self, readers: list[Reader]) -> float | None:
        """Act on what is due; when to look again (monotonic) if nothing changes before."""
        seen: set[tuple[str, str]] = set()
        present: set[tuple[str, str]] = set()
        next_look: float | None = None
        now = self._clock()
        for reader in readers:
            if not reader.synced:
                continue
            for obj in reader.objects():
                record = self._parse(obj, present)
                if record is None:
                    continue  # not ours to judge: a damaged or foreign Lease
                key = (record.namespace, record.name)
                seen.add(key)
                if key in self._busy:
                    continue
                if not record.closed and record.holder == self._rollouts.identity:
                    continue  # a waited call of this replica holds it
                due = now if record.released else self._sightings.expires_at(record)
                if due > now:
                    next_look = due if next_look is None else min(next_look, due)
                    continue
                act = self._delete if record.closed else self._take_over
                self._busy[key] = asyncio.create_task(self._run(key, act(record)))
        self._sightings.keep_only(seen)
        for gone in self._parsed.keys() - present:
            del self._parsed[gone]
        return next_look

    def _parse(self, obj: JsonObject, present: set[tuple[str, str]]) -> GuardedRecord | None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        present.add(key)
        version = str(meta.get("resourceVersion", ""))
        known = self._parsed.get(key)
        if known is not None and known[0] == version:
            return known[1]
        try:
            record: GuardedRecord | None = records.parse(obj)
        except ValueError:
            record = None
        self._parsed[key] = (version, record)
        return record

    async def _run(self, key: tuple[str, str], action: Coroutine[Any, Any, None]) -> None:
        try:
            await action
        except HoldLost:
            pass  # another replica was first
        except errors.KubeupdateError as exc:
            log.warning("guarded rollout %s/%s: %s", key[0], key[1], exc.message)
        except kube_errors.KubeError as exc:
            log.warning("guarded rollout %s/%s: %s", key[0], key[1], exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("guarded rollout %s/%s: the guardian failed", key[0], key[1])
        finally:
            self._busy.pop(key, None)

    async def _take_over(self, record: GuardedRecord) -> None:
        rollouts = self._rollouts
        lease = records.taken_over(
            record, rollouts.identity, duration=rollouts.terms.duration, now=rollouts.now()
        )
        taken = await rollouts.leases.update(record, lease)
        self.taken_over += 1
        log.info(
            "guarded rollout %s/%s taken over from %s (%s)",
            record.namespace,
            record.name,
            record.holder or "nobody (released)",
            record.intent.on_behalf,
        )
        if self._observe is not None:
            self._observe("take-over", taken)
        final = await rollouts.resume(taken)
        if self._observe is not None:
            self._observe("verdict", final)

    async def _delete(self, record: GuardedRecord) -> None:
        await self._rollouts.leases.delete(record)
        self._sightings.forget(record.namespace, record.name)
        if self._observe is not None:
            self._observe("delete", record)
