"""Defaults kube-apiserver fills in before storing, so objects read back as in a cluster.

Clients compare what they wrote with what they read (kubectl apply's
three-way merge, rollout undo's template comparison), so the devcluster
fills the same fields the real defaulting functions do for apps/v1 and v1.
"""

from __future__ import annotations

from typing import Any

from devcluster.resources import DEPLOYMENTS, NAMESPACES, PODS, REPLICASETS, ResourceType

Object = dict[str, Any]


def _image_pull_policy(image: str) -> str:
    # The tag follows the last ':' after the last '/'; no tag means latest.
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _container(container: Object) -> None:
    if isinstance(container.get("image"), str):
        container.setdefault("imagePullPolicy", _image_pull_policy(container["image"]))
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def pod_spec(spec: Object) -> None:
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                _container(container)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")


def apply_defaults(resource: ResourceType, obj: Object) -> None:
    """Fills defaults into ``obj`` in place (it must be the caller's own copy)."""
    spec = obj.get("spec")
    if resource is NAMESPACES:
        meta = obj.setdefault("metadata", {})
        labels = meta.get("labels") or {}
        meta["labels"] = {**labels, "kubernetes.io/metadata.name": meta.get("name", "")}
        # The namespace strategy always keeps the "kubernetes" finalizer and a phase.
        spec = obj["spec"] = obj.get("spec") or {}
        finalizers = spec.get("finalizers") or []
        spec["finalizers"] = (
            finalizers if "kubernetes" in finalizers else [*finalizers, "kubernetes"]
        )
        status = obj["status"] = obj.get("status") or {}
        status.setdefault("phase", "Active")
        return
    if not isinstance(spec, dict):
        return
    if resource is PODS:
        pod_spec(spec)
        return
    if resource in (DEPLOYMENTS, REPLICASETS):
        spec.setdefault("replicas", 1)
        template = spec.get("template")
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            pod_spec(template["spec"])
    if resource is DEPLOYMENTS:
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
