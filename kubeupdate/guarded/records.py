"""A guarded rollout's record: a coordination.k8s.io/v1 Lease, and what it says.

One Lease per guarded rollout, in the workload's namespace::

    metadata:
      name: kubeupdate-3f9c2a7d41e0b865          the rollout's id
      labels:
        kubeupdate.dev/guarded-rollout: "true"     what every guardian lists and watches
      annotations:
        kubeupdate.dev/intent: {...}               what the waited call asked (JSON)
        kubeupdate.dev/state: {...}                how far it got, then the verdict (JSON)
      ownerReferences: [the Deployment]            garbage-collected with it
    spec:
      holderIdentity: <replica>                    who follows the rollout now
      leaseDurationSeconds: 15                     how long others wait for a renewal
      renewTime, acquireTime, leaseTransitions     as client-go's leader election writes them

Why a Lease: it is Kubernetes' own coordination object, its update is a
compare-and-swap on ``resourceVersion`` (so of two replicas taking one over,
exactly one wins), it is small, namespaced (RBAC per managed namespace, like
the Deployments), and ``kubectl get leases`` shows who holds what. The
ownerReference makes the garbage collector delete it with the Deployment.

The intent (:class:`Intent`) is written before the image patch is sent; the
state (:class:`Phase`) is a write-ahead log of what the holder does next:

- ``intended``: the patch may or may not have been sent;
- ``applied``: the patch was applied (``generation`` is the Deployment's after it);
- ``rolling-back``: the rollback patch may or may not have been sent;
- ``closed``: the rollout ended; ``verdict`` says how (kept ``retention`` seconds).

Whoever takes a record over decides what happened from the phase and the
Deployment as it is now (:func:`kubeupdate.guarded.rollouts.situation`).

Everything here is pure: Lease bodies in, Lease bodies out. Times written are
the cluster's (MicroTime, six fraction digits, as the API server stores them);
nobody trusts them: expiry is judged by when a change was *seen*
(:mod:`kubeupdate.guarded.terms`).
"""

from __future__ import annotations

import copy
import datetime as dt
import enum
import json
import secrets
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final

from kubeupdate.kube.api import JsonObject
from kubeupdate.kube.clock import parse_time
from kubeupdate.rollouts.judgement import RolloutReport, RolloutState

#: The label every record carries; guardians list and watch by it.
LABEL: Final = "kubeupdate.dev/guarded-rollout"
LABEL_SELECTOR: Final = f"{LABEL}=true"
INTENT_ANNOTATION: Final = "kubeupdate.dev/intent"
STATE_ANNOTATION: Final = "kubeupdate.dev/state"
#: Every record's name starts so; the rest is random.
NAME_PREFIX: Final = "kubeupdate-"


class Phase(enum.Enum):
    """How far the holder got (a write-ahead log: each is written before the step)."""

    INTENDED = "intended"
    APPLIED = "applied"
    ROLLING_BACK = "rolling-back"
    CLOSED = "closed"


@dataclass(frozen=True)
class Intent:
    """What a waited change asked for, and for whom."""

    deployment: str
    container: str
    image: str
    #: The image the patch replaces (the compare-and-swap's expected value).
    previous_image: str
    rollback_on_failure: bool
    #: When the wait's timeout ends, on the cluster's clock (seconds since the epoch).
    deadline: float
    request_id: str
    caller: str
    reason: str = ""

    @property
    def on_behalf(self) -> str:
        """Who acts when kubeupdate acts for this change's caller (audit, change-cause)."""
        return f"kubeupdate on behalf of {self.caller}, request {self.request_id}"


@dataclass(frozen=True)
class Verdict:
    """How a guarded rollout ended."""

    #: False when the image patch never reached the Deployment: nothing to judge.
    applied: bool
    #: The rollout's last report (its final state), when applied.
    rollout: RolloutReport | None
    #: A sentence for humans.
    message: str
    #: The replica that closed the record.
    closed_by: str = ""


@dataclass(frozen=True)
class RecordState:
    """The mutable part of a record."""

    phase: Phase
    #: The Deployment's generation after the image patch (once applied).
    generation: int = 0
    verdict: Verdict | None = None


@dataclass(frozen=True)
class GuardedRecord:
    """A record as read from its Lease."""

    namespace: str
    name: str
    resource_version: str
    intent: Intent
    state: RecordState
    holder: str
    duration: int
    transitions: int
    #: The Lease itself, as read (the base of every update).
    lease: JsonObject = field(repr=False, compare=False)

    @property
    def rollout_id(self) -> str:
        return self.name

    @property
    def closed(self) -> bool:
        return self.state.phase is Phase.CLOSED

    @property
    def released(self) -> bool:
        """Open and held by nobody: anyone may take it over at once."""
        return not self.closed and not self.holder


