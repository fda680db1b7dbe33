"""The demo's sample Deployments, loaded into a devcluster for the reliability tests."""

from __future__ import annotations

from kubeupdate.demo import SAMPLES, load_manifests
from kubeupdate.devcluster import DevCluster


def seed_samples(cluster: DevCluster) -> None:
    """default/web (app nginx:1.25, sidecar busybox:1.36) and staging/api; journal cleared."""
    for obj in load_manifests(SAMPLES):
        if obj["kind"] == "Namespace" and cluster.get("namespaces", "", obj["metadata"]["name"]):
            continue
        cluster.create(obj)
    cluster.journal.clear()
