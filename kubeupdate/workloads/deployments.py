"""What is specific to Deployments: kubectl's rollout rule, and revisions kept as ReplicaSets.

:func:`rollout_status` is a port of kubectl's ``DeploymentStatusViewer.Status``
(``pkg/polymorphichelpers/rollout_status.go``), the rule ``kubectl rollout
status`` applies. It reads the Deployment only; with the Pods of the new
ReplicaSet it adds kubeupdate's warning about a Pod that cannot start
(:func:`~kubeupdate.workloads.pods.with_pod_warning`; kubectl 1.37, which the
development environment pins, lists no Pods for ``rollout status``).

The deployment controller keeps each revision as a ReplicaSet it owns
(``ownerReferences`` with ``controller: true``), numbered by the
``deployment.kubernetes.io/revision`` annotation; the Pods of a revision carry
its ``pod-template-hash`` label. It copies the Deployment's annotations to
the ReplicaSet, so a revision is kubeupdate's only when its template, without
that label, is the one kubeupdate's record names (:func:`made_by_kubeupdate`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from typing import Any, Final

from kubeupdate.errors import ErrorReason
from kubeupdate.kube.api import DEPLOYMENTS, REPLICA_SETS, DeploymentApi, JsonObject, JsonPatch
from kubeupdate.patches import CHANGE_ANNOTATION, CHANGE_CAUSE_ANNOTATION, RecordedChange
from kubeupdate.workloads.access import WorkloadAccess
from kubeupdate.workloads.kinds import Progress, Revision, RevisionPods
from kubeupdate.workloads.pods import with_pod_warning
from kubeupdate.workloads.templates import POD_SPEC, container_images, template_digest

__all__ = [
    "DEPLOYMENT",
    "POD_TEMPLATE_HASH_LABEL",
    "PROGRESS_DEADLINE_EXCEEDED",
    "REVISION_ANNOTATION",
    "DeploymentKind",
    "RolloutFailed",
    "condition",
    "made_by_kubeupdate",
    "rollout_status",
]

POD_TEMPLATE_HASH_LABEL: Final = "pod-template-hash"
REVISION_ANNOTATION: Final = "deployment.kubernetes.io/revision"
PROGRESS_DEADLINE_EXCEEDED: Final = "ProgressDeadlineExceeded"


class RolloutFailed(Exception):
    """``kubectl rollout status`` would exit with this error."""


def rollout_status(
    deployment: JsonObject, revision: int = 0, pods: Iterable[JsonObject] = ()
) -> tuple[str, bool]:
    """kubectl's ``DeploymentStatusViewer.Status``: (message, done).

    Raises :class:`RolloutFailed` where kubectl returns an error (progress
    deadline exceeded, or ``revision`` given and not the running one). ``pods``
    (the Deployment's, if the caller has them) add kubeupdate's warning about
    a Pod that cannot start; without them the message is kubectl's, word for word.
    """
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    name = meta.get("name", "")
    if revision > 0:
        running = int((meta.get("annotations") or {}).get(REVISION_ANNOTATION, "0") or 0)
        if revision != running:
            raise RolloutFailed(
                f"desired revision ({revision}) is different from the running revision ({running})"
            )
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        message = "Waiting for deployment spec update to be observed...\n"
        return with_pod_warning(message, pods), False
    progressing = condition(status, "Progressing")
    if progressing is not None and progressing.get("reason") == PROGRESS_DEADLINE_EXCEEDED:
        raise RolloutFailed(f"deployment {_go_quote(name)} exceeded its progress deadline")
    replicas = spec.get("replicas")
    updated = status.get("updatedReplicas", 0)
    prefix = f"Waiting for deployment {_go_quote(name)} rollout to finish: "
    if replicas is not None and updated < replicas:
        message = f"{prefix}{updated} out of {replicas} new replicas have been updated...\n"
        return with_pod_warning(message, pods), False
    if status.get("replicas", 0) > updated:
        old = status.get("replicas", 0) - updated
        message = f"{prefix}{old} old replicas are pending termination...\n"
        return with_pod_warning(message, pods), False
    available = status.get("availableReplicas", 0)
    if available < updated:
        message = f"{prefix}{available} of {updated} updated replicas are available...\n"
        return with_pod_warning(message, pods), False
    return f"deployment {_go_quote(name)} successfully rolled out\n", True


def condition(status: JsonObject, type_: str) -> JsonObject | None:
    """The condition of ``type_`` in an object's status, if any."""
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


class DeploymentKind:
    """apps/v1 Deployments, as a :class:`~kubeupdate.workloads.kinds.WorkloadKind`."""

    name: Final = "deployment"
    not_found: Final = ErrorReason.DEPLOYMENT_NOT_FOUND
    resource: Final = DEPLOYMENTS
    revision_resource: Final = REPLICA_SETS
    pod_spec: Final = POD_SPEC

    async def get(
        self, api: DeploymentApi, namespace: str, name: str, *, deadline: float | None
    ) -> JsonObject:
        return await api.get_deployment(namespace, name, deadline=deadline)

    async def patch(
        self,
        api: DeploymentApi,
        namespace: str,
        name: str,
        operations: JsonPatch,
        *,
        dry_run: bool,
        deadline: float | None,
    ) -> JsonObject:
        return await api.patch_deployment(
            namespace, name, operations, dry_run=dry_run, deadline=deadline
        )

    def progress(self, obj: JsonObject, pods: Sequence[JsonObject] = ()) -> Progress:
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        meta = obj.get("metadata") or {}
        reason = str((condition(status, "Progressing") or {}).get("reason", ""))
        failed = False
        try:
            message, done = rollout_status(obj, pods=pods)
        except RolloutFailed as exc:
            message, done, failed, reason = str(exc), False, True, PROGRESS_DEADLINE_EXCEEDED
        return Progress(
            message=message,
            done=done,
            reason=reason,
            observed=_int(meta.get("generation")) <= _int(status.get("observedGeneration")),
            replicas=_int(spec.get("replicas", 1)),
            updated_replicas=_int(status.get("updatedReplicas")),
            ready_replicas=_int(status.get("readyReplicas")),
            available_replicas=_int(status.get("availableReplicas")),
            revision=_revision(obj),
            failed=failed,
            paused=spec.get("paused") is True,
        )

    async def revisions(
        self, access: WorkloadAccess, namespace: str, obj: JsonObject, *, deadline: float | None
    ) -> list[Revision]:
        replica_sets = await _replica_sets(access, namespace, obj, deadline)
        found = []
        for rs in replica_sets:
            change = made_by_kubeupdate(rs)
            cause = str(_annotations(rs).get(CHANGE_CAUSE_ANNOTATION, ""))
            found.append(
                Revision(
                    revision=_revision(rs),
                    name=str(rs["metadata"].get("name", "")),
                    change_cause=change.sentence() if change is not None else cause,
                    containers=container_images(rs),
                    created=str(rs["metadata"].get("creationTimestamp", "")),
                    replicas=_int((rs.get("status") or {}).get("replicas")),
                    change=change,
                )
            )
        return sorted(found, key=lambda r: r.revision, reverse=True)

    def revision_pods(
        self, obj: JsonObject, revisions: Sequence[JsonObject]
    ) -> RevisionPods | None:
        """The new ReplicaSet's Pods, once the controller has observed the change and made it."""
        revision = _observed_revision(obj)
        if revision == 0:
            return None
        uid = (obj.get("metadata") or {}).get("uid")
        new = next(
            (rs for rs in revisions if _controlled_by(rs, uid) and _revision(rs) == revision),
            None,
        )
        if new is None:
            return None
        pod_hash = (new["metadata"].get("labels") or {}).get(POD_TEMPLATE_HASH_LABEL)
        return RevisionPods(
            owner=str(new["metadata"]["name"]),
            owner_uid=str(new["metadata"].get("uid", "")),
            labels={POD_TEMPLATE_HASH_LABEL: str(pod_hash)} if pod_hash else {},
        )

    async def current_pods(
        self, access: WorkloadAccess, namespace: str, obj: JsonObject, *, deadline: float | None
    ) -> RevisionPods | None:
        if _observed_revision(obj) == 0:
            return None  # nothing to list yet
        return self.revision_pods(obj, await _replica_sets(access, namespace, obj, deadline))


def made_by_kubeupdate(replica_set: JsonObject) -> RecordedChange | None:
    """kubeupdate's record of the change that made this revision, if kubeupdate made it.

    The record the ReplicaSet carries may be a copy left from an earlier
    change: it counts only when the revision's pod template (without the
    controller's ``pod-template-hash`` label) is the one the change produced.
    """
    change = RecordedChange.parse(_annotations(replica_set).get(CHANGE_ANNOTATION))
    if change is None:
        return None
    template = copy.deepcopy((replica_set.get("spec") or {}).get("template") or {})
    labels = (template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    return change if change.made(template_digest(template)) else None


#: The Deployment kind, the one kubeupdate serves today.
DEPLOYMENT: Final = DeploymentKind()


async def _replica_sets(
    access: WorkloadAccess, namespace: str, deployment: JsonObject, deadline: float | None
) -> list[JsonObject]:
    """The ReplicaSets the Deployment controls (by ownerReferences uid)."""
    uid = deployment["metadata"].get("uid")
    match = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(match.items())) or None
    listed = await access.list(REPLICA_SETS, namespace, label_selector=selector, deadline=deadline)
    return [rs for rs in listed if _controlled_by(rs, uid)]


def _controlled_by(obj: JsonObject, uid: object) -> bool:
    """Whether the object's controller (an ownerReference with controller: true) has ``uid``."""
    return any(
        ref.get("uid") == uid and ref.get("controller")
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )


def _observed_revision(deployment: JsonObject) -> int:
    """The revision of the latest spec, once the controller observed it (else 0)."""
    meta = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    if _int(meta.get("generation")) > _int(status.get("observedGeneration")):
        return 0  # the revision annotation is not the new one yet
    return _revision(deployment)


def _revision(obj: JsonObject) -> int:
    """The revision a Deployment runs, or a ReplicaSet holds (0: none yet)."""
    return _int(_annotations(obj).get(REVISION_ANNOTATION))


def _annotations(obj: JsonObject) -> dict[str, Any]:
    annotations = (obj.get("metadata") or {}).get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _go_quote(text: str) -> str:
    # Go's %q for the names Kubernetes allows (no quotes or control characters).
    return json.dumps(text, ensure_ascii=False)
