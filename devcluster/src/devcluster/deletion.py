"""Graceful deletion: what a DELETE does to a Pod, as kube-apiserver decides it.

A Pod that runs on a node is not removed at once. kube-apiserver sets
``metadata.deletionTimestamp`` (now + the grace period) and
``deletionGracePeriodSeconds`` and keeps it (``kubectl get pods`` shows it
Terminating); the kubelet stops its containers and then removes it. The
grace period is the request's ``gracePeriodSeconds``, else the Pod's
``spec.terminationGracePeriodSeconds`` (30 by default); a negative one counts
as 1. A Pod that never reached a node, or that has finished (Succeeded or
Failed), goes at once, and so does any Pod deleted with a grace period of 0.
Deleting a Pod that is already going may shorten its grace period, never
lengthen it. Other resources go at once (finalizers are not simulated).

Both the API (``Registry.delete``) and the ReplicaSet controller delete
through :func:`graceful`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from devcluster.store import timestamp

Object = dict[str, Any]

#: What ``terminationGracePeriodSeconds`` defaults to.
DEFAULT_GRACE_SECONDS = 30


def graceful(resource: str, obj: Object, requested: int | None, now: float) -> Object | None:
    """The object as it stays while it goes gracefully, or None: remove it now.

    ``requested`` is the DELETE's ``gracePeriodSeconds`` (None when it gave none).
    The object returned may be ``obj`` itself (a deletion already under way that
    this request does not shorten).
    """
    meta = obj["metadata"]
    if meta.get("deletionTimestamp"):
        current = meta.get("deletionGracePeriodSeconds")
        if not current:
            return None
        if requested is None or requested >= current:
            return obj
        if requested <= 0:
            return None
        started = _parse(meta["deletionTimestamp"]) - current
        return _marked(obj, requested, started)
    if resource != "pods":
        return None
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    grace = requested
    if grace is None:
        grace = int(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS) or 0)
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        grace = 0
    if grace < 0:
        grace = 1
    if grace == 0:
        return None
    return _marked(obj, grace, now)


def _marked(obj: Object, grace: int, since: float) -> Object:
    meta = {
        **obj["metadata"],
        "deletionTimestamp": timestamp(since + grace),
        "deletionGracePeriodSeconds": grace,
    }
    return {**obj, "metadata": meta}


def _parse(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