def new_name() -> str:
    """A fresh record name (and rollout id): 64 random bits."""
    return NAME_PREFIX + secrets.token_hex(8)


def new_record(
    name: str,
    workload: JsonObject,
    intent: Intent,
    *,
    holder: str,
    duration: int,
    now: float,
) -> JsonObject:
    """The Lease of a new record held by ``holder``, owned by ``workload`` (as read)."""
    metadata = workload.get("metadata") or {}
    stamp = micro_time(now)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": str(metadata.get("namespace", "")),
            "labels": {LABEL: "true", "app.kubernetes.io/managed-by": "kubeupdate"},
            "annotations": {
                INTENT_ANNOTATION: _encode(_intent_document(intent)),
                STATE_ANNOTATION: _encode(_state_document(RecordState(Phase.INTENDED))),
            },
            "ownerReferences": [
                {
                    "apiVersion": str(workload.get("apiVersion", "apps/v1")),
                    "kind": str(workload.get("kind", "Deployment")),
                    "name": str(metadata.get("name", "")),
                    "uid": str(metadata.get("uid", "")),
                }
            ],
        },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": 0,
        },
    }


def parse(lease: JsonObject) -> GuardedRecord:
    """The record a Lease holds; ``ValueError`` when it is not one (or is damaged)."""
    metadata = lease.get("metadata")
    spec = lease.get("spec")
    if not isinstance(metadata, dict) or not isinstance(spec, dict):
        raise ValueError("not a Lease")
    annotations = metadata.get("annotations")
    if not isinstance(annotations, dict):
        raise ValueError("the Lease has no annotations")
    intent = _intent(_decode(annotations.get(INTENT_ANNOTATION)))
    state = _state(_decode(annotations.get(STATE_ANNOTATION)))
    duration = spec.get("leaseDurationSeconds", 0)
    transitions = spec.get("leaseTransitions", 0)
    return GuardedRecord(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        resource_version=str(metadata.get("resourceVersion", "")),
        intent=intent,
        state=state,
        holder=str(spec.get("holderIdentity") or ""),
        duration=duration if isinstance(duration, int) and duration > 0 else 1,
        transitions=transitions if isinstance(transitions, int) else 0,
        lease=lease,
    )


def taken_over(record: GuardedRecord, holder: str, *, duration: int, now: float) -> JsonObject:
    """The Lease after ``holder`` takes the record over (one more transition)."""
    stamp = micro_time(now)
    return _with_spec(
        record,
        holderIdentity=holder,
        leaseDurationSeconds=duration,
        acquireTime=stamp,
        renewTime=stamp,
        leaseTransitions=record.transitions + 1,
    )


def renewed(record: GuardedRecord, *, now: float) -> JsonObject:
    """The Lease with a new renewTime: the holder is alive."""
    return _with_spec(record, renewTime=micro_time(now))


def released(record: GuardedRecord, *, now: float) -> JsonObject:
    """The Lease held by nobody, so another replica may take it over at once.

    As client-go releases a Lease: no holder, a duration of one second.
    """
    return _with_spec(record, holderIdentity="", leaseDurationSeconds=1, renewTime=micro_time(now))


def with_state(record: GuardedRecord, state: RecordState, *, now: float) -> JsonObject:
    """The Lease with a new state (a renewal too: the holder wrote it)."""
    lease = _with_spec(record, renewTime=micro_time(now))
    lease["metadata"]["annotations"][STATE_ANNOTATION] = _encode(_state_document(state))
    return lease


def with_previous_image(record: GuardedRecord, previous_image: str, *, now: float) -> JsonObject:
    """The Lease whose intent replaces another image (the Deployment changed before the patch)."""
    intent = _intent_document(record.intent) | {"previousImage": previous_image}
    lease = _with_spec(record, renewTime=micro_time(now))
    lease["metadata"]["annotations"][INTENT_ANNOTATION] = _encode(intent)
    return lease


def closed(
    record: GuardedRecord, verdict: Verdict, *, holder: str, retention: int, now: float
) -> JsonObject:
    """The Lease of a closed record: the verdict, kept ``retention`` seconds after it was seen.

    The closer stays the holder (nobody takes a closed record over); the
    duration becomes the retention, so whoever sees it unchanged that long
    deletes it, by the same rule as an expired Lease.
    """
    lease = _with_spec(
        record, holderIdentity=holder, leaseDurationSeconds=retention, renewTime=micro_time(now)
    )
    state = RecordState(Phase.CLOSED, record.state.generation, verdict)
    lease["metadata"]["annotations"][STATE_ANNOTATION] = _encode(_state_document(state))
    return lease


def micro_time(seconds: float) -> str:
    """A Kubernetes MicroTime: UTC, six fraction digits."""
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _with_spec(record: GuardedRecord, **spec: Any) -> JsonObject:
    lease = copy.deepcopy(record.lease)
    lease.setdefault("spec", {}).update(spec)
    lease["metadata"].setdefault("annotations", {})
    return lease


def _encode(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _decode(text: object) -> dict[str, Any]:
    if not isinstance(text, str):
        raise ValueError("an annotation of the record is missing")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError("an annotation of the record is not JSON") from exc
    if not isinstance(value, dict):
        raise ValueError("an annotation of the record is not a JSON object")
    return value


_INTENT_KEYS: Final = {
    "deployment": "deployment",
    "container": "container",
    "image": "image",
    "previous_image": "previousImage",
    "rollback_on_failure": "rollbackOnFailure",
    "deadline": "deadline",
    "request_id": "requestId",
    "caller": "caller",
    "reason": "reason",
}


def _intent_document(intent: Intent) -> dict[str, Any]:
    document = {_INTENT_KEYS[k]: v for k, v in asdict(intent).items()}
    document["deadline"] = micro_time(intent.deadline)
    return document


def _intent(document: dict[str, Any]) -> Intent:
    values: dict[str, Any] = {}
    for key, name in _INTENT_KEYS.items():
        value = document.get(name, "" if key == "reason" else None)
        if key == "rollback_on_failure":
            if not isinstance(value, bool):
                raise ValueError(f"the intent's {name} is not a boolean")
        elif key == "deadline":
            value = parse_time(value)
            if value is None:
                raise ValueError("the intent's deadline is not a time")
        elif not isinstance(value, str):
            raise ValueError(f"the intent's {name} is not text")
        values[key] = value
    return Intent(**values)


def _state_document(state: RecordState) -> dict[str, Any]:
    document: dict[str, Any] = {"phase": state.phase.value}
    if state.generation:
        document["generation"] = state.generation
    if state.verdict is not None:
        verdict = state.verdict
        document["verdict"] = {
            "applied": verdict.applied,
            "message": verdict.message,
            "closedBy": verdict.closed_by,
            "rollout": None if verdict.rollout is None else _report_document(verdict.rollout),
        }
    return document


def _state(document: dict[str, Any]) -> RecordState:
    try:
        phase = Phase(document.get("phase"))
    except ValueError as exc:
        raise ValueError("the record's phase is unknown") from exc
    generation = document.get("generation", 0)
    verdict = None
    found = document.get("verdict")
    if isinstance(found, dict):
        rollout = found.get("rollout")
        verdict = Verdict(
            applied=bool(found.get("applied")),
            rollout=_report(rollout) if isinstance(rollout, dict) else None,
            message=str(found.get("message", "")),
            closed_by=str(found.get("closedBy", "")),
        )
    if phase is Phase.CLOSED and verdict is None:
        raise ValueError("a closed record has no verdict")
    return RecordState(phase, generation if isinstance(generation, int) else 0, verdict)


_REPORT_FIELDS: Final = tuple(f.name for f in fields(RolloutReport))


def _report_document(report: RolloutReport) -> dict[str, Any]:
    document = {f: getattr(report, f) for f in _REPORT_FIELDS}
    document["state"] = report.state.value
    document["warnings"] = list(report.warnings)
    if report.rollback is not None:
        document["rollback"] = _report_document(report.rollback)
    return {k: v for k, v in document.items() if v not in (None, "", 0, [])}


def _report(document: dict[str, Any]) -> RolloutReport:
    values = {k: document[k] for k in _REPORT_FIELDS if k in document}
    try:
        values["state"] = RolloutState(values.get("state"))
    except ValueError as exc:
        raise ValueError("the verdict's rollout state is unknown") from exc
    values.setdefault("reason", "")
    values.setdefault("message", "")
    values["warnings"] = tuple(values.get("warnings", ()))
    rollback = values.get("rollback")
    values["rollback"] = _report(rollback) if isinstance(rollback, dict) else None
    return RolloutReport(**values)
